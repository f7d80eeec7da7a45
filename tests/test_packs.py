"""Training packs (ksdiff.data.packs): the same batches as the in-memory path, from memory-mapped
files; resumable pack jobs; statistics and the expression basis as map-reduce."""
from __future__ import annotations

import ctypes
import json
import mmap
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pytest
import torch

from fabricate import fabricate_results, fabricate_with_stats, tiny_model_cfg
from ksdiff import config
from ksdiff.data import clip_arrays as ca
from ksdiff.data import dataset as ds
from ksdiff.data import pack_reader, pack_windows, packs
from ksdiff.data.stats import build_stats, merge_stats, stats_part
from ksdiff.io import schemas
from ksdiff.io.parquet import read_table, write_table
from ksdiff.models import KSDiffConfig
from ksdiff.models.transcript import tokenizer

FPS = 25.0


def write_manifest(path, clips):
    """A manifest part listing ``clips`` (packing reads only their ids)."""
    n = len(clips)
    cols = {f.name: [""] * n if f.type == schemas.pa.string() else np.zeros(n) for f in schemas.MANIFEST}
    cols.update(clip_id=clips, has_audio=np.ones(n, bool), variable_fps=np.zeros(n, bool))
    write_table(path, "manifest", cols)


def pack_all(root, shards):
    cfg = config.defaults()
    for k, clips in enumerate(shards):
        write_manifest(root / "manifest" / f"{k:05d}.parquet", clips)
        packs.pack_shard(cfg, str(root / "manifest" / f"{k:05d}.parquet"), str(root), str(root / "packs" / f"{k:05d}.parquet"))


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = fabricate_with_stats(tmp_path_factory.mktemp("results"), n_speakers=5)
    clips = sorted(p.stem for p in (root / "coeffs").glob("*.parquet"))
    shards = [clips[:7], clips[7:]]  # spk0..spk1 | spk2..spk4: the training clips span both shards
    pack_all(root, shards)
    return root, shards


def in_memory(root, split, mcfg, tok, stats):
    """Today's path (clip_arrays.load_clips, everything in memory), as train.prepare_data builds it."""
    clips = ca.load_clips(root, ca.usable_clips(root, split), FPS, tok)
    r = ca.feat_per_frame(ca.check_consistent(clips)["feat_rate_hz"], FPS)
    return ds.WindowDataset([ca.normalise_clip(c, stats, r) for c in clips], mcfg.window, mcfg.n_prev), clips


def from_packs(root, split, mcfg, tok, stats):
    """What training reads instead (pack_windows.window_datasets: the qc and splits tables and the packs' indexes)."""
    train, val, _ = pack_windows.window_datasets(root, stats, mcfg.window, mcfg.n_prev, FPS, tok)
    return {"train": train, "val": val}[split]


