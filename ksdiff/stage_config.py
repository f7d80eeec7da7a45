"""Which configuration each workflow stage reads, declared once.

Every rule passes `ksdiff` its stage's keys and nothing else (``opts_arg``, called
from workflow/rules/common.smk), so Snakemake reruns a job exactly when an option
its stage reads changes; the per-clip loop (ksdiff.data.shards) hashes the same
keys into each clip's table, so a rerun job redoes exactly the clips whose options
changed. Inside a job every key that is not passed takes its schema default: a key
a stage's code reads must be declared here, or changing it would be silently
ignored by that stage.

Keys are dotted paths into the validated config (``eval.lse_samples`` is
``config["eval"]["lse_samples"]``); ``methods.{method}`` is the job's own method's
entry. Never declared: the list of datasets (a job gets its own dataset's entry,
``job_options``), ``results_dir`` and the other folders (they are the rules' inputs
and outputs), ``eval.external`` (which videos are scored is the rules' inputs).
fps and sample_rate only where the stage reads them.

No import beyond the standard library: the workflow driver's environment
(envs/workflow.yaml) has Snakemake and pyarrow only.
"""
from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path

METHOD_ENTRY = "methods.{method}"

# landmarks: LMD meshes rendered frames with the dataset's landmark options (ksdiff.metrics.video_pair)
_VIDEO_METRICS = ("eval.video_metrics", "eval.video_samples", "landmarks")
# metrics from weights the user supplies (ksdiff.metrics.weighted): which files score FID, FVD, LPIPS, CSIM
_WEIGHTED_METRICS = ("eval.fid_inception", "eval.fvd_i3d", "eval.lpips_alexnet", "eval.arcface_model")
_EVAL_SCORING = ("fps", "eval.lse_samples", "eval.device", "eval.flame_model", "eval.flame_masks", "coeffs.deca_dir", "numerics",
                 *_VIDEO_METRICS,
                 *_WEIGHTED_METRICS)
_STATS_PROTOCOL = ("eval.bootstrap_samples", "eval.ci_level", "eval.seed")

STAGE_KEYS: dict[str, tuple[str, ...]] = {
    # the synthetic corpus (ksdiff.data.synth.corpus; its layout is a flag)
    "synth": ("synth", "fps", "sample_rate"),
    # raw HDTF -> clips: the face finder for spans cropped the landmark way (videos, annotations, crop are flags)
    "hdtf_prepare": ("landmarks.detector_model", "landmarks.min_detection_score"),
    "listing": ("shard_size",),
    "probe": (),
    "manifest": (),
    # per-clip steps (ksdiff.data.shards.STAGES)
    "audio": ("sample_rate",),
    "transcript": ("transcript",),
    "landmarks": ("fps", "landmarks", "dataset.min_duration_s"),  # a clip shorter than QC's minimum fails here
    "pose": ("fps",),  # for landmark tables without their own fps
    "coeffs": ("fps", "coeffs.backend", "coeffs.n_expr", "coeffs.smoothing_cutoff_hz"),
    "deca": ("fps", "coeffs.deca_dir"),
    "features": ("sample_rate", "features"),
    # dataset tables
    "splits": ("dataset.seed", "dataset.val_fraction", "dataset.test_fraction", "dataset.split_file",
               "dataset.split_unlisted"),
    "basis_part": (),  # one shard's expression displacement moments (training clips)
    "basis": ("coeffs.n_expr",),  # merges the parts
    "qc": ("dataset.min_duration_s", "dataset.min_detection_rate", "dataset.max_av_mismatch_s"),
    # training packs (ksdiff.data.packs): a shard's clips as load_clip aligns them (fps: their motion rate)
    "pack": ("fps",),
    "stats_part": (),  # moments of one shard's usable training clips, from its pack
    "stats": (),  # merges the parts
    "test_shards": ("shard_size",),
    # models and predictions
    "train": ("fps", "model", METHOD_ENTRY, "train", "numerics"),
    "infer": ("fps", "infer", "numerics"),
    "baseline": ("fps", "infer"),
    # scoring: --syncnet is always given by the rules, so eval.syncnet (its fallback) is not read
    "syncnet_expert": ("fps", "eval.expert", "eval.expert_max_clips", "eval.expert_check_clips", "numerics"),
    "evaluate": _EVAL_SCORING,
    "evaluate_ground_truth": ("fps", "eval.lse_samples", "eval.device", "numerics", *_WEIGHTED_METRICS, *_VIDEO_METRICS),  # no LVE on FLAME for ground truth
    # an external method's videos (eval.external), one shard at a time: placed against the dataset's clips
    # (ksdiff.metrics.external_qc; fps: the frames a lag is counted in), then scored; the parts merged
    "external_check": ("fps",),
    "merge_external_qc": (),
    "evaluate_external": _EVAL_SCORING,
    "merge_metrics": _EVAL_SCORING,  # a method without any usable test clip is scored (empty) here
    "sanity": _STATS_PROTOCOL,
    "report": ("fps", *_STATS_PROTOCOL, "eval.report_clips", "eval.report_frames"),
}


