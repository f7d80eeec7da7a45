"""The pinned metric protocol: every constant that changes a reported number.

Published LVE / LSE / BeatAlign / Diversity numbers disagree mostly because
papers differ in these choices (which lip vertices, squared or not, which
onset detector, which smoothing at which frame rate). They live in ONE frozen
dataclass so that a report can print exactly what produced its numbers
(``PROTOCOL.describe()``) and a change is a visible diff here, never a
silently edited literal in a metric module. Bump ``version`` on any change.

Time scaling of Bailando's BeatAlign (defined at 60 fps) to 25 fps: both of
its constants are durations in frames, so they are scaled by 25/60:
  sigma:      sqrt(9) = 3 frames @ 60 fps = 50 ms  -> 3 * 25/60 = 1.25 frames @ 25 fps
  smoothing:  5 frames @ 60 fps = 83.3 ms           -> 5 * 25/60 = 2.0833 frames @ 25 fps
so sigma^2 = 1.5625 (frames @ 25 fps)^2, the same 50 ms tolerance in seconds.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

# MediaPipe's FACEMESH_LIPS connection set
# (mediapipe.python.solutions.face_mesh_connections, mediapipe 0.10.21), as the
# sorted set of landmark indices it touches: outer and inner lip contours, 40
# landmarks. Written out so an upgrade of mediapipe can never change LVE
# silently; tests/test_metrics_lve.py checks it still equals the package's set.
MEDIAPIPE_LIP_INDICES: tuple[int, ...] = (
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181,
    185, 191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402,
    405, 409, 415,
)

# FDD's upper face on landmark meshes: the landmark indices of MediaPipe's eye and eyebrow connection sets
# (FACEMESH_LEFT_EYE | FACEMESH_RIGHT_EYE | FACEMESH_LEFT_EYEBROW | FACEMESH_RIGHT_EYEBROW, mediapipe
# 0.10.21), written out for the same reason as the lips; tests/test_metrics_fdd.py checks the package's.
MEDIAPIPE_UPPER_FACE_INDICES: tuple[int, ...] = (
    7, 33, 46, 52, 53, 55, 63, 65, 66, 70, 105, 107, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163,
    173, 246, 249, 263, 276, 282, 283, 285, 293, 295, 296, 300, 334, 336, 362, 373, 374, 380, 381, 382, 384, 385,
    386, 387, 388, 390, 398, 466,
)

FLAME_LIPS_NOTE = (
    "FLAME meshes (5023 vertices): use the 'lips' region of FLAME's "
    "FLAME_masks.pkl (pass its indices as lip_idx; see "
    "ksdiff.metrics.lve.flame_lip_indices(path)) and pass an explicit scale "
    "(e.g. scale=1e-3 to report millimetres for a mesh in metres), since the "
    "MediaPipe eye-corner indices do not apply. ksdiff.evaluate does so for "
    "DECA tables (lve_flame_* below)."
)


@dataclass(frozen=True)
class MetricsProtocol:
    """Every choice behind the reported metric values, with its reason."""

    # 2: LVE on FLAME meshes for DECA tables.
    # 3: BeatAlign chance-corrected score (beat_chance_*); BeatAlign's sigma
    #    rescaled with fps like its smoothing; onsets kept on frames 0..T-2
    #    (Bailando's cut); LSE refuses a motion fps other than ``fps``.
    # 4: FDD (CodeTalker's cal_metric.py) on landmark and FLAME meshes, MOD (ksdiff's definition),
    #    E-FID (set-level, ksdiff's coefficient space); earlier metrics unchanged, value for value.
    # 5: video metrics without weights, each sample's video against the clip's recorded video: PSNR, SSIM
    #    (scikit-image), CPBD (no reference), F-LMD and M-LMD (ViCo's arithmetic on ksdiff's landmarks);
    #    earlier metrics unchanged. From weights the user supplies: FID (pytorch-fid), FVD (StyleGAN-V's I3D),
    #    LPIPS (lpips), CSIM (InsightFace's ArcFace).
    # 6: F-LMD's definition names its points without irises (468 mesh points where either video's extraction
    #    has none, landmarks.refine_landmarks false), as ksdiff.metrics.lmd computed them since 5; no value changes.
    version: str = "ksdiff-metrics-6"
    fps: float = 25.0  # motion and video frame rate of every metric
    sample_rate: int = 16000  # audio rate of every metric

    # --- LVE (FaceFormer / DiffSpeaker) ---------------------------------
    lve_lip_set: str = "mediapipe_FACEMESH_LIPS"
    lve_lip_indices: tuple[int, ...] = MEDIAPIPE_LIP_INDICES
    lve_variant: str = "l2"  # 'l2' (FaceFormer: max L2 distance) | 'squared_l2' (DiffSpeaker's code)
    # Both variants are scored, each its own metric (lve_l2_*, lve_sql2_*), so a table compares with
    # FaceFormer's L2 numbers and with the squared numbers of DiffSpeaker's and CodeTalker's code.
    lve_variants: tuple[str, ...] = ("l2", "squared_l2")
    # Units: coordinates divided by the inter-ocular distance (outer eye
    # corners) of the ground-truth template, so LVE is free of image size.
    lve_units: str = "inter-ocular distance of the GT template (landmarks 33, 263), canonical head-pose-removed frame"
    lve_eye_corners: tuple[int, int] = (33, 263)  # MediaPipe outer eye corners (subject's right, left)
    # LVE on FLAME meshes (coeffs.backend deca; ksdiff.metrics.flame), its own
    # metric name (lve_l2_mm) because its units differ from the landmark LVE's.
    lve_flame_lip_set: str = "FLAME_masks.pkl 'lips' region (FLAME 2020 topology, 5023 vertices)"
    lve_flame_scale: float = 1e-3  # FLAME is in metres: distances / 1e-3 = millimetres
    lve_flame_units: str = ("millimetres; FLAME 2020 vertices decoded in numpy as DECA's FLAME does, canonical frame "
                            "(global rotation, neck and eye poses zero: expression and jaw only), prediction and GT "
                            "both with the GT clip's FLAME shape code")
    lve_flame_note: str = FLAME_LIPS_NOTE

    # --- BeatAlign (Bailando, scaled from 60 to 25 fps; see module docstring)
    beat_motion_signal: str = "head pose (yaw, pitch, roll) in degrees; speed = L2 norm of the frame-to-frame difference, assigned to the earlier frame"
    beat_sigma_frames: float = 3.0 * 25.0 / 60.0  # 1.25 frames = Bailando's sigma 3 @ 60 fps
    beat_smooth_sigma_frames: float = 5.0 * 25.0 / 60.0  # 2.083 frames = Bailando's 5 @ 60 fps
    beat_smooth: str = "scipy.ndimage.gaussian_filter1d, mode='reflect'"
    # Bailando uses argrelextrema(np.less); find_peaks also returns a flat
    # minimum (equal neighbours, e.g. a symmetric stop) as its middle frame.
    beat_minima: str = "scipy.signal.find_peaks on -speed (plateaus -> middle frame)"
    onset_detector: str = "librosa.onset.onset_strength + librosa.onset.onset_detect (backtrack=False)"
    onset_hop_length: int = 160  # 10 ms at 16 kHz: finer than a 40 ms video frame
    onset_n_fft: int = 512  # 32 ms window: the usual speech analysis frame at 16 kHz
    onset_n_mels: int = 64  # 128 (librosa's default) leaves empty mel bands at n_fft=512
    onset_fmax: float = 8000.0  # Nyquist at 16 kHz
    # librosa's peak-picking defaults (30/0/100/100/30 ms, delta 0.07),
    # written out in 10 ms onset frames so they cannot drift with librosa.
    onset_pre_max: int = 3
    onset_post_max: int = 1
    onset_pre_avg: int = 10
    onset_post_avg: int = 11
    onset_wait: int = 3
    onset_delta: float = 0.07
    onset_to_frame: str = ("round(onset_time_s * fps); onsets on frame T-1 or later are dropped (T motion frames): "
                           "kept onsets lie on frames 0..T-2, the frames the head speed covers, as Bailando cuts "
                           "its music beats to len(kinetic_vel) = T-1")
    beat_fps_scaling: str = ("beat_sigma_frames and beat_smooth_sigma_frames are durations pinned in frames at "
                             "`fps`; at another motion fps both are multiplied by motion_fps / fps")
    # Chance-corrected BeatAlign (ksdiff.metrics.beat_chance): Bailando's score
    # minus its mean over the same motion against the clip's onsets circularly
    # shifted (mod T-1) by these seeded offsets, so unrelated motion scores ~0.
    beat_chance_shifts: int = 50  # offsets drawn per clip
    beat_chance_min_shift_s: float = 2.0  # offsets in [2 s, T-1 frames - 2 s]: no onset stays near its own time
    beat_chance_seed: int = 0  # numpy.random.default_rng(seed).integers(lo, hi + 1, size=shifts)
    beat_chance_def: str = "BA(motion, onsets) - mean_k BA(motion, (onsets + o_k) mod (T-1)); NaN for a clip under 2 x min shift"

    # --- Diversity (SadTalker-style head-motion spread) -------------------
    diversity_signal: str = "head pose (yaw, pitch, roll) in degrees"
    sample_diversity_def: str = "mean over sample pairs i<j of the mean over frames of ||h_i(t) - h_j(t)||_2"
    temporal_diversity_def: str = "mean over dimensions of the population std (ddof=0) over frames"

    # --- FDD, upper-face dynamics deviation (CodeTalker's cal_metric.py) ---------
    # Per upper-face vertex v: d_v(t) = ||x_v(t) - template_v||^2 (squared displacement from the clip's
    # neutral template), s_v = std over frames of d_v (numpy's np.std, ddof 0); a sequence's dynamics is the
    # mean of s_v over the region; FDD = dynamics(GT) - dynamics(prediction), signed (positive: the
    # prediction moves its upper face less), per clip and sample; the leaderboard averages over clips as
    # CodeTalker averages over sequences. Frames are those valid in both sequences (first min(T) frames).
    fdd_def: str = ("mean_v std_t ||gt_v(t) - tpl_v||^2 - mean_v std_t ||pred_v(t) - tpl_v||^2 over upper-face "
                    "vertices v (np.std, ddof 0), canonical head-pose-removed frame; signed, GT minus prediction")
    # Landmark meshes: MediaPipe's FACEMESH_LEFT/RIGHT_EYE and FACEMESH_LEFT/RIGHT_EYEBROW connection sets
    # (mediapipe 0.10.21), the upper face MediaPipe names; neutral template = the clip's identity template
    # (what decode_landmarks adds expression to); coordinates divided by its inter-ocular distance, so FDD
    # is in squared inter-ocular units (fdd_iod2).
    fdd_landmark_region: str = "mediapipe FACEMESH_LEFT_EYE | RIGHT_EYE | LEFT_EYEBROW | RIGHT_EYEBROW"
    fdd_landmark_indices: tuple[int, ...] = MEDIAPIPE_UPPER_FACE_INDICES
    # FLAME meshes: the union of FLAME_masks.pkl's 'forehead' and 'eye_region' (CodeTalker reads its upper
    # face from an index file; ksdiff names FLAME's regions); neutral template = the GT clip's shape code
    # with zero expression and jaw; millimetres, so FDD is in mm² (fdd_mm2).
    fdd_flame_regions: tuple[str, ...] = ("forehead", "eye_region")

    # --- MOD, mouth opening distance: ksdiff's definition (DiffPoseTalk published no code) ----
    mod_version: str = "ksdiff-mod-1"
    mod_def: str = ("mean over frames valid in both of |o_pred(t) - o_gt(t)|, o(t) = ||x_13(t) - x_14(t)||_2 "
                    "(MediaPipe's inner-lip midpoints, upper 13 and lower 14) in the canonical frame divided by the "
                    "GT template's inter-ocular distance; ksdiff's own definition, not DiffPoseTalk's (unpublished); "
                    "landmark meshes only (no inner-lip vertex pair is pinned for FLAME)")
    mod_lip_pair: tuple[int, int] = (13, 14)

    # --- E-FID: Frechet distance of expression-coefficient distributions (set-level) ---------
    efid_def: str = ("||mu_gt - mu_m||^2 + tr(S_gt + S_m - 2 sqrtm(S_gt S_m)) (scipy.linalg.sqrtm, real part, as "
                     "pytorch-fid) between the Gaussians fitted (mean, covariance ddof 1) to every valid frame of "
                     "ground truth and of every sample of the method, over the scored test clips")
    efid_space: str = ("ksdiff's coefficients: the dataset's PCA expression basis (landmark backend), or FLAME's 50 "
                       "expression + 3 jaw values (deca backend); NOT comparable with E-FID tables computed on "
                       "Deep3DFaceRecon's 64 expression coefficients")

    # --- Video metrics without weights (eval.video_metrics; ksdiff.metrics.video_pair) ---------------
    video_reference: str = ("the clip's recorded video (the dataset's file, decoded at fps as for extraction), frame t "
                            "against the method's frame t over the frames both have; the method's frames: its motion "
                            "rendered by the image warp over the clip's reference frame (ksdiff.render.warp), or an "
                            "external method's own video after its audio lag is removed (ksdiff.metrics.external_check); "
                            "no spatial alignment: frames of another size than the recorded video are not scored")
    psnr_def: str = ("mean over frames of skimage.metrics.peak_signal_noise_ratio(ref, pred, data_range=255) on uint8 "
                     "RGB, 10 log10(255^2 / MSE) over pixels and channels; +inf on a frame equal to its reference "
                     "(the clip's row is then left out with that reason, not capped)")
    ssim_def: str = ("mean over frames of skimage.metrics.structural_similarity(ref, pred, data_range=255, "
                     "channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False) on uint8 RGB "
                     "(Wang et al. 2004: 11x11 Gaussian window, K1 0.01, K2 0.03, mean of the R, G, B SSIMs), "
                     "no downsampling (piq's and ssim.m's default average-pools frames over 384 px first)")
    cpbd_def: str = ("mean over frames of CPBD (Narvekar & Karam 2011) as python-cpbd 1.0.7's cpbd.compute (ViCo's "
                     "compute_cpbd.py) on cv2's grey frame: Canny blocks of 64 px with > 0.2% edges, Marziliano widths "
                     "at row-direction Sobel edges, w_JNB 5 (contrast <= 50) else 3, beta 3.6, share of edges with "
                     "P_blur <= 63%; ksdiff.metrics.cpbd is equal to it value for value, vectorised")
    lmd_def: str = ("mean over frames with a face in both videos of the mean over points and x, y of |pred - ref| in "
                    "pixels of the recorded video, as ViCo's compute_lmd.py (L1 per coordinate, same frame, no "
                    "alignment), on ksdiff's 478-point MediaPipe extraction of both videos (rendered frames meshed "
                    "with the dataset's landmark options) instead of face_alignment's 68 points: F-LMD all 478 (the "
                    "468 mesh points where either video's extraction has no irises, landmarks.refine_landmarks "
                    "false), M-LMD the 40 FACEMESH_LIPS points; not comparable with ViCo's 68-point values")
    lmd_mouth_indices: tuple[int, ...] = MEDIAPIPE_LIP_INDICES

    # --- Metrics from weights the user supplies (ksdiff.metrics.weighted; never downloaded) -------------
    # Each needs its eval key (fid_inception, fvd_i3d, lpips_alexnet, arcface_model); without it every clip
    # records why and no number is given. The weights' sha256 is in the table's attrs and the report.
    fid_def: str = ("Frechet distance (pytorch-fid's calculate_frechet_distance arithmetic, covariance ddof 1, "
                    "eps 1e-6 on the diagonal for a singular product) between Gaussians fitted to the pool3 "
                    "activations (2048) of pytorch-fid's InceptionV3 with the FID Inception weights "
                    "(pt_inception-2015-12-05), frames as RGB uint8 / 255, resized to 299 bilinear inside the "
                    "model; set-level: one value per method over all its scored test clips, no interval.")
    fid_frames: str = ("every frame of the clip's recorded video (ground truth's side) and every frame of each "
                       "scored sample of the method (rendered by the image warp, or an external method's own "
                       "video), whole frames at their size")
    fvd_def: str = ("StyleGAN-V's FVD: I3D (i3d_torchscript.pt, Kinetics-400) features (400) of 16-frame windows "
                    "called with rescale=True, resize=True, return_features=True on uint8 (b, 3, 16, H, W); "
                    "every non-overlapping window from frame 0 (StyleGAN-V draws random offsets); mean and "
                    "covariance divided by N; ||mu_g - mu_r||^2 + tr(S_g + S_r - 2 sqrtm(S_g S_r)), real part; "
                    "real = the clips' recorded videos, generated = each scored sample's frames; set-level.")
    lpips_def: str = ("mean over frames of lpips.LPIPS(net='alex', version='0.1') (the package's linear layers, "
                      "torchvision's ImageNet AlexNet backbone) of the method's frame t against the recorded "
                      "video's frame t, both scaled as lpips.im2tensor (x / 127.5 - 1), whole frames; frames of "
                      "another size are not scored (no rescaling)")
    csim_def: str = ("mean over frames with a face in both of the cosine similarity (InsightFace's compute_sim) "
                     "of ArcFace embeddings (an InsightFace ONNX model run by ArcFaceONNX: norm_crop to 112 px on "
                     "5 points, its own input scaling) of the method's frame t and the recorded video's frame t; "
                     "5 points from ksdiff's MediaPipe landmarks (iris centres 468, 473, nose tip 1, mouth "
                     "corners 61, 291), not from InsightFace's SCRFD detector")

    # --- LSE-D / LSE-C (Wav2Lip's protocol on SyncNet) --------------------
    syncnet_vshift: int = 15  # offsets -15..+15 frames
    syncnet_window_frames: int = 5  # 5 video frames per window
    syncnet_mfcc_steps: int = 20  # 20 MFCC steps (100 Hz) per window
    syncnet_mfcc_per_frame: int = 4  # 100 Hz / 25 fps
    # python_speech_features.mfcc defaults, exactly as syncnet_python calls it.
    mfcc: str = "python_speech_features.mfcc(int16 signal, 16000): winlen 0.025, winstep 0.01, numcep 13, nfilt 26, nfft 512, preemph 0.97, ceplifter 22, appendEnergy True"
    # syncnet_python reads the wav with scipy.io.wavfile (int16 values); the
    # log-energy coefficient depends on that scale, so float audio is
    # converted as ffmpeg's pcm_s16le does: round(x * 32768), clipped.
    audio_int16_scale: float = 32768.0
    syncnet_channel_order: str = "BGR"  # syncnet_python reads crops with cv2.imread
    syncnet_input_range: str = "raw 0..255 floats, no mean/std normalisation"
    syncnet_offset_sign: str = "offset = vshift - argmin; > 0 means the audio leads the video (sound before lips)"
    syncnet_lse_c: str = "median(mdist) - min(mdist)"
    # Face crops: syncnet_python's framing applied to a box from our landmarks.
    crop_size: int = 224  # SyncNetModel.S needs ~211..241 px inputs; syncnet_python uses 224
    crop_scale: float = 0.40  # syncnet_python PipelineConfig.crop_scale
    crop_median_frames: int = 13  # syncnet_python medfilt kernel on box size and centre
    crop_pad_value: int = 110  # syncnet_python border colour (gray)
    crop_box: str = "square box centred on the bounding box of all 478 landmarks (x, y), side = max(width, height) * crop_box_scale (stands in for S3FD's face box)"
    crop_box_scale: float = 1.0
    crop_resize: str = "cv2.resize INTER_LINEAR (syncnet_python's default)"
    # Where LSE here departs from syncnet_python's pipeline (syncnet_pipeline.py), one sentence each;
    # the report lists them in its protocol section.
    lse_deviations: tuple[str, ...] = (
        "Face box: syncnet_python detects faces with S3FD (confidence >= 0.9, on frames scaled by 0.25); ksdiff uses "
        "the bounding box of the 478 MediaPipe landmarks made square (side = max(width, height) x crop_box_scale, "
        "1.0), which was never calibrated against S3FD boxes (S3FD's weights are not available here), so crops may "
        "sit higher or be sized differently than syncnet_python's.",
        "No scene detection and no track filters: syncnet_python splits the video into scenes (PySceneDetect "
        "ContentDetector), links detections into tracks (IoU > 0.5, gaps of at most 25 frames) and scores only "
        "tracks longer than 50 frames (min_track) whose mean box side exceeds 100 px (min_face_size); ksdiff scores "
        "every clip as one track from its first to its last frame, whatever its length or face size (frames "
        "without landmarks take a box interpolated in time).",
        "No re-encoding: syncnet_python converts the video to a 25 fps AVI (ffmpeg, q:v 2), extracts JPEG frames, "
        "writes the 224 px crops to an XVID AVI and decodes that to JPEG again before SyncNet reads it; ksdiff "
        "crops the decoded (or rendered) frames directly and hands the crops to SyncNet in memory, and uses the "
        "clip's 16 kHz wav without ffmpeg's slicing and re-muxing, so no compression artefacts are added.",
        "Box smoothing on short clips: syncnet_python median-filters box size and centre with a 13-frame kernel "
        "(crop_median_frames, scipy.signal.medfilt, zero-padded edges) on tracks that are always longer than 50 "
        "frames; ksdiff uses the same filter on clips of 13 frames or more, but on a shorter clip shrinks the "
        "kernel to the largest odd length not above its frame count (6 frames: 5; 7-8: 7; 9-10: 9; 11-12: 11) so "
        "that the zero padding never fills most of a window; clips under 6 frames get no LSE (syncnet_python's window count, frames "
        "minus 5, must be at least 1).",
        "One face per frame: syncnet_python scores every face track it finds and its pipeline reports the best "
        "(largest confidence, smallest distance over tracks); ksdiff scores only the tracked speaking face "
        "(ksdiff.extract.landmarks: with several faces, the one whose mouth opening varies most over the first "
        "2 s, then followed by box overlap; rendered methods have one face by construction).",
    )

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """A compact, stable text block for reports (JSON, one key a line)."""
        d = self.as_dict()
        d["lve_lip_indices"] = ",".join(map(str, d["lve_lip_indices"]))
        d["fdd_landmark_indices"] = ",".join(map(str, d["fdd_landmark_indices"]))
        d["lmd_mouth_indices"] = "FACEMESH_LIPS, as lve_lip_indices"
        return json.dumps(d, indent=1, default=list)


PROTOCOL = MetricsProtocol()