def assert_same_batch(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("tokens", ["phones", "words"])
def test_packs_yield_exactly_the_in_memory_batches(packed, tokens, caplog):
    root, _ = packed
    mcfg = KSDiffConfig.from_dict(tiny_model_cfg(transcript_tokens=tokens))
    tok = tokenizer(mcfg)
    stats = ca.Stats.read(root / "stats.parquet")
    mem, clips = in_memory(root, "train", mcfg, tok, stats)
    pk = from_packs(root, "train", mcfg, tok, stats)
    assert "clip spk0_clip2 left out: skipped: features: failed: audio: no audio stream" in caplog.text
    assert [c.clip_id for c in pk.clips] == [c.clip_id for c in mem.clips]  # same clips (bad ones left out), same order
    assert (pk.lengths() == mem.lengths()).all()
    assert pk.packs.info() == ca.check_consistent(clips)
    sampler = ds.StepBatchSampler(mem.lengths(), mcfg.window, 6, seed=3, n_steps=25)
    for keys in sampler:
        assert_same_batch(ds.collate([mem[k] for k in keys]), ds.collate([pk[k] for k in keys]))
        # a batch at once (the DataLoader's path: its byte ranges asked for first) gives the same windows
        assert_same_batch(ds.collate([mem[k] for k in keys]), ds.collate(pk.__getitems__(keys)))
    # windows at the clip start (previous frames masked) and the end (cropped), every frame of validation
    for k in [(0, 0), (0, 2), (1, int(mem.lengths()[1]) - 3)]:
        assert_same_batch(ds.collate([mem[k]]), ds.collate([pk[k]]))
    vm, _ = in_memory(root, "val", mcfg, tok, stats)
    vp = from_packs(root, "val", mcfg, tok, stats)
    keys = ds.fixed_windows(vm.lengths(), mcfg.window)
    assert_same_batch(ds.collate([vm[k] for k in keys]), ds.collate([vp[k] for k in keys]))
    for a, b in zip(vm.clips, vp.clips):  # whole clips, as validation samples them
        for name in ("head", "expr", "valid", "feat", "feat_valid", "prosody", "words"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_a_resumed_loader_sees_the_uninterrupted_batches(packed):
    root, _ = packed
    mcfg = KSDiffConfig.from_dict(tiny_model_cfg())
    stats = ca.Stats.read(root / "stats.parquet")
    pk = from_packs(root, "train", mcfg, tokenizer(mcfg), stats)

    def run(start, workers):
        s = ds.StepBatchSampler(pk.lengths(), mcfg.window, 4, seed=1, start_step=start, n_steps=12)
        return list(torch.utils.data.DataLoader(pk, batch_sampler=s, collate_fn=ds.collate, num_workers=workers))

    whole, resumed = run(0, 0), run(7, 2)  # workers fork with the maps and reopen nothing
    assert len(resumed) == 5
    for a, b in zip(whole[7:], resumed):
        assert_same_batch(a, b)


def test_pack_jobs_keep_current_clips_and_repack_changed_ones(packed, tmp_path):
    src, shards = packed
    root = tmp_path / "r"
    shutil.copytree(src, root)
    index = root / "packs" / "00000.parquet"
    first = read_table(index, "pack_index").to_pandas().set_index("clip_id")
    bad = first.loc["spk0_clip2"]  # its features table failed: a reasoned skip, never a stopped shard
    assert bad.status == "skipped" and "no audio stream" in bad.reason and bad.batch == -1
    assert (first.drop("spk0_clip2").status == "ok").all()

    pack_all(root, shards[:1])
    again = read_table(index, "pack_index").to_pandas().set_index("clip_id")
    assert (again.status == first.status).all() and (again.reason == first.reason).all()
    assert (again.drop("spk0_clip2").action == "kept").all()  # a refused clip is asked again

    coeffs = root / "coeffs" / "spk1_clip0.parquet"  # one clip's table rewritten: that clip alone is re-read
    t = read_table(coeffs, "coeffs")
    expr = np.stack(t.column("expr")) + 1.0
    write_table(coeffs, "coeffs", t.table.set_column(t.table.schema.get_field_index("expr"), "expr",
                                                     schemas.pa.array(list(expr), schemas.pa.list_(schemas.pa.float32()))),
                attrs=t.attrs)
    os.utime(coeffs, ns=(coeffs.stat().st_atime_ns, coeffs.stat().st_mtime_ns + 10**9))
    pack_all(root, shards[:1])
    third = read_table(index, "pack_index").to_pandas().set_index("clip_id")
    assert set(third.index[third.action == "ran"]) == {"spk1_clip0", "spk0_clip2"}
    ps = pack_reader.PackSet([index], ["spk1_clip0", "spk0_clip0"])
    assert np.array_equal(ps.clip(0).expr, ca.load_clip(root, "spk1_clip0", FPS).expr)
    assert np.array_equal(ps.clip(1).head, ca.load_clip(root, "spk0_clip0", FPS).head)


def test_a_pack_its_index_does_not_describe_is_refused(packed, tmp_path):
    src, _ = packed
    root = tmp_path / "r"
    shutil.copytree(src, root)
    shutil.copy(root / "packs" / "00001.arrow", root / "packs" / "00000.arrow")  # e.g. a job killed between the two
    ps = pack_reader.PackSet([root / "packs" / "00000.parquet"])
    with pytest.raises(ca.ClipError, match="rerun `ksdiff pack`"):
        ps.record(0)


def test_stats_as_map_reduce_equal_the_single_job(packed, tmp_path):
    root, _ = packed
    cfg = config.defaults()
    parts = []
    for index in pack_reader.pack_indexes(root):
        parts.append(tmp_path / f"{index.stem}.parquet")
        stats_part(cfg, str(root / "qc.parquet"), str(root / "splits.parquet"), str(index), str(parts[-1]))
    merge_stats(cfg, [str(p) for p in parts], str(tmp_path / "stats.parquet"))
    build_stats(cfg, str(root / "qc.parquet"), str(root / "splits.parquet"), str(root), str(tmp_path / "single.parquet"))
    single, merged = ca.Stats.read(tmp_path / "single.parquet"), ca.Stats.read(tmp_path / "stats.parquet")
    assert len(read_stats_clips(parts[0])) and len(read_stats_clips(parts[1]))  # both shards hold training clips
    for name in ca.STATS_NAMES:
        for a, b in ((single.mean[name], merged.mean[name]), (single.std[name], merged.std[name])):
            assert np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12)) < 1e-6, name
    assert merged.attrs == single.attrs


