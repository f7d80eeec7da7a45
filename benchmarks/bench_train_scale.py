"""Training at VoxCeleb scale from packs: start-up, memory and throughput against the clip count.

    .venv/bin/python benchmarks/bench_train_scale.py [--sizes 1000 10000] [--dims 80 768]
        [--with-100k] [--sparse 1100000] [--root /tmp/ksdiff_train_scale] [--keep]

Writes benchmarks/out/train_scale.json and rewrites the "Training at scale" section of
benchmarks/README.md (other sections are kept).

Datasets are packs generated directly (ksdiff.data.packs' format: one Arrow IPC file and
one index per shard of 1000 clips, plus the qc, splits and stats tables training reads),
not through the video pipeline: clips of 8 s (200 motion frames at 25 fps, speech
features at 50 Hz, 50 expression coefficients, 20 transcript words), features of 80
(log-mel) or 768 values (wav2vec 2.0 base). ``materialized`` datasets are written in full
(the arrays cycle through 8 random clips); ``--sparse`` ones (VoxCeleb2 dev's 1.1M clips)
are the same files with every float array (head, expression, features, prosody) left as a
hole: their bytes read back as zeros, so training reads the same structures (indexes,
footers, offsets, masks, words) at the real count while the disk holds only the small
buffers. Every dataset is deleted after it is measured (``--keep`` keeps them).

Each dataset is measured in a fresh process, launched as `ksdiff train` would be (pinned
numerics, one thread): ``first_step_s`` from launch to the end of the first optimizer step
of KSDiff (default model config, train.batch_size 16), through what the training loop does
first: read the stats, open the training and validation clips (pack_windows.window_datasets:
the qc and splits tables and the packs' indexes), list the training clip ids (the run's
fingerprint), build the model, draw the first batch. ``rss_anon_mb``: the process's
largest RssAnon (/proc/self/status; the mapped packs' pages are file pages, not counted)
over start-up, the first steps and the loader run. ``loader_windows_per_s``: windows one
core cuts and collates from the step sampler's batches (num_workers=0, 10 s from the first
step on), from cold pages: the packs' pages are dropped from the page cache before each
measuring process (``evict``), at every size; ``loader_warm_windows_per_s``: the same windows
again, their pages resident (the loader's own CPU cost); ``loader_4_workers_windows_per_s``:
other windows through 4 loader processes (train.num_workers 4);
``train_step_windows_per_s``: windows one core's KSDiff training step consumes (forward,
backward, AdamW; batches already loaded). Each dataset is measured twice, in two processes:
with ksdiff's paging (pack_reader.MappedPack: no read-around, a batch's byte ranges read ahead), and
as the loader read before it (``*_readahead``: the kernel's read-around on every fault, windows
cut one at a time), ksdiff's first.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from readme import replace_section  # noqa: E402  benchmarks/readme.py, beside this script

from ksdiff.data import clip_arrays as ca  # noqa: E402
from ksdiff.data import dataset as ds  # noqa: E402
from ksdiff.data import motion, pack_reader, pack_windows  # noqa: E402
from ksdiff.data.stats import write_stats  # noqa: E402
from ksdiff.io import parquet, schemas  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "train_scale.json"
README = ROOT / "benchmarks" / "README.md"
FPS, RATE, T, K, SHARD = 25.0, 50.0, 200, 50, 1000
R = int(RATE / FPS)
WORDS = ("the quick brown fox jumps over the lazy dog while she reads the news about talking faces and speech "
         "today").split()[:20]
BATCH = 16


# ---------------------------------------------------------------------------- generation


class HoleSink:
    """A file-like sink for pa.PythonFile that skips (seeks over) the listed buffers: holes in a sparse file."""

    def __init__(self, path: Path, holes: set[int]):
        self.f, self.pos, self.holes, self.closed = open(path, "wb"), 0, holes, False

    def write(self, b) -> int:
        n = b.size if isinstance(b, pa.Buffer) else len(b)
        if isinstance(b, pa.Buffer) and b.address in self.holes:
            self.f.seek(n, os.SEEK_CUR)
        else:
            self.f.write(b)
        self.pos += n
        return n

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        self.f.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.f.truncate(self.pos)  # a trailing hole still counts in the file's length
            self.f.close()
            self.closed = True


def _flat(a: np.ndarray, t) -> pa.Array:
    a = np.ascontiguousarray(a).reshape(-1)
    return pa.LargeListArray.from_arrays(pa.array([0, len(a)], pa.int64()), pa.array(a, type=t))


def clip_columns(rng, dim: int, zeros: bool) -> dict:
    """The PACK columns of one 8 s clip (all but clip_id); zeros: float arrays of zeros (sparse holes)."""
    n = T * R
    f = (lambda *s: np.zeros(s, np.float32)) if zeros else (lambda *s: rng.normal(size=s).astype(np.float32))
    starts = np.linspace(0.1, 7.5, len(WORDS))
    anchor = motion.Anchor(np.array([128.0, 120.0, 0.0]), 100.0, 0.85).to_dict()
    return {
        "n_frames": pa.array([T], pa.int32()), "r": pa.array([R], pa.int32()), "expr_dim": pa.array([K], pa.int32()),
        "feat_dim": pa.array([dim], pa.int32()),
        "head": _flat(f(T, 6), pa.float32()), "expr": _flat(f(T, K), pa.float32()),
        "valid": _flat(np.ones(T, bool), pa.bool_()), "feat": _flat(f(n, dim), pa.float32()),
        "feat_valid": _flat(np.ones(n, bool), pa.bool_()), "prosody": _flat(f(n, 2), pa.float32()),
        "words": pa.array([list(WORDS)], pa.list_(pa.string())),
        "word_start_s": pa.array([starts], pa.list_(pa.float64())),
        "word_end_s": pa.array([starts + 0.3], pa.list_(pa.float64())),
        "anchor": pa.array([json.dumps(anchor)]),
        "coeffs_attrs": pa.array([json.dumps({"backend": "landmarks", "fps": FPS, "n_expr": K})]),
        "template": _flat(f(478, 3).astype(np.float64), pa.float64()),  # zeros: a hole, like the other arrays
        "feat_attrs": pa.array([json.dumps({"kind": "logmel" if dim == 80 else "wav2vec2", "rate_hz": RATE,
                                            "dim": dim, "checkpoint": ""})]),
        "inputs": pa.array(["[]"]),
    }


def hole_addresses(cols: dict) -> set[int]:
    return {cols[c].values.buffers()[1].address for c in ("head", "expr", "feat", "prosody", "template")}


def clip_name(i: int) -> str:
    return f"id{i // 40:05d}_{i % 40:02d}"  # 40 clips per speaker


def generate(root: Path, n_clips: int, dim: int, materialized: bool) -> None:
    """Packs, indexes, qc, splits and stats of ``n_clips`` clips of 8 s under ``root``."""
    rng = np.random.default_rng(0)
    pool = [clip_columns(rng, dim, zeros=not materialized) for _ in range(8 if materialized else 1)]
    holes = set() if materialized else hole_addresses(pool[0])
    (root / pack_reader.PACK_DIR).mkdir(parents=True, exist_ok=True)
    kind = json.loads(pool[0]["feat_attrs"][0].as_py())["kind"]
    for s in range(0, n_clips, SHARD):
        ids = [clip_name(i) for i in range(s, min(s + SHARD, n_clips))]
        index = root / pack_reader.PACK_DIR / f"{s // SHARD:05d}.parquet"
        pack_id = uuid.uuid4().hex
        schema = schemas.PACK.with_metadata({"pack_id": pack_id, "options_hash": "bench"})
        sink = pa.PythonFile(HoleSink(pack_reader.pack_file(index), holes), mode="w")
        with pa.ipc.new_file(sink, schema) as w:
            for j, c in enumerate(ids):
                cols = {**pool[j % len(pool)], "clip_id": pa.array([c])}
                w.write_batch(pa.RecordBatch.from_arrays([cols[f.name] for f in schemas.PACK], schema=schemas.PACK))
        sink.close()
        n = len(ids)
        parquet.write_table(index, "pack_index", {
            "clip_id": ids, "status": ["ok"] * n, "reason": [""] * n, "action": ["ran"] * n,
            "batch": np.arange(n, dtype=np.int32), "n_frames": np.full(n, T, np.int32), "expr_dim": np.full(n, K, np.int32),
            "feat_dim": np.full(n, dim, np.int32), "feature_kind": [kind] * n, "feat_rate_hz": np.full(n, RATE),
            "feature_checkpoint": ['""'] * n, "inputs": ["[]"] * n, "seconds": np.zeros(n)},
            attrs={"pack_id": pack_id, "pack": pack_reader.pack_file(index).name})
    ids = [clip_name(i) for i in range(n_clips)]
    speakers = [c.split("_")[0] for c in ids]
    split = ["val" if i % 100 == 99 else "train" for i in range(n_clips)]  # 1% validation clips
    parquet.write_table(root / "splits.parquet", "splits", {"clip_id": ids, "speaker_id": speakers, "split": split})
    z = np.zeros(n_clips)
    parquet.write_table(root / "qc.parquet", "qc", {
        "clip_id": ids, "speaker_id": speakers, "dataset": ["bench"] * n_clips, "usable": np.ones(n_clips, bool),
        "reason": [""] * n_clips, "n_frames": np.full(n_clips, T), "duration_s": z + 8.0, "audio_duration_s": z + 8.0,
        "av_mismatch_s": z, "detection_rate": z + 1.0, "landmark_jitter": z, "fit_residual": z,
        "n_words": np.full(n_clips, len(WORDS))})
    info = {"feature_kind": kind, "feat_dim": dim, "feat_rate_hz": RATE, "feature_checkpoint": "", "expr_dim": K}
    train = [c for c, s in zip(ids, split) if s == "train"]
    # as ksdiff.data.stats writes them, the list of training clips included (a real start-up cost)
    write_stats(root / "stats.parquet", ca.Stats(
        {"head": np.zeros(6, np.float32), "expr": np.zeros(K, np.float32), "feat": np.zeros(dim, np.float32)},
        {"head": np.ones(6, np.float32), "expr": np.ones(K, np.float32), "feat": np.ones(dim, np.float32)},
        {**info, "representation": motion.REPRESENTATION, "expr_scale": "pooled", "head_names": list(motion.HEAD_NAMES),
         "clips": train, "n_clips": len(train), "n_frames": len(train) * T, "n_feat_frames": len(train) * T * R,
         "coeffs_backend": "landmarks", "basis": ""}))


def disk_gb(root: Path) -> tuple[float, float]:
    """(apparent, allocated) size of the packs in GB."""
    files = list((root / pack_reader.PACK_DIR).glob("*.arrow"))
    return (sum(f.stat().st_size for f in files) / 1e9, sum(f.stat().st_blocks * 512 for f in files) / 1e9)


# ---------------------------------------------------------------------------- measurement (child process)


def rss_anon_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def evict(root: Path) -> None:
    """Drop the packs' pages from the page cache (written back first), so the loader's first reads are cold
    at every size, not only where the dataset outgrows memory. Clean pages no process maps are dropped."""
    for p in (root / pack_reader.PACK_DIR).glob("*.arrow"):
        with open(p, "rb") as f:
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


# Loader paging: "prefetch" is ksdiff's (pack_reader.MappedPack: no read-around, a batch's byte ranges asked for
# ahead); "readahead" is the loader before it, measured beside it: the kernel's read-around on every fault
# (MADV_NORMAL) and windows cut one at a time (no __getitems__, so the DataLoader calls __getitem__).
PAGING = ("prefetch", "readahead")


def measure(root: Path, launched: float, paging: str = "prefetch") -> dict:
    import mmap

    from ksdiff import numerics

    numerics.pin(numerics.DEFAULT_MODE)  # as `ksdiff train` does, before torch loads
    import torch

    from ksdiff.models import KSDiffConfig, build_model
    from ksdiff.models.transcript import tokenizer

    numerics.torch_settings()
    torch.set_num_threads(1)
    if paging == "readahead":
        pack_reader.MappedPack.ADVICE = mmap.MADV_NORMAL
        pack_windows.PackedWindowDataset.__getitems__ = None  # the DataLoader's fetcher then takes windows one by one
    peak = rss_anon_mb()
    stats = ca.Stats.read(root / "stats.parquet")
    mcfg = KSDiffConfig.from_dict({"feat_dim": int(stats.attrs["feat_dim"]), "expr_dim": K, "feat_rate_hz": RATE,
                                   "fps": FPS})
    t0 = time.time()
    train, val, _ = pack_windows.window_datasets(root, stats, mcfg.window, mcfg.n_prev, FPS, tokenizer(mcfg))
    open_s = time.time() - t0
    ids = [c.clip_id for c in train.clips]  # what the run's fingerprint hashes
    hashlib.sha256(json.dumps(ids).encode()).hexdigest()
    del ids
    peak = max(peak, rss_anon_mb())
    torch.manual_seed(0)
    model = build_model(mcfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    sampler = ds.StepBatchSampler(train.lengths(), train.window, BATCH, seed=0)
    loader = iter(torch.utils.data.DataLoader(train, batch_sampler=sampler, collate_fn=ds.collate, num_workers=0))

    def step(batch):
        loss = model.loss(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(next(loader))
    first = time.time() - launched
    peak = max(peak, rss_anon_mb())
    batches = [next(loader) for _ in range(3)]
    t0 = time.perf_counter()
    for b in batches:
        step(b)
    train_wps = 3 * BATCH / (time.perf_counter() - t0)
    peak = max(peak, rss_anon_mb())
    fetch = train.__getitems__ or (lambda keys: [train[key] for key in keys])  # as the DataLoader's fetcher does
    n, k, t0 = 0, 1000, time.perf_counter()
    while time.perf_counter() - t0 < 10.0:
        ds.collate(fetch(sampler.batch(k)))
        n, k = n + BATCH, k + 1
    loader_wps = n / (time.perf_counter() - t0)
    peak = max(peak, rss_anon_mb())
    t0 = time.perf_counter()  # the same windows again: their pages resident, the loader's own cost
    for j in range(1000, k):
        ds.collate(fetch(sampler.batch(j)))
    warm_wps = n / (time.perf_counter() - t0)
    peak = max(peak, rss_anon_mb())
    # Other windows (another seed: cold again) through 4 loader processes, as train.num_workers runs them:
    # the page faults of one wait while the others cut.
    workers = torch.utils.data.DataLoader(train, batch_sampler=ds.StepBatchSampler(train.lengths(), train.window, BATCH,
                                                                                  seed=1), collate_fn=ds.collate,
                                          num_workers=4, prefetch_factor=4)
    n, it = 0, iter(workers)
    next(it)  # the workers started
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 10.0:
        next(it)
        n += BATCH
    workers_wps = n / (time.perf_counter() - t0)
    del it
    return {"first_step_s": round(first, 2), "open_s": round(open_s, 2), "rss_anon_mb": round(peak, 1),
            "loader_windows_per_s": round(loader_wps, 1), "loader_warm_windows_per_s": round(warm_wps, 1),
            "loader_4_workers_windows_per_s": round(workers_wps, 1),
            "train_step_windows_per_s": round(train_wps, 2),
            "n_train_clips": len(train), "n_val_clips": len(val) if val is not None else 0}


# ---------------------------------------------------------------------------- driver


def run_one(base: Path, n_clips: int, dim: int, materialized: bool, keep: bool) -> dict:
    root = base / f"{'full' if materialized else 'sparse'}_{n_clips}_{dim}"
    shutil.rmtree(root, ignore_errors=True)
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    generate(root, n_clips, dim, materialized)
    gen_s = time.time() - t0
    apparent, allocated = disk_gb(root)
    print(f"{root.name}: generated {apparent:.1f} GB ({allocated:.1f} GB on disk) in {gen_s:.0f} s", flush=True)
    m = {}
    for paging in PAGING:  # ksdiff's first: a cache below this machine's (the VM host's) would favour the second
        evict(root)
        launched = time.time()
        r = subprocess.run([sys.executable, __file__, "--measure", str(root), str(launched), paging],
                           capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise RuntimeError(r.stdout[-3000:] + r.stderr[-3000:])
        got = json.loads(r.stdout.strip().splitlines()[-1])
        if paging == "prefetch":
            m = got
        else:
            m.update({f"{k}_{paging}": got[k] for k in ("loader_windows_per_s", "loader_warm_windows_per_s",
                                                        "loader_4_workers_windows_per_s", "train_step_windows_per_s")})
    if not keep:  # and waited for: freeing a sparse file's million small extents saturates the disk for minutes,
        # which moved the next dataset's measurement by up to 7x when it ran in the background
        shutil.rmtree(root)
    entry = {"n_clips": n_clips, "feature_dim": dim, "materialized": materialized, "pack_gb": round(apparent, 2),
             "pack_gb_on_disk": round(allocated, 2), "hours": round(n_clips * T / FPS / 3600, 1),
             **m, "generate_s": round(gen_s, 1)}
    entry["loader_over_train_step"] = round(entry["loader_windows_per_s"] / entry["train_step_windows_per_s"], 1)
    entry["warm_loader_over_train_step"] = round(entry["loader_warm_windows_per_s"] / entry["train_step_windows_per_s"], 1)
    print(json.dumps(entry), flush=True)
    return entry


def readme_section(entries: list[dict], not_run: list[str]) -> str:
    lines = [
        "`benchmarks/bench_train_scale.py`: training read from packs (`ksdiff/data/pack_windows.py`) generated directly",
        "at 1k to 1.1M clips of 8 s (shards of 1000 clips), each measured in a fresh process as `ksdiff train`",
        "starts (pinned numerics, one thread): the first KSDiff step (default model, batch 16), the largest",
        "anonymous resident memory (RssAnon: the mapped packs are file pages and not counted), the windows one",
        "core's loader cuts per second and the windows one core's training step consumes per second.",
        "`sparse` datasets hold every float array as a hole in the file (the bytes read back as zeros): the",
        "indexes, footers, offsets, masks and words are real, so start-up, the sampler and memory are measured",
        "at VoxCeleb2 dev's clip count without its 209 GB (log-mel) / 1.4 TB (768-dim) of arrays.",
        "",
        "Loader windows/s on one core: first reads from cold pages (the packs' pages dropped from the page",
        "cache first, at every size) with ksdiff's paging (`pack_reader.MappedPack`: no read-around, a batch's byte",
        "ranges read ahead together) and, in a second process, as the loader read before it (the kernel's",
        "read-around on every page fault, windows one at a time); the same windows again (warm: the loader's",
        "own cost); other first reads through 4 loader processes (train.num_workers 4).",
        "",
        "| clips | feature dim | written | pack GB (on disk) | first step s | RssAnon MB | loader windows/s: cold "
        "/ cold before / warm / 4 workers | step windows/s | loader / step: cold / cold before / warm |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for e in entries:
        before = e["loader_windows_per_s_readahead"]
        lines.append(f"| {e['n_clips']:,} | {e['feature_dim']} | "
                     f"{'in full' if e['materialized'] else 'sparse'} | "
                     f"{e['pack_gb']:.1f} ({e['pack_gb_on_disk']:.1f}) | {e['first_step_s']:.1f} | {e['rss_anon_mb']:.0f} | "
                     f"{e['loader_windows_per_s']:.0f} / {before:.0f} / {e['loader_warm_windows_per_s']:.0f} / "
                     f"{e['loader_4_workers_windows_per_s']:.0f} | "
                     f"{e['train_step_windows_per_s']:.1f} | {e['loader_over_train_step']:.0f}x / "
                     f"{before / e['train_step_windows_per_s']:.0f}x / {e['warm_loader_over_train_step']:.0f}x |")
    lines += ["", "Targets (issue 21): RssAnon under 4096 MB and the first step within 60 s at 1.1M clips; the loader",
              "at least 10x the training step on one core.",
              f"Measured on {platform.processor() or platform.machine()}, {os.cpu_count()} shared cores, 23 GB of memory."]
    if not_run:
        lines += ["", "Not run here: " + "; ".join(not_run) + "."]
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) >= 2 and sys.argv[1] == "--measure":
        print(json.dumps(measure(Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--dims", type=int, nargs="*", default=[80, 768])
    ap.add_argument("--with-100k", action="store_true", help="also 100k clips written in full (~18 GB log-mel, 120 GB 768-dim)")
    ap.add_argument("--sparse", type=int, nargs="*", default=[1_100_000])
    ap.add_argument("--root", default="/tmp/ksdiff_train_scale")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--not-run", nargs="*", default=[], help="sizes left out, for the README's note")
    ap.add_argument("--out", default=str(OUT), help="the JSON to write")
    ap.add_argument("--no-readme", action="store_true", help="leave benchmarks/README.md as it is (a trial run)")
    args = ap.parse_args()
    base = Path(args.root)
    sizes = list(args.sizes) + ([100_000] if args.with_100k else [])
    entries = []
    for n in sizes:
        for d in args.dims:
            need = n * (T * 6 + T * K + T * R * (d + 2)) * 4 / 1e9 * 1.05
            free = shutil.disk_usage(base.parent if not base.exists() else base).free / 1e9
            if need > free - 5:
                args.not_run.append(f"{n:,} clips x {d} written in full ({need:.0f} GB, {free:.0f} GB free)")
                continue
            entries.append(run_one(base, n, d, True, args.keep))
    for n in args.sparse:
        for d in args.dims:
            entries.append(run_one(base, n, d, False, args.keep))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(entries, indent=1) + "\n")
    if not args.no_readme:
        README.write_text(replace_section(README.read_text() if README.exists() else "", "Training at scale",
                                          readme_section(entries, args.not_run)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
