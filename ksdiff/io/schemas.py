"""The Parquet schemas of every table ksdiff writes, with their versions.

One place for all of them so that a reader of any step knows what the previous
step promised. Bump a table's version whenever its columns or their meaning
change: readers refuse other versions (see ksdiff.io.parquet.read_table).

Conventions
- Times are seconds from the start of the clip; ``frame`` is the 0-based index
  at the motion frame rate (25 fps unless configured).
- Pixel coordinates are in the full source frame (x right, y down).
- Angles: ``yaw``, ``pitch``, ``roll`` in degrees, intrinsic Y-X-Z (see
  ksdiff.geometry); ``rotvec`` is the same rotation as an axis-angle vector
  in radians. Positive yaw turns the face to the viewer's left.
- A 2-D array column is a fixed-size list (``FixedSizeList``) when its width
  is fixed by the format (478x3 landmarks), a variable list when it is set by
  the config (expression dimensions, feature dimensions).
"""
from __future__ import annotations

import pyarrow as pa

N_LANDMARKS = 478  # MediaPipe face mesh with refined irises


def _fixed(n: int, t=pa.float32()):
    return pa.list_(t, n)


MANIFEST = pa.schema(
    [
        ("clip_id", pa.string()),  # unique within a dataset, safe as a file name
        ("speaker_id", pa.string()),  # splits are disjoint in speakers
        ("dataset", pa.string()),
        ("layout", pa.string()),  # hdtf | voxceleb | folder | synthetic
        ("path", pa.string()),  # absolute path of the source video
        ("duration_s", pa.float64()),
        ("fps", pa.float64()),  # average frame rate of the source
        ("n_frames", pa.int64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("has_audio", pa.bool_()),
        ("audio_sample_rate", pa.int32()),
        ("audio_channels", pa.int32()),
        ("variable_fps", pa.bool_()),
        ("size_bytes", pa.int64()),
        ("sha256", pa.string()),
        ("probe_error", pa.string()),  # '' when the container could be read
    ]
)

# One row: statistics of the 16 kHz mono signal written beside it as .wav.
AUDIO = pa.schema(
    [
        ("clip_id", pa.string()),
        ("sample_rate", pa.int32()),
        ("n_samples", pa.int64()),
        ("duration_s", pa.float64()),
        ("source_sample_rate", pa.int32()),
        ("source_channels", pa.int32()),
        ("rms_dbfs", pa.float32()),
        ("peak_dbfs", pa.float32()),
        ("loudness_lufs", pa.float32()),  # ITU-R BS.1770 integrated loudness
        ("clipped_fraction", pa.float32()),
        ("silence_fraction", pa.float32()),
    ]
)

# One row per word. attrs: backend, model, text (the reference text if known).
TRANSCRIPT = pa.schema(
    [
        ("word", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("confidence", pa.float32()),  # 0..1; 1.0 for forced alignment of known text
    ]
)

# One row per motion frame. attrs: fps, source_fps, width, height, detector,
# face_source_runs ([first row, n rows, finder] runs: full-range | short-range |
# face-mesh | '' without a face; ksdiff.extract.landmarks.face_sources), face_source_counts.
LANDMARKS = pa.schema(
    [
        ("frame", pa.int32()),
        ("time_s", pa.float64()),
        ("source_frame", pa.int32()),  # index of the decoded source frame used
        ("detected", pa.bool_()),
        ("score", pa.float32()),  # face detection score, 0..1; NaN when full-frame FaceMesh found the face
        ("n_faces", pa.int16()),
        ("box", _fixed(4)),  # x0, y0, x1, y1 of the face crop, pixels
        ("landmarks", _fixed(N_LANDMARKS * 3)),  # x, y, z per landmark; x,y pixels, z same scale
        ("failure", pa.string()),  # '' or why this frame has no landmarks
    ]
)

# Motion coefficients, one row per frame (and per sample for predictions).
# attrs: backend, fps, n_expr, template (478x3 identity, landmark backend),
#        basis (path + sha256 of the expression basis used).
COEFFS = pa.schema(
    [
        ("sample", pa.int16()),  # 0 for extracted; sample index for predictions
        ("frame", pa.int32()),
        ("time_s", pa.float64()),
        ("valid", pa.bool_()),
        ("rotvec", _fixed(3)),  # head rotation, axis-angle, radians
        ("yaw", pa.float32()),
        ("pitch", pa.float32()),
        ("roll", pa.float32()),
        ("trans", _fixed(3)),  # head translation (landmark units: pixels; DECA: camera)
        ("scale", pa.float32()),
        ("jaw", _fixed(3)),  # FLAME jaw pose (DECA backend); zeros for the landmark fit
        ("expr", pa.list_(pa.float32())),  # expression coefficients (n_expr)
        ("residual", pa.float32()),  # RMS fit residual in template units
    ]
)

# Rigid head fit per frame before the expression basis exists.
# attrs: fps, template (478x3 list, the clip's identity in the canonical frame).
POSE = pa.schema(
    [
        ("frame", pa.int32()),
        ("time_s", pa.float64()),
        ("valid", pa.bool_()),
        ("rotvec", _fixed(3)),
        ("yaw", pa.float32()),
        ("pitch", pa.float32()),
        ("roll", pa.float32()),
        ("trans", _fixed(3)),
        ("scale", pa.float32()),
        ("aligned", _fixed(N_LANDMARKS * 3)),  # landmarks with head pose removed
        ("residual", pa.float32()),
    ]
)

# Speech features at their own rate. attrs: kind (logmel|wav2vec2|hubert),
# rate_hz, dim, checkpoint (path + sha256 when pretrained), sample_rate.
FEATURES = pa.schema(
    [
        ("frame", pa.int32()),
        ("time_s", pa.float64()),
        ("feat", pa.list_(pa.float32())),
        ("f0_hz", pa.float32()),  # 0 where unvoiced
        ("voiced", pa.bool_()),
        ("energy_db", pa.float32()),
    ]
)

QC = pa.schema(
    [
        ("clip_id", pa.string()),
        ("speaker_id", pa.string()),
        ("dataset", pa.string()),
        ("usable", pa.bool_()),
        ("reason", pa.string()),  # '' when usable; else the first step that failed and why
        ("n_frames", pa.int64()),
        ("duration_s", pa.float64()),
        ("audio_duration_s", pa.float64()),
        ("av_mismatch_s", pa.float64()),
        ("detection_rate", pa.float64()),
        ("landmark_jitter", pa.float64()),  # median frame-to-frame landmark motion / face size
        ("fit_residual", pa.float64()),
        ("n_words", pa.int64()),
    ]
)

SPLITS = pa.schema(
    [
        ("clip_id", pa.string()),
        ("speaker_id", pa.string()),
        ("split", pa.string()),  # train | val | test
    ]
)

# Normalisation statistics over the training split.
STATS = pa.schema(
    [
        ("name", pa.string()),  # head | expr | feat
        ("mean", pa.list_(pa.float32())),
        ("std", pa.list_(pa.float32())),
    ]
)

# Long format: one value per metric per clip per sample per method, so every
# leaderboard number can be traced to the rows behind it. attrs: protocol.
METRICS = pa.schema(
    [
        ("method", pa.string()),
        ("clip_id", pa.string()),
        ("sample", pa.int16()),
        ("metric", pa.string()),
        ("value", pa.float64()),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "manifest": MANIFEST,
    "audio": AUDIO,
    "transcript": TRANSCRIPT,
    "landmarks": LANDMARKS,
    "pose": POSE,
    "coeffs": COEFFS,
    "features": FEATURES,
    "qc": QC,
    "splits": SPLITS,
    "stats": STATS,
    "metrics": METRICS,
}

VERSIONS: dict[str, int] = {name: 1 for name in SCHEMAS}

# Ground truth of a synthetic clip, saved beside its video as {clip}.motion.parquet.
# attrs: fps, speaker style, face source photo, text, seed.
SYNTH_MOTION = pa.schema(
    [
        ("frame", pa.int32()),
        ("time_s", pa.float64()),
        ("yaw", pa.float32()),  # degrees, ksdiff.geometry convention
        ("pitch", pa.float32()),
        ("roll", pa.float32()),
        ("trans", _fixed(3)),  # pixels in the output frame (x, y) and 0 for z
        ("jaw_open", pa.float32()),  # 0 closed .. 1 fully open, drives the mouth warp
        ("mouth_wide", pa.float32()),  # -1 rounded .. 1 spread lips
    ]
)
SCHEMAS["synth_motion"] = SYNTH_MOTION
VERSIONS["synth_motion"] = 1

# Sanity of a leaderboard (ksdiff.report.sanity): ground truth against each floor,
# one row per (metric, floor); floor 'all' for a row that holds for every floor.
# Differences are oriented so that > 0 means ground truth is better.
# attrs: dataset, floors, ci_level, n_boot, seed, failed_weights, verdicts, sources.
SANITY = pa.schema(
    [
        ("metric", pa.string()),
        ("floor", pa.string()),  # mismatched | static | all
        ("n_clips", pa.int32()),  # clips scored for both (the pairs)
        ("gt_mean", pa.float64()),  # mean over those clips of ground truth's clip means (AV offset: |offset|)
        ("floor_mean", pa.float64()),
        ("diff_mean", pa.float64()),  # mean paired difference, > 0: ground truth better
        ("diff_lo", pa.float64()),  # percentile-bootstrap interval of diff_mean
        ("diff_hi", pa.float64()),
        ("verdict", pa.string()),  # pass | fail | undetermined | not applicable | missing
        ("reason", pa.string()),
    ]
)
SCHEMAS["sanity"] = SANITY
VERSIONS["sanity"] = 1

# Raw HDTF -> clips (ksdiff.data.hdtf_prepare): one row per annotated span, and one
# per annotation problem or video without spans (span_index -1). Written into the
# prepared folder as hdtf_preparation.parquet. attrs: videos, annotations, crop.
HDTF_PREPARATION = pa.schema(
    [
        ("clip_id", pa.string()),  # {subset}_{video}_{index}; '' for a problem of no one clip
        ("speaker_id", pa.string()),
        ("subset", pa.string()),  # RD | WDA | WRA
        ("video", pa.string()),
        ("span_index", pa.int32()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("url", pa.string()),
        ("source_path", pa.string()),  # the downloaded video ('' when missing)
        ("listed_resolution", pa.int32()),  # height in {subset}_resolution.txt (0: not listed)
        ("source_width", pa.int32()),
        ("source_height", pa.int32()),
        ("interlaced", pa.bool_()),  # the source's field order says interlaced (deinterlaced)
        ("crop_method", pa.string()),  # fixed | landmarks: the one used (landmarks where crop_wh lists no window)
        ("crop_x", pa.int32()),  # crop window in source pixels
        ("crop_y", pa.int32()),
        ("crop_w", pa.int32()),
        ("crop_h", pa.int32()),
        ("crop_ratio", pa.float64()),  # landmarks: enlargement applied (NaN for fixed)
        ("face_rate", pa.float64()),  # landmarks: fraction of sampled frames with a face (NaN for fixed)
        ("out_path", pa.string()),  # the prepared clip ('' when skipped)
        ("duration_s", pa.float64()),  # of the prepared clip
        ("status", pa.string()),  # ok | reused | skipped
        ("reason", pa.string()),  # why skipped ('' otherwise)
        ("notes", pa.string()),  # what was adjusted (window scaled, clamped, span clipped, no audio)
    ]
)
SCHEMAS["hdtf_preparation"] = HDTF_PREPARATION
VERSIONS["hdtf_preparation"] = 1

# The clip listing a dataset root scans into (ksdiff.data.shards.list_clips), before
# any file is probed: which shard each clip belongs to. attrs: dataset, root,
# shard_size, n_shards. The workflow plans one job per shard from n_shards.
LISTING = pa.schema(
    [
        ("clip_id", pa.string()),
        ("speaker_id", pa.string()),
        ("layout", pa.string()),
        ("path", pa.string()),  # absolute path of the source video
        ("text_path", pa.string()),  # the clip's known text ({video}.txt), '' when there is none
        ("shard", pa.int32()),
    ]
)
SCHEMAS["listing"] = LISTING
VERSIONS["listing"] = 1

# Usable test clips in shards, for inference (ksdiff.infer_shards.test_shards). attrs: shard_size, n_shards.
TEST_SHARDS = pa.schema([("clip_id", pa.string()), ("shard", pa.int32())])
SCHEMAS["test_shards"] = TEST_SHARDS
VERSIONS["test_shards"] = 1

# What one shard job did, clip by clip (ksdiff.data.shards.run_loop): the status and
# reason of the clip's own table, and whether this job made it ('ran'), found it
# current ('kept') or caught an unexpected error ('error', retried by the next run).
# attrs: stage, shard, options_hash, seconds.
SHARD = pa.schema(
    [
        ("clip_id", pa.string()),
        ("status", pa.string()),  # ok | failed | skipped
        ("reason", pa.string()),
        ("action", pa.string()),  # ran | kept | error
        ("seconds", pa.float64()),
    ]
)
SCHEMAS["shard"] = SHARD
VERSIONS["shard"] = 1

# Training packs (ksdiff.data.packs): a shard's usable clips as training-ready arrays in one
# Arrow IPC file, results/{dataset}/packs/{shard}.arrow, read through a memory map. One record
# batch per clip holding one row: the arrays ksdiff.data.clip_arrays.load_clip builds (not
# normalised: stats may change without repacking), flattened row-major; their widths are the
# row's expr_dim / feat_dim / r (feature frames per motion frame). Word tokens depend on the
# model's tokeniser (phones or hashed words, vocab_size), so the transcript's words and times
# are packed and tokenised when a window is cut. coeffs_attrs lacks the per-clip template
# (478x3, not needed by training; the coeffs table keeps it). Schema metadata: pack_id (which
# its index names) and options_hash (ksdiff.data.shards.options_hash of the pack stage). Derived data: rebuilt from the per-clip tables, which stay the record.
PACK = pa.schema(
    [
        ("clip_id", pa.string()),
        ("n_frames", pa.int32()),  # T motion frames
        ("r", pa.int32()),  # feature frames per motion frame: N = T * r
        ("expr_dim", pa.int32()),  # K
        ("feat_dim", pa.int32()),  # D
        ("head", pa.large_list(pa.float32())),  # T*6, ksdiff.data.motion's representation
        ("expr", pa.large_list(pa.float32())),  # T*K
        ("valid", pa.large_list(pa.bool_())),  # T
        ("feat", pa.large_list(pa.float32())),  # N*D, zero-padded where the features ran short
        ("feat_valid", pa.large_list(pa.bool_())),  # N
        ("prosody", pa.large_list(pa.float32())),  # N*2
        ("words", pa.list_(pa.string())),  # the transcript table's words and times
        ("word_start_s", pa.list_(pa.float64())),
        ("word_end_s", pa.list_(pa.float64())),
        ("anchor", pa.string()),  # JSON, ksdiff.data.motion.Anchor.to_dict
        ("coeffs_attrs", pa.string()),  # JSON, the coeffs table's attrs without 'template'
        ("template", pa.large_list(pa.float64())),  # the coeffs table's 'template' attr (478 x 3), flattened
        ("feat_attrs", pa.string()),  # JSON, the features table's attrs
        ("inputs", pa.string()),  # JSON [[mtime_ns, size], ...] of the coeffs, features, transcript tables packed
    ]
)
# 2: the identity template, which inference writes into every prediction (it reads packs only).
VERSIONS["pack"] = 2

# A pack's index, results/{dataset}/packs/{shard}.parquet, and the pack job's shard summary:
# one row per clip of the shard, packed (status ok, its record batch) or not and why.
# Training reads only these at start-up. attrs: pack (file name), pack_id, pack_bytes,
# options_hash, stage, shard, seconds, ran/kept/error counts.
PACK_INDEX = pa.schema(
    [
        ("clip_id", pa.string()),
        ("status", pa.string()),  # ok | skipped (a reasoned refusal, kept) | failed (an error, retried)
        ("reason", pa.string()),
        ("action", pa.string()),  # ran | kept | error
        ("batch", pa.int32()),  # record batch in the pack; -1 when not packed
        ("n_frames", pa.int32()),
        ("expr_dim", pa.int32()),
        ("feat_dim", pa.int32()),
        ("feature_kind", pa.string()),
        ("feat_rate_hz", pa.float64()),
        ("feature_checkpoint", pa.string()),  # JSON ('' for log-mels; path + sha256 of an encoder)
        ("inputs", pa.string()),  # JSON [[mtime_ns, size], ...] of coeffs, features, transcript tables
        ("seconds", pa.float64()),
    ]
)
SCHEMAS["pack_index"] = PACK_INDEX
VERSIONS["pack_index"] = 2  # 2: indexes packs of version 2 (older ones are refused with "rerun ksdiff pack")

# One shard's part of the statistics (ksdiff.data.stats.stats_part): float64 count, mean and
# sum of squared deviations of its usable training clips, merged with Chan et al.'s update
# into the stats table (merge_stats). attrs: shard, info (feature kind/dim/rate/checkpoint,
# expr_dim), clips, first (the first clip's id and coeffs backend/basis).
STATS_PART = pa.schema(
    [
        ("name", pa.string()),  # head | expr | feat
        ("n", pa.int64()),
        ("mean", pa.list_(pa.float64())),
        ("m2", pa.list_(pa.float64())),
    ]
)
SCHEMAS["stats_part"] = STATS_PART
VERSIONS["stats_part"] = 1

# A user study's scores (ksdiff.study.score), studies/{name}/scores.parquet: one row per statistic.
# statistic: mos (method's mean 1-5 score), win_rate (method against opponent, or against all its
# opponents when opponent is ''), bt_strength (Bradley-Terry log-strength, mean 0 over methods),
# krippendorff_alpha (method ''; lo/hi NaN). lo/hi: percentile-bootstrap interval over raters and
# clips. Catch trials and excluded raters are left out. attrs: study_id, name, dataset, kind,
# criteria, methods, exclusion_rule, raters (each with catch trials passed/failed, excluded, reason),
# rejected (file, reason), files, bootstrap_samples, ci_level, seed, bt_alpha.
STUDY_SCORES = pa.schema(
    [
        ("kind", pa.string()),  # mos | ab
        ("criterion", pa.string()),  # lip_sync | head_motion | overall | a configured one
        ("method", pa.string()),
        ("opponent", pa.string()),
        ("statistic", pa.string()),
        ("value", pa.float64()),
        ("lo", pa.float64()),
        ("hi", pa.float64()),
        ("n_ratings", pa.int64()),
        ("n_raters", pa.int32()),
        ("n_clips", pa.int32()),
    ]
)
SCHEMAS["study_scores"] = STUDY_SCORES
VERSIONS["study_scores"] = 1

# The QC table of an external method's videos (eval.external; ksdiff.metrics.external_qc):
# one row per video, whether it is scored and why, with what its check against the
# ground-truth clip of the same id measured (ksdiff.metrics.external_check). Written per
# shard of the videos, results/{dataset}/external_qc/{method}/{shard}.parquet (what that
# shard's scoring job reads), and merged into results/{dataset}/external_qc/{method}.parquet
# (what the leaderboard reads). attrs: dataset, method, fps, sample_rate, thresholds.
EXTERNAL_QC = pa.schema(
    [
        ("clip_id", pa.string()),  # the video's id: a clip of the dataset, or unknown to it
        ("method", pa.string()),  # the external method (eval.external's name)
        ("dataset", pa.string()),  # the dataset it is scored against
        ("path", pa.string()),  # the video
        ("status", pa.string()),  # ok | lag corrected | unchecked | mismatch | no ground truth | other split | ground truth unusable | not extracted
        ("scored", pa.bool_()),
        ("reason", pa.string()),  # '' when scored as it is; else what was corrected or why it is not scored
        ("peak_corr", pa.float64()),  # NaN where not measured (no audio track, no ground truth)
        ("lag_s", pa.float64()),  # positive: the video's audio runs later than the clip's
        ("lag_frames", pa.int32()),
        ("n_frames", pa.int64()),  # the video's frames (0 when not extracted)
        ("n_frames_gt", pa.int64()),  # the ground-truth clip's frames (0 without one)
        ("length_diff_frames", pa.int64()),  # video minus clip, after the lag is removed
    ]
)
SCHEMAS["external_qc"] = EXTERNAL_QC
VERSIONS["external_qc"] = 1