def read_stats_clips(path):
    return read_table(path, "stats_part").attrs["clips"]


def test_packing_and_the_statistics_run_without_torch(tmp_path):
    """pack, stats-part and merge-stats come before every model, on the workflow's critical path: the commands
    run in a process that never loads torch (about 1.3 s a job) and give the same statistics as in-process."""
    root = tmp_path / "results"
    fabricate_results(root, n_speakers=5)  # no packs yet: the pack job builds every clip's arrays
    clips = sorted(p.stem for p in (root / "coeffs").glob("*.parquet"))
    write_manifest(root / "manifest" / "00000.parquet", clips)
    opts = json.dumps(config.defaults())
    code = ("import json, sys\nfrom ksdiff import cli\n"
            f"r, o = {str(root)!r}, {opts!r}\n"
            "rcs = [cli.main(['pack', '--manifest', r + '/manifest/00000.parquet', '--results', r,"
            " '--out', r + '/packs/00000.parquet', '--opts', o]),\n"
            "       cli.main(['stats-part', '--qc', r + '/qc.parquet', '--splits', r + '/splits.parquet',"
            " '--index', r + '/packs/00000.parquet', '--out', r + '/part.parquet', '--opts', o]),\n"
            "       cli.main(['merge-stats', '--parts', r + '/part.parquet', '--out', r + '/merged.parquet', '--opts', o])]\n"
            "print(json.dumps([rcs, 'torch' in sys.modules]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [[0, 0, 0], False]
    build_stats(config.defaults(), str(root / "qc.parquet"), str(root / "splits.parquet"), str(root),
                str(tmp_path / "single.parquet"))
    single, merged = ca.Stats.read(tmp_path / "single.parquet"), ca.Stats.read(root / "merged.parquet")
    for name in ca.STATS_NAMES:
        np.testing.assert_allclose(merged.mean[name], single.mean[name], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(merged.std[name], single.std[name], rtol=1e-6, atol=1e-9)


def test_expression_basis_as_map_reduce_equals_the_single_job(tmp_path):
    from test_coeffs import synthetic_clip, write_landmarks

    from ksdiff.extract.basis import basis_part, fit_basis, merge_basis
    from ksdiff.extract.pose import fit_pose

    cfg = config.defaults()
    names = ["a", "b", "c", "d"]
    for i, name in enumerate(names):
        lm, _ = synthetic_clip(seed=10 + i, n=60)
        write_landmarks(tmp_path / f"{name}.landmarks.parquet", lm)
        fit_pose(cfg, tmp_path / f"{name}.landmarks.parquet", tmp_path / "pose" / f"{name}.parquet")
    write_table(tmp_path / "splits.parquet", "splits", {"clip_id": names, "speaker_id": ["s1", "s2", "s3", "s4"],
                                                        "split": ["train", "train", "test", "train"]})
    shard_clips = [["a", "b"], ["c", "d"]]  # the test clip c is left out of its shard's part
    summaries = []
    for k, clips in enumerate(shard_clips):
        summaries.append(tmp_path / "shards" / f"{k:05d}.parquet")
        write_table(summaries[-1], "shard", {"clip_id": clips, "status": ["ok"] * 2, "reason": [""] * 2,
                                             "action": ["ran"] * 2, "seconds": [0.0] * 2})
        basis_part(cfg, str(tmp_path / "splits.parquet"), str(summaries[-1]), str(tmp_path / f"part{k}.npz"),
                   pose_dir=str(tmp_path / "pose"))
    merge_basis(cfg, [str(tmp_path / f"part{k}.npz") for k in range(2)], str(tmp_path / "merged.npz"))
    fit_basis(cfg, tmp_path / "splits.parquet", [str(s) for s in summaries], tmp_path / "single.npz",
              pose_dir=str(tmp_path / "pose"))
    single, merged = np.load(tmp_path / "single.npz"), np.load(tmp_path / "merged.npz")
    assert sorted(single.files) == sorted(merged.files)
    assert list(merged["clips"]) == ["a", "b", "d"] and int(merged["n_frames"]) == 180
    for key in ("mean", "components", "std", "explained_variance_ratio"):
        a, b = single[key].astype(np.float64), merged[key].astype(np.float64)
        # relative to the array's largest entry: a component's near-zero entries carry no relative precision
        assert np.max(np.abs(a - b)) / np.max(np.abs(a)) < 1e-6, key
    for key in ("n_frames", "n_expr", "n_expr_requested", "frame_stride", "clips", "template_iod"):
        assert np.array_equal(single[key], merged[key]), key


def test_the_step_sampler_draws_what_numpys_choice_draws():
    """StepBatchSampler builds choice's cdf once (O(clips) per step otherwise): the same windows as
    rng.choice(n, size, p) then rng.integers, i.e. the batches runs made before it."""
    lengths = np.random.default_rng(5).integers(20, 400, size=100_000)
    s = ds.StepBatchSampler(lengths, 100, 16, seed=7)
    for step in (0, 1, 2, 1000, 123_456):
        rng = np.random.default_rng([7, step])
        clips = rng.choice(len(lengths), size=16, p=lengths / lengths.sum())
        starts = rng.integers(0, np.maximum(lengths[clips] - 100, 0) + 1)
        assert s.batch(step) == [(int(c), int(t)) for c, t in zip(clips, starts)]


def _resident(m) -> np.ndarray:
    """Which pages of a mapped pack (or any object with the map's ``base`` address and ``size``) are in the
    page cache (mincore(2): no Python binding)."""
    n = -(-m.size // mmap.PAGESIZE)
    vec = (ctypes.c_ubyte * n)()
    if ctypes.CDLL(None, use_errno=True).mincore(ctypes.c_void_p(m.base), ctypes.c_size_t(m.size), vec) != 0:
        pytest.skip(f"mincore failed: {os.strerror(ctypes.get_errno())}")
    return np.frombuffer(vec, np.uint8) & 1 == 1


def test_a_cold_window_reads_its_own_bytes_not_the_pages_around_them(packed, tmp_path):
    """On cold pages, a window's byte ranges are read ahead of its page faults (MappedPack.prefetch), and no
    more than them: a fault on a pack does not read around itself (MADV_RANDOM), which on a disk with a large
    read-ahead (8 MB here) made every cold window read megabytes of other clips."""
    root, _ = packed
    src = root / "packs"
    (tmp_path / "packs").mkdir()
    for f in ("00001.parquet", "00001.arrow"):  # a copy no other test has mapped: its pages can be dropped
        shutil.copy(src / f, tmp_path / "packs" / f)
    with open(tmp_path / "packs" / "00001.arrow", "rb") as f:
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        plain = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # mapping reads nothing: a look at the cache
    view = pa.py_buffer(plain)
    if _resident(type("Map", (), {"base": view.address, "size": view.size})).any():
        pytest.skip("this filesystem keeps the pack's pages cached (tmpfs?): nothing is cold")
    del view
    plain.close()
    ps = pack_reader.PackSet([tmp_path / "packs" / "00001.parquet"])
    m = ps.mapped(0)  # reads the footer
    i = int(np.argmax(ps.n_frames))
    b = ps.record(i)  # the clip's metadata: the footer's and the batch header's pages
    lo, hi = 2, int(ps.n_frames[i]) - 3
    arrays = [a for a, _ in pack_reader.window_slices(b, lo, hi).values()]
    want = np.zeros_like(_resident(m))
    for a in arrays:
        buf = a.buffers()[-1]
        start = buf.address - m.base + a.offset * a.type.bit_width // 8
        end = buf.address - m.base + -(-(a.offset + len(a)) * a.type.bit_width // 8)
        want[start // mmap.PAGESIZE:-(-end // mmap.PAGESIZE)] = True
    before = _resident(m)
    m.prefetch(arrays)
    deadline = time.monotonic() + 10  # the reads are asynchronous
    while (want & ~_resident(m)).any() and time.monotonic() < deadline:
        time.sleep(0.01)
    now = _resident(m)
    assert not (want & ~now).any(), "the window's ranges were not read ahead"
    # nothing else came in: the pages the window needs and the ones its metadata faulted in, no read-around
    assert (now & ~want & ~before).sum() == 0 and before.sum() <= 8, (before.sum(), (now & ~want).sum(), len(now))
    assert now.sum() < len(now) // 2
    # a clip read whole (inference, validation): all of its arrays asked for at once
    j = next(j for j in range(len(ps)) if j != i)
    feat = ps.record(j, whole=True).column("feat").flatten()
    buf = feat.buffers()[-1]
    pages = slice((buf.address - m.base + feat.offset * 4) // mmap.PAGESIZE,
                  -(-(buf.address - m.base + (feat.offset + len(feat)) * 4) // mmap.PAGESIZE))
    deadline = time.monotonic() + 10
    while not _resident(m)[pages].all() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _resident(m)[pages].all()
