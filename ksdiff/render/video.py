"""Coefficient tables -> rendered mp4 with the clip's audio.

The glue between the motion tables and the two renderers: pick one sample of
a coeffs table, decode it to posed landmarks with the clip's identity
template and the expression basis, render (image warp of the reference frame,
or shaded mesh) and write H.264 + AAC. The reference frame of a clip is its
first frame with a detected face, taken from the source video at the motion
frame rate, with that frame's landmarks.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import numpy as np

from ksdiff.io import parquet

log = logging.getLogger(__name__)

MODES = ("warp", "mesh")


class RenderError(RuntimeError):
    """A clip cannot be rendered (table not ok, no face in the reference, ...)."""


def read_coeffs(path: str | Path) -> parquet.Table:
    """A coeffs table that must be ok (a failed/skipped table raises with its reason)."""
    t = parquet.read_table(path, "coeffs")
    if not t.ok:
        raise RenderError(f"{path}: coeffs table is {t.status}: {t.reason}")
    return t


def template_of(table: parquet.Table) -> np.ndarray:
    """The (478, 3) identity template stored in a coeffs table's attrs."""
    tpl = table.attrs.get("template")
    if tpl is None:
        raise RenderError("coeffs table has no 'template' attribute")
    tpl = np.asarray(tpl, dtype=np.float64)
    if tpl.ndim != 2 or tpl.shape[1] != 3:
        raise RenderError(f"template must be (478, 3), got {tpl.shape}")
    return tpl


def samples_of(table: parquet.Table) -> list[int]:
    return sorted(int(s) for s in np.unique(table.column("sample")))


def select_sample(table: parquet.Table, sample: int = 0):
    """The rows of one sample, sorted by frame, as a pyarrow Table."""
    import pyarrow.compute as pc

    t = table.table
    rows = t.filter(pc.equal(t.column("sample"), sample))
    if rows.num_rows == 0:
        raise RenderError(f"no rows for sample {sample} (samples: {samples_of(table)})")
    return rows.sort_by("frame")


def decodable(table: parquet.Table) -> str:
    """'' when the table's coefficients decode to landmarks through the expression basis, else why not."""
    backend = table.attrs.get("backend", "landmarks")
    if backend == "landmarks":
        return ""
    return (f"coefficients of the {backend!r} backend are not in the landmark expression basis: no landmarks to "
            "render (rendering FLAME meshes is not wired) or to measure landmark lips on (LVE on FLAME meshes, "
            "lve_*_mm, needs FLAME ground truth and eval.flame_model + eval.flame_masks)")