def stage_keys(stage: str) -> tuple[str, ...]:
    try:
        return STAGE_KEYS[stage]
    except KeyError:
        raise KeyError(f"no stage {stage!r} in ksdiff.stage_config.STAGE_KEYS ({', '.join(STAGE_KEYS)})") from None


def stage_options(config: dict, stage: str, method: str | None = None) -> dict:
    """The part of the validated ``config`` that ``stage`` reads (for ``train``, of ``method``), nested as in the config."""
    out: dict = {}
    for key in stage_keys(stage):
        if key == METHOD_ENTRY:
            if method is None:
                raise ValueError(f"stage {stage!r} reads its method's entry: give method")
            key = f"methods.{method}"
        *parents, leaf = key.split(".")
        src, dst = config, out
        try:
            for p in parents:
                src, dst = src[p], dst.setdefault(p, {})
            dst[leaf] = copy.deepcopy(src[leaf])
        except (KeyError, TypeError):
            raise KeyError(f"stage {stage!r} reads {key}, which the config does not have") from None
    return out


def job_options(config: dict, stage: str, dataset: dict, method: str | None = None) -> dict:
    """What a job of ``stage`` on ``dataset`` (its entry in ``datasets``) is given: its dataset's
    entry (the schema requires ``datasets``; a job never sees another dataset) and its stage's keys."""
    return {"datasets": [dataset], **stage_options(config, stage, method)}


def opts_arg(config: dict, stage: str, dataset: dict, method: str | None = None) -> str:
    """``job_options`` as the shell-quoted JSON of a rule's ``--opts`` (sorted keys: a stable param)."""
    return shlex.quote(json.dumps(job_options(config, stage, dataset, method), sort_keys=True))


# Weights the user points the config at, by key, with the option that says whether the stage uses them
# (key, (option, values that use the weights) or None: always when set). Their paths are options (a new
# path reruns the stage); the files are also the rules' inputs (``weight_files``) and every clip's in the
# per-clip loop, so a file replaced at the same path (a newer mtime, as Snakemake compares inputs) reruns
# the stage too. Left out: coeffs.deca_dir, a whole DECA checkout (its files are the code's, not a list
# of weights).
WEIGHT_KEYS: dict[str, tuple[str, tuple] | None] = {
    "features.pretrained_dir": ("features.kind", ("wav2vec2", "hubert")),
    "transcript.whisper_model_dir": ("transcript.backend", ("whisper",)),
    "eval.fid_inception": None,
    "eval.fvd_i3d": None,
    "eval.lpips_alexnet": None,
    "eval.arcface_model": None,
    "eval.flame_model": None,
    "eval.flame_masks": None,
}


def _get(config: dict, key: str):
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _reads(stage: str, key: str) -> bool:
    """Whether ``stage`` reads ``key`` (declared as the key itself or as a section above it)."""
    return any(key == k or key.startswith(k + ".") for k in stage_keys(stage))


def weight_files(config: dict, stage: str) -> list[str]:
    """The weight files ``stage`` reads under ``config``: each configured file, and a configured folder's
    files (a transformers or faster-whisper checkpoint folder: its weights, config and tokenizer files).
    A path that does not exist is returned as it is, so Snakemake names it as a missing input."""
    out: list[str] = []
    for key, used in WEIGHT_KEYS.items():
        path = _get(config, key)
        if not path or not _reads(stage, key) or (used is not None and _get(config, used[0]) not in used[1]):
            continue
        p = Path(path)
        out += sorted(str(f) for f in p.iterdir() if f.is_file()) if p.is_dir() else [str(p)]
    return out
