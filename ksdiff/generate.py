"""`ksdiff generate`: a speech file and a reference face -> a talking-head mp4.

    audio --(features of the checkpoint's kind, prosody)--+
          --(transcript: given text aligned, or ASR)-------+--> model --> motion
    reference image/video (first frame) --> face mesh --> identity template + anchor
    motion + template + basis (stored in the checkpoint) --> posed landmarks
          --> mesh-warp of the reference frame --> H.264 + the audio as AAC

The checkpoint carries everything besides the two inputs: model weights and
configuration, normalisation statistics, the speech-feature kind it was
trained on, and the expression basis. The reference's own face becomes the
identity (its landmarks, frontalised, as in ksdiff.extract.pose) and its
placement and rotation in the picture the motion's anchor (ksdiff.data.motion):
the model generates head pose relative to a reference frame, which is composed
with the portrait's own fitted pose, so the generated head stays where and how
the portrait's head is (a portrait looking past the camera keeps looking past
it). Checkpoints from before the pose was anchored still generate their
absolute angles, as they did.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ksdiff.data import clip_arrays as ca
from ksdiff.data import motion

log = logging.getLogger(__name__)


class GenerateError(ValueError):
    """The inputs cannot be turned into a video; the message says which and why."""


def read_reference(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB: the image, or the first frame of a video."""
    import cv2

    from ksdiff.io.video import VideoError, iter_frames

    path = Path(path)
    if not path.is_file():
        raise GenerateError(f"reference not found: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is not None:
        return np.ascontiguousarray(bgr[:, :, ::-1])
    try:
        for _, _, _, rgb in iter_frames(path):
            return rgb
    except VideoError as e:
        raise GenerateError(f"reference {path} is neither a readable image nor a video: {e}") from e
    raise GenerateError(f"reference video {path} has no frames")


def reference_face(rgb: np.ndarray, cfg: dict) -> np.ndarray:
    """(478, 3) landmarks (pixels) of the most prominent face in the reference."""
    from ksdiff.extract.landmarks import FaceTracker, LandmarkOptions

    opts = LandmarkOptions.from_cfg(cfg.get("landmarks"))
    opts.refine_landmarks = True  # the template and the renderer use all 478 points
    tracker = FaceTracker(opts)
    try:
        res = tracker(rgb)
    finally:
        tracker.close()
    if res.landmarks is None:
        raise GenerateError(f"no face found in the reference ({res.failure or 'face detection failed'})")
    return np.asarray(res.landmarks, dtype=np.float64)


def identity_and_anchor(landmarks: np.ndarray) -> tuple[np.ndarray, motion.Anchor]:
    """The reference's identity template (canonical frame, inter-ocular units) and its placement and rotation
    (the anchor's yaw/pitch/roll: the pose the landmark fit finds in the portrait)."""
    from ksdiff.extract.pose import build_template, solve_pose
    from ksdiff.geometry import matrix_to_euler

    template = build_template(landmarks[None])
    fit = solve_pose(template, landmarks[None])
    if not fit["valid"][0]:
        raise GenerateError("the reference face could not be fitted (landmarks incomplete)")
    anchor = motion.Anchor(fit["trans"][0], float(fit["scale"][0]), motion.template_size(template), frame=-1,
                           ypr=matrix_to_euler(fit["R"][0]))
    return template, anchor


def basis_from_payload(payload: dict):
    """The expression basis stored in the checkpoint, as ksdiff.extract.basis.Basis."""
    from ksdiff.extract.basis import Basis

    backend = payload["motion"].get("coeffs_backend") or "landmarks"
    if backend != "landmarks":
        raise GenerateError(f"the model was trained on {backend!r} coefficients, which the renderer cannot draw: "
                            "it animates through the landmark expression basis (FLAME decoding is not wired)")
    b = payload.get("basis") or {}
    if "components" not in b or "mean" not in b:
        raise GenerateError("the checkpoint carries no expression basis (train it with results/{dataset}/basis.npz "
                            "present)")

    def arr(k, default=None):
        v = b.get(k, default)
        return np.asarray(v.numpy() if isinstance(v, torch.Tensor) else v, dtype=np.float64)

    k = len(b["components"])
    return Basis(mean=arr("mean"), components=arr("components"), std=arr("std", np.ones(k)),
                 explained_variance_ratio=arr("explained_variance_ratio", np.zeros(k)),
                 n_frames=int(arr("n_frames", 0)), clips=list(b.get("clips", [])), path="(checkpoint)",
                 sha256=str(b.get("sha256", "")))


def speech_features(x: np.ndarray, sr: int, cfg: dict, payload: dict) -> tuple[np.ndarray, np.ndarray]:
    """(feat (N, D), prosody (N, 2)) of the checkpoint's feature kind, checked against it."""
    from ksdiff.extract.features import TooShort, compute
    from ksdiff.infer import check_features

    want = payload["features"]
    fcfg = dict(cfg["features"])
    fcfg.update(kind=want["kind"], rate_hz=float(want["rate_hz"]))
    if want["kind"] == "logmel":
        fcfg["n_mels"] = int(want["dim"])
    try:
        cols, attrs = compute(x, sr, fcfg)
    except TooShort as e:
        raise GenerateError(f"audio too short: {e}") from e
    feat = np.stack(cols["feat"]).astype(np.float32)
    check_features(payload, attrs, feat.shape[1])
    return feat, ca.prosody_features(cols["f0_hz"], cols["voiced"], cols["energy_db"])


def transcript_words(x: np.ndarray, sr: int, cfg: dict, transcript: str | None) -> list[tuple]:
    """(word, start_s, end_s, confidence) rows: the given text aligned, else recognised."""
    from ksdiff.extract import asr_pocketsphinx as ps

    if transcript is not None:
        p = Path(transcript)
        if not p.is_file():
            raise GenerateError(f"transcript file not found: {p}")
        words = ps.normalize_text(p.read_text(encoding="utf-8", errors="replace"))
        if words:
            try:
                return ps.align(x, sr, words)
            except ps.AlignmentError as e:
                log.warning("the transcript does not align with the audio (%s): recognising the words instead", e)
    if cfg["transcript"]["backend"] == "whisper":
        from ksdiff.extract import asr_whisper

        return asr_whisper.recognize(x, sr, cfg["transcript"]["whisper_model_dir"])[0]
    return ps.recognize(x, sr)


@dataclass
class Generated:
    """What `ksdiff generate` renders: the motion as coeffs columns, the identity and the reference."""

    cols: dict  # 'coeffs' schema columns (absolute pose, placed at the portrait's anchor), one sample
    template: np.ndarray  # (478, 3) identity template of the portrait
    anchor: motion.Anchor  # the portrait's placement and fitted rotation
    rgb: np.ndarray  # (H, W, 3) the reference picture
    ref_lm: np.ndarray  # (478, 3) its landmarks
    audio: np.ndarray
    sample_rate: int
    fps: float
    basis: object  # ksdiff.extract.basis.Basis from the checkpoint


def generate_motion(cfg: dict, audio: str, ref: str, checkpoint: str, transcript: str | None = None,
                    seed: int = 0, steps: int | None = None) -> Generated:
    """The motion `ksdiff generate` animates ``ref`` with, before rendering."""
    from ksdiff.infer import InferConfig, build_from_checkpoint, load_checkpoint, pose_frame
    from ksdiff.infer_sampling import sample_motion
    from ksdiff.io.audio import AudioError, load_audio
    from ksdiff.models.transcript import frame_tokens
    from ksdiff.training.device import pick_device

    icfg = InferConfig.from_dict(cfg.get("infer"))
    payload = load_checkpoint(checkpoint)
    basis = basis_from_payload(payload)
    try:
        x, sr, _, _ = load_audio(audio, sample_rate=int(cfg["sample_rate"]))
    except AudioError as e:
        raise GenerateError(f"cannot read the audio {audio}: {e}") from e
    rgb = read_reference(ref)
    ref_lm = reference_face(rgb, cfg)
    template, anchor = identity_and_anchor(ref_lm)

    if icfg.num_threads > 0:
        torch.set_num_threads(icfg.num_threads)
    model = build_from_checkpoint(payload, pick_device(icfg.device))
    fps = float(model.cfg.fps)
    n_frames = max(1, int(round(len(x) / sr * fps)))
    r = model.cfg.feat_per_frame
    feat, pros = speech_features(x, sr, cfg, payload)
    feat, pros, fmask = ca.align_features(feat, pros, n_frames * r)
    if model.cfg.use_transcript and payload["method"] == "ksdiff":
        rows = transcript_words(x, sr, cfg, transcript)
        words = frame_tokens(model.cfg, [w[0] for w in rows], np.array([w[1] for w in rows], float),
                             np.array([w[2] for w in rows], float), n_frames, fps)
        log.info("transcript: %s", " ".join(w[0] for w in rows) or "(no words)")
    else:
        words = np.zeros(n_frames, dtype=np.int64)  # the model takes no transcript
    stats = ca.Stats.from_dict(payload["stats"])
    head, expr = sample_motion(model, stats, feat, fmask, pros, words, 1, int(seed), steps=steps,
                               guidance=icfg.guidance, pose_frame=pose_frame(payload))
    cols = motion.coeffs_from_motion(head[0], expr[0], anchor, fps, pose_frame=pose_frame(payload))
    return Generated(cols, template, anchor, rgb, ref_lm, x, sr, fps, basis)


def generate(cfg: dict, audio: str, ref: str, checkpoint: str, out: str, transcript: str | None = None,
             seed: int = 0, steps: int | None = None) -> int:
    """`ksdiff generate`: write ``out`` (mp4: rendered frames at cfg fps + the audio)."""
    from ksdiff.extract.coeffs import decode_landmarks
    from ksdiff.io.video import write_video
    from ksdiff.render.warp import render_frames

    g = generate_motion(cfg, audio, ref, checkpoint, transcript=transcript, seed=seed, steps=steps)
    _, posed = decode_landmarks(g.cols, g.template, g.basis)
    write_video(out, render_frames(g.rgb, g.ref_lm, posed), fps=g.fps, audio=g.audio, sample_rate=g.sample_rate)
    n_frames = len(posed)
    log.info("wrote %s: %d frames (%.2f s) for %.2f s of audio", out, n_frames, n_frames / g.fps,
             len(g.audio) / g.sample_rate)
    return 0