def decode_sample(table: parquet.Table, template: np.ndarray, basis, sample: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(aligned, posed) (T, 478, 3) landmarks of one sample; invalid frames are NaN."""
    from ksdiff.extract.coeffs import decode_landmarks

    why = decodable(table)
    if why:
        raise RenderError(why)
    rows = select_sample(table, sample)
    cols = {k: parquet.column_to_numpy(rows.column(k)) for k in ("rotvec", "trans", "scale")}
    cols["expr"] = np.stack(parquet.column_to_numpy(rows.column("expr"))).astype(np.float64)
    aligned, posed = decode_landmarks(cols, template, basis)
    aligned = np.array(aligned, dtype=np.float64)
    posed = np.array(posed, dtype=np.float64)
    valid = rows.column("valid").to_numpy(zero_copy_only=False).astype(bool)
    aligned[~valid] = np.nan
    posed[~valid] = np.nan
    return aligned, posed


def load_basis_any(basis):
    """A loaded basis, or load it from a path."""
    if isinstance(basis, (str, Path)):
        from ksdiff.extract.basis import load_basis

        return load_basis(basis)
    return basis


def reference_frame(results: str | Path, clip: str, fps: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(rgb (H, W, 3) uint8, landmarks (478, 3) pixels, frame index) of a clip's reference.

    The first motion frame with a detected face: its landmarks from
    ``{results}/landmarks/{clip}.parquet`` and its pixels from the source video
    named in ``{results}/manifest.parquet``, read at the same frame rate.
    """
    from ksdiff.io.video import iter_frames

    results = Path(results)
    lm = parquet.read_table(results / "landmarks" / f"{clip}.parquet", "landmarks")
    if not lm.ok:
        raise RenderError(f"landmarks of {clip} are {lm.status}: {lm.reason}")
    detected = lm.column("detected").astype(bool)
    if not detected.any():
        raise RenderError(f"{clip}: no frame with a detected face")
    row = int(np.argmax(detected))
    frame = int(lm.column("frame")[row])
    points = lm.column("landmarks")[row].reshape(-1, 3).astype(np.float64)
    man = parquet.read_table(results / "manifest.parquet", "manifest").to_pandas()
    hit = man.loc[man["clip_id"] == clip, "path"]
    if hit.empty:
        raise RenderError(f"{clip} is not in {results / 'manifest.parquet'}")
    rate = float(lm.attrs.get("fps", fps))
    for k, _, _, rgb in iter_frames(hit.iloc[0], rate):
        if k == frame:
            return rgb, points, frame
    raise RenderError(f"{clip}: video ended before reference frame {frame}")


def frames_for(
    posed: np.ndarray,
    mode: str,
    ref_rgb: np.ndarray | None = None,
    ref_landmarks: np.ndarray | None = None,
    size: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
    """Rendered frames of (T, 478, 3) posed landmarks: 'warp' needs the reference, 'mesh' a size."""
    if mode == "warp":
        from ksdiff.render.warp import render_frames

        if ref_rgb is None or ref_landmarks is None:
            raise RenderError("the warp renderer needs a reference frame and its landmarks")
        return render_frames(ref_rgb, ref_landmarks, posed)
    if mode == "mesh":
        from ksdiff.render.shaded import render_mesh

        size = size or (ref_rgb.shape[:2] if ref_rgb is not None else None)
        if size is None:
            raise RenderError("the mesh renderer needs a frame size")
        return render_mesh(posed, size)
    raise ValueError(f"unknown render mode {mode!r}; expected one of {MODES}")


def render_clip(
    coeffs_path: str | Path,
    template: np.ndarray | None,
    basis,
    ref_rgb: np.ndarray,
    ref_landmarks: np.ndarray | None,
    audio_wav: str | Path | None,
    out_mp4: str | Path,
    mode: str = "warp",
    sample: int = 0,
    fps: float = 25.0,
) -> int:
    """Render one sample of a coeffs table to ``out_mp4`` with the clip's audio; returns the frame count.

    template None: the table's own 'template' attribute. basis: a loaded basis
    or its path. mode 'mesh' uses ``ref_rgb`` only for the frame size.
    """
    from tqdm import tqdm

    from ksdiff.io.audio import read_wav
    from ksdiff.io.video import write_video

    table = read_coeffs(coeffs_path)
    template = template_of(table) if template is None else np.asarray(template, dtype=np.float64)
    _, posed = decode_sample(table, template, load_basis_any(basis), sample)
    rate = float(table.attrs.get("fps", fps))
    audio, sr = (None, 16000)
    if audio_wav is not None:
        audio, sr = read_wav(audio_wav)
    frames = frames_for(posed, mode, ref_rgb, ref_landmarks)
    bar = tqdm(frames, total=len(posed), desc=f"render {Path(out_mp4).name}", unit="frame", disable=None)
    write_video(out_mp4, bar, fps=rate, audio=audio, sample_rate=sr)
    log.info("rendered %d frames (%s) to %s", len(posed), mode, out_mp4)
    return len(posed)


def render_command(
    cfg: dict,
    coeffs: str,
    results: str,
    clip: str,
    out: str,
    mode: str = "warp",
    sample: int = 0,
    basis: str | None = None,
) -> int:
    """`ksdiff render`: one clip's (or prediction's) coefficients as an mp4 over the clip's reference frame.

    The template is the ground-truth clip's ({results}/coeffs/{clip}.parquet)
    so predictions are shown with the speaker's identity; the basis defaults
    to {results}/basis.npz; the audio is {results}/audio/{clip}.wav.
    """
    results_p = Path(results)
    gt = read_coeffs(results_p / "coeffs" / f"{clip}.parquet")
    ref_rgb, ref_lm, _ = reference_frame(results_p, clip, cfg["fps"])
    wav = results_p / "audio" / f"{clip}.wav"
    render_clip(
        coeffs,
        template_of(gt),
        basis or results_p / "basis.npz",
        ref_rgb,
        ref_lm,
        wav if wav.exists() else None,
        out,
        mode=mode,
        sample=int(sample),
        fps=cfg["fps"],
    )
    return 0
