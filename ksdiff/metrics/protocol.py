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

    version: str = "ksdiff-metrics-2"  # 2: LVE on FLAME meshes for DECA tables
    fps: float = 25.0  # motion and video frame rate of every metric
    sample_rate: int = 16000  # audio rate of every metric

    # --- LVE (FaceFormer / DiffSpeaker) ---------------------------------
    lve_lip_set: str = "mediapipe_FACEMESH_LIPS"
    lve_lip_indices: tuple[int, ...] = MEDIAPIPE_LIP_INDICES
    lve_variant: str = "l2"  # 'l2' (FaceFormer: max L2 distance) | 'squared_l2' (DiffSpeaker's code)
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
    onset_to_frame: str = "round(onset_time_s * fps); onsets at or after the last motion frame are dropped"

    # --- Diversity (SadTalker-style head-motion spread) -------------------
    diversity_signal: str = "head pose (yaw, pitch, roll) in degrees"
    sample_diversity_def: str = "mean over sample pairs i<j of the mean over frames of ||h_i(t) - h_j(t)||_2"
    temporal_diversity_def: str = "mean over dimensions of the population std (ddof=0) over frames"

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

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """A compact, stable text block for reports (JSON, one key a line)."""
        d = self.as_dict()
        d["lve_lip_indices"] = ",".join(map(str, d["lve_lip_indices"]))
        return json.dumps(d, indent=1, default=list)


PROTOCOL = MetricsProtocol()
