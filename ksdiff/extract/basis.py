"""`ksdiff basis` (or `basis-part` per shard and `merge-basis`): the PCA expression basis of the training split.

The second of the three motion-coefficient steps (ksdiff.extract.pose -> ksdiff.extract.basis ->
ksdiff.extract.coeffs): the training clips' aligned landmarks minus their identity templates
(``pose_displacements``, inter-ocular units) -> mean displacement and orthonormal components (.npz),
which one basis shares across speakers.
"""
from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ksdiff.extract.pose import TEMPLATE_IOD, pose_displacements
from ksdiff.io.files import atomic_write_bytes
from ksdiff.io.parquet import read_status, read_table
from ksdiff.io.schemas import N_LANDMARKS

log = logging.getLogger(__name__)

BASIS_MAX_FRAMES = 200_000  # PCA frame budget; more training frames are subsampled evenly


@dataclass
class Basis:
    """A PCA expression basis: d ~ mean + expr @ components (d: 1434 = 478 x 3)."""

    mean: np.ndarray  # (1434,)
    components: np.ndarray  # (K, 1434), orthonormal rows
    std: np.ndarray  # (K,), sqrt of the explained variance
    explained_variance_ratio: np.ndarray  # (K,)
    n_frames: int = 0
    clips: list = field(default_factory=list)
    path: str = ""
    sha256: str = ""

    @property
    def n_expr(self) -> int:
        return len(self.components)


def load_basis(path) -> Basis:
    """Read a basis written by fit_basis (with its path and sha256, for provenance)."""
    raw = Path(path).read_bytes()
    z = np.load(io.BytesIO(raw), allow_pickle=False)
    return Basis(
        mean=z["mean"].astype(np.float64),
        components=z["components"].astype(np.float64),
        std=z["std"].astype(np.float64),
        explained_variance_ratio=z["explained_variance_ratio"].astype(np.float64),
        n_frames=int(z["n_frames"]),
        clips=[str(c) for c in z["clips"]],
        path=str(path),
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def fit_basis(cfg: dict, splits, pose: list, out, pose_dir: str | None = None) -> None:
    """PCA expression basis over the training split's pose tables -> ``out`` (.npz).

    ``pose``: pose tables, or with ``pose_dir`` the pose step's shard summaries
    (ksdiff.data.shards), whose clips' tables lie in ``pose_dir``, in shard order.

    The covariance is accumulated clip by clip in float64 and diagonalised
    (numpy eigh): the same components as an SVD of the stacked frames, but
    memory stays at one clip plus a 1434x1434 matrix whatever the dataset size.
    Beyond BASIS_MAX_FRAMES training frames every k-th frame is used.
    """
    k_req = int(cfg["coeffs"]["n_expr"])
    usable = _training_pose_tables(splits, pose, pose_dir)
    if not usable:
        n_pose = len(pose) if isinstance(pose, (list, tuple)) else 1
        raise ValueError(f"no usable training clip among the pose tables of {n_pose} "
                         f"{'shard summaries' if pose_dir else 'clips'}")
    stride = _basis_stride(usable)
    dim = N_LANDMARKS * 3
    n, acc, xtx, clips = 0, np.zeros(dim), np.zeros((dim, dim)), []
    for clip, d in _displacements(usable, stride):
        n += len(d)
        acc += d.sum(0)
        xtx += d.T @ d
        clips.append(clip)
    if n < 2:
        raise ValueError(f"{n} valid training frames: at least 2 are needed for an expression basis")
    mean = acc / n
    _write_basis(out, k_req, n, mean, (xtx - n * np.outer(mean, mean)) / (n - 1), stride, clips)


def _training_pose_tables(splits, pose, pose_dir: str | None) -> list[Path]:
    """The ok pose tables of training clips among ``pose`` (tables, or shard summaries with ``pose_dir``)."""
    st = read_table(splits, "splits").table
    train = {c for c, s in zip(st.column("clip_id").to_pylist(), st.column("split").to_pylist()) if s == "train"}
    paths = [Path(p) for p in (pose if isinstance(pose, (list, tuple)) else [pose])]
    if pose_dir is not None:
        paths = [Path(pose_dir) / f"{c}.parquet" for p in paths
                 for c in read_table(p, "shard").table.column("clip_id").to_pylist()]
    return [p for p in paths if p.stem in train and read_status(p)[0] == "ok"]


def _displacements(tables: list[Path], stride: int):
    """(clip, its valid frames' displacements (n, 1434), every ``stride``-th) for each table with any."""
    for p in tables:
        _, d, valid = pose_displacements(read_table(p, "pose"))
        d = d[valid][::stride]
        if len(d):
            yield p.stem, d


def _basis_stride(tables: list[Path]) -> int:
    """Every k-th frame so that at most BASIS_MAX_FRAMES of ``tables``' frames enter (Parquet footers only)."""
    total = sum(pq.read_metadata(p).num_rows for p in tables)
    return max(1, int(np.ceil(total / BASIS_MAX_FRAMES)))


def _write_basis(out, k_req: int, n: int, mean: np.ndarray, cov: np.ndarray, stride: int, clips: list[str]) -> None:
    """Diagonalise the displacement covariance of ``n`` frames and write the basis (.npz)."""
    dim = N_LANDMARKS * 3
    k = min(k_req, n - 1, dim)
    if k < k_req:
        log.warning("only %d training frames: expression basis has %d components instead of n_expr=%d", n, k, k_req)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.clip(evals[order], 0, None), evecs[:, order]
    comps = evecs[:, :k].T
    # Fix each component's sign (largest entry positive) so reruns agree.
    comps *= np.sign(comps[np.arange(k), np.abs(comps).argmax(1)])[:, None]
    buf = io.BytesIO()
    np.savez(
        buf,
        mean=mean.astype(np.float32),
        components=comps.astype(np.float32),
        std=np.sqrt(evals[:k]).astype(np.float32),
        explained_variance_ratio=(evals[:k] / max(evals.sum(), 1e-30)).astype(np.float32),
        n_frames=np.int64(n),
        n_expr=np.int64(k),
        n_expr_requested=np.int64(k_req),
        frame_stride=np.int64(stride),
        clips=np.array(clips),
        template_iod=np.float64(TEMPLATE_IOD),
    )
    atomic_write_bytes(out, buf.getvalue())
    log.info("expression basis: %d components from %d frames of %d clips (%.1f%% variance)", k, n, len(clips), 100 * evals[:k].sum() / max(evals.sum(), 1e-30))


# The basis as map-reduce: one job per shard accumulates its training clips' displacement
# moments (count, mean, centred scatter, float64, Chan et al.'s update), one small job merges
# them and diagonalises. Each shard subsamples its own frames to BASIS_MAX_FRAMES (the
# single job's budget was for the whole dataset, to bound one serial job; a shard job is
# bounded by its shard), so the result equals ``fit_basis``'s whenever the training frames
# fit that budget (the demo's 7k frames) and uses more frames, not fewer, beyond it.


def basis_part(cfg: dict, splits: str, pose: str, out: str, pose_dir: str | None = None) -> int:
    """`ksdiff basis-part`: displacement moments of one shard's training clips -> ``out`` (.npz)."""
    usable = _training_pose_tables(splits, [pose], pose_dir)
    stride = _basis_stride(usable) if usable else 1
    dim = N_LANDMARKS * 3
    n, mean, m2, clips = 0, np.zeros(dim), np.zeros((dim, dim)), []
    for clip, d in _displacements(usable, stride):
        n, mean, m2 = _merge_scatter(n, mean, m2, len(d), d.mean(0), (d - d.mean(0)).T @ (d - d.mean(0)))
        clips.append(clip)
    buf = io.BytesIO()
    np.savez(buf, n=np.int64(n), mean=mean, m2=m2, frame_stride=np.int64(stride), clips=np.array(clips, dtype=str))
    atomic_write_bytes(out, buf.getvalue())
    log.info("basis part %s: %d frames of %d training clips (stride %d)", Path(out).stem, n, len(clips), stride)
    return 0


def _merge_scatter(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Chan et al.'s update of (count, mean, centred scatter matrix)."""
    if n_a == 0:
        return n_b, mean_b, m2_b
    n = n_a + n_b
    delta = mean_b - mean_a
    return n, mean_a + delta * n_b / n, m2_a + m2_b + np.outer(delta, delta) * n_a * n_b / n


def merge_basis(cfg: dict, parts: list[str], out: str) -> int:
    """`ksdiff merge-basis`: the expression basis from the shards' parts (``fit_basis``'s values)."""
    dim = N_LANDMARKS * 3
    n, mean, m2, clips, stride = 0, np.zeros(dim), np.zeros((dim, dim)), [], 1
    for p in parts:
        with np.load(p, allow_pickle=False) as z:
            if int(z["n"]):
                n, mean, m2 = _merge_scatter(n, mean, m2, int(z["n"]), z["mean"], z["m2"])
                clips += [str(c) for c in z["clips"]]
                stride = max(stride, int(z["frame_stride"]))
    if n < 2:
        raise ValueError(f"{n} valid training frames in {len(parts)} shard(s): at least 2 are needed for an expression basis")
    _write_basis(out, int(cfg["coeffs"]["n_expr"]), n, mean, m2 / (n - 1), stride, clips)
    return 0
