"""The shard loop: a shard job redoes only what is missing or stale, records a bad clip
and goes on, and resumes after a kill; the sharded manifest equals the serial one."""
import os
import time

import pytest

from ksdiff import config
from ksdiff.data import manifest, shards
from ksdiff.io import parquet
from ksdiff.stage_config import stage_options
from tests.test_features import tiny_wav2vec2  # noqa: F401  (fixture: a transformers checkpoint folder)


def _work(tmp_path, clips, calls, fail=(), interrupt=None, inputs=()):
    """ClipWork that writes a one-row-less 'audio' table per clip (what a step does)."""

    def run(c):
        calls.append(c)
        if c == interrupt:
            raise KeyboardInterrupt  # as if the job were killed on this clip
        if c in fail:
            raise RuntimeError(f"decoder crashed on {c}")
        parquet.write_failure(tmp_path / f"{c}.parquet", "audio", "test table", status=parquet.SKIPPED)

    return [shards.ClipWork(c, lambda c=c: run(c), tmp_path / f"{c}.parquet", "audio",
                            [tmp_path / f"{c}.parquet"], list(inputs)) for c in clips]


def _summary(path):
    return parquet.read_table(path, "shard").to_pandas().set_index("clip_id")


def test_existing_current_outputs_are_kept(tmp_path):
    calls = []
    shards.run_loop(_work(tmp_path, ["a", "b"], calls), "h1", tmp_path / "s.parquet", stage="t", shard="00000")
    before = (tmp_path / "a.parquet").stat().st_mtime_ns
    calls.clear()
    shards.run_loop(_work(tmp_path, ["a", "b", "c"], calls), "h1", tmp_path / "s.parquet", stage="t", shard="00000")
    assert calls == ["c"]  # only the missing clip is done
    assert (tmp_path / "a.parquet").stat().st_mtime_ns == before
    s = _summary(tmp_path / "s.parquet")
    assert list(s["action"]) == ["kept", "kept", "ran"]
    assert list(s["status"]) == ["skipped"] * 3 and set(s["reason"]) == {"test table"}


def test_a_changed_option_reruns_every_clip_of_the_step(tmp_path):
    calls = []
    shards.run_loop(_work(tmp_path, ["a", "b"], calls), "h1", tmp_path / "s.parquet", stage="t", shard="0")
    calls.clear()
    shards.run_loop(_work(tmp_path, ["a", "b"], calls), "h2", tmp_path / "s.parquet", stage="t", shard="0")
    assert calls == ["a", "b"]
    assert parquet.read_options(tmp_path / "a.parquet") == "h2"


def _hash(cfg, stage):
    return shards.options_hash(stage_options(cfg, stage), shards.STAGES[stage].table)


def test_options_hash_follows_the_keys_a_stage_reads():
    a = config.defaults()
    b = config.defaults(features={"kind": "logmel", "n_mels": 40})
    assert _hash(a, "features") != _hash(b, "features")
    assert _hash(a, "landmarks") == _hash(b, "landmarks")
    # Another dataset beside this one, another results folder: no clip's table is stale.
    c = config.defaults(datasets=[{"name": "synth", "root": "data/synth", "synthetic": True},
                                  {"name": "hdtf", "root": "/data/hdtf", "layout": "hdtf"}], results_dir="elsewhere")
    assert all(_hash(a, stage) == _hash(c, stage) for stage in shards.STAGES)
    # QC's minimum duration is also where landmarks give up on a clip: it reruns that step, not the audio.
    d = config.defaults(dataset={"min_duration_s": 2.0})
    assert _hash(a, "landmarks") != _hash(d, "landmarks") and _hash(a, "audio") == _hash(d, "audio")


def test_a_newer_input_reruns_its_clip(tmp_path):
    src = tmp_path / "a.mp4"
    src.write_bytes(b"x")
    calls = []
    shards.run_loop(_work(tmp_path, ["a"], calls, inputs=[src]), "h", tmp_path / "s.parquet", stage="t", shard="0")
    future = time.time() + 10
    os.utime(src, (future, future))
    calls.clear()
    shards.run_loop(_work(tmp_path, ["a"], calls, inputs=[src]), "h", tmp_path / "s.parquet", stage="t", shard="0")
    assert calls == ["a"]


def test_a_bad_clip_is_recorded_and_the_shard_goes_on(tmp_path):
    calls = []
    shards.run_loop(_work(tmp_path, ["a", "bad", "c"], calls, fail={"bad"}), "h", tmp_path / "s.parquet",
                    stage="t", shard="0")
    assert calls == ["a", "bad", "c"]
    t = parquet.read_table(tmp_path / "bad.parquet", "audio")
    assert t.status == parquet.FAILED and "RuntimeError: decoder crashed on bad" in t.reason
    s = _summary(tmp_path / "s.parquet")
    assert s.loc["bad", "action"] == "error" and s.loc["bad", "status"] == "failed"
    # An unexpected error is retried by the next run; the finished clips are not.
    calls.clear()
    shards.run_loop(_work(tmp_path, ["a", "bad", "c"], calls), "h", tmp_path / "s.parquet", stage="t", shard="0")
    assert calls == ["bad"]


def test_a_fatal_error_stops_the_shard(tmp_path):
    with pytest.raises(RuntimeError):
        shards.run_loop(_work(tmp_path, ["a"], [], fail={"a"}), "h", tmp_path / "s.parquet", stage="t", shard="0",
                        fatal=(RuntimeError,))
    assert not (tmp_path / "s.parquet").exists()


def test_a_killed_shard_resumes_at_the_next_missing_clip(tmp_path):
    calls = []
    with pytest.raises(KeyboardInterrupt):
        shards.run_loop(_work(tmp_path, ["a", "b", "c"], calls, interrupt="b"), "h", tmp_path / "s.parquet",
                        stage="t", shard="0")
    assert (tmp_path / "a.parquet").exists() and not (tmp_path / "b.parquet").exists()
    assert not (tmp_path / "s.parquet").exists()  # no summary: the workflow reruns the job
    calls.clear()
    shards.run_loop(_work(tmp_path, ["a", "b", "c"], calls), "h", tmp_path / "s.parquet", stage="t", shard="0")
    assert calls == ["b", "c"]


def test_sharded_manifest_equals_the_serial_one(tmp_path, clip_factory):
    root = tmp_path / "clips"
    root.mkdir()
    for i in range(5):
        clip_factory(f"clips/WRA_Spk{i % 2}_{i:03d}.mp4", seconds=0.5, seed=i)
    (root / "WRA_Bad_000.mp4").write_bytes(b"not a video")
    (root / "WRA_Spk0_000.txt").write_text("hello")
    cfg = config.defaults(shard_size=2)
    shards.list_clips(cfg, str(root), "d", str(tmp_path / "listing.parquet"))
    lt = parquet.read_table(tmp_path / "listing.parquet", "listing")
    assert lt.attrs["n_shards"] == 3 and lt.column("shard").tolist() == [0, 0, 1, 1, 2, 2]
    assert [bool(t) for t in lt.table.column("text_path").to_pylist()] == [False, True, False, False, False, False]
    for i in range(3):
        shards.probe_shard(cfg, str(tmp_path / "listing.parquet"), i, str(tmp_path / f"parts/{i:05d}.parquet"))
    shards.merge_manifest(cfg, str(tmp_path / "listing.parquet"), str(tmp_path / "parts"), str(tmp_path / "m.parquet"))
    manifest.build_manifest(cfg, str(root), "d", str(tmp_path / "serial.parquet"))
    a = parquet.read_table(tmp_path / "m.parquet", "manifest")
    b = parquet.read_table(tmp_path / "serial.parquet", "manifest")
    assert a.table.equals(b.table) and a.attrs == b.attrs
    assert a.to_pandas().set_index("clip_id").loc["WRA_Bad_000", "probe_error"]


def test_a_stage_records_an_unreadable_clip_with_its_reason(tmp_path, clip_factory):
    root = tmp_path / "clips"
    root.mkdir()
    clip_factory("clips/WRA_A_000.mp4", seconds=0.6)
    (root / "WRA_Bad_000.mp4").write_bytes(b"")
    cfg = config.defaults()
    manifest.build_manifest(cfg, str(root), "d", str(tmp_path / "m.parquet"))
    res = tmp_path / "results"
    shards.run_stage(cfg, "audio", str(tmp_path / "m.parquet"), str(res), str(tmp_path / "s.parquet"))
    s = _summary(tmp_path / "s.parquet")
    assert s.loc["WRA_A_000", "status"] == "ok" and (res / "audio/WRA_A_000.wav").exists()
    assert s.loc["WRA_Bad_000", "status"] == "failed" and s.loc["WRA_Bad_000", "reason"].startswith("probe error")
    # Rerun: both kept, the failure with its reason too (bad input is not retried).
    shards.run_stage(cfg, "audio", str(tmp_path / "m.parquet"), str(res), str(tmp_path / "s.parquet"))
    assert set(_summary(tmp_path / "s.parquet")["action"]) == {"kept"}
    # A changed option of another step keeps this one; of this step's own sections reruns it.
    shards.run_stage(config.defaults(features={"kind": "logmel", "n_mels": 40}), "audio", str(tmp_path / "m.parquet"),
                     str(res), str(tmp_path / "s.parquet"))
    assert set(_summary(tmp_path / "s.parquet")["action"]) == {"kept"}
    shards.run_stage(config.defaults(sample_rate=8000), "audio", str(tmp_path / "m.parquet"), str(res),
                     str(tmp_path / "s.parquet"))
    assert set(_summary(tmp_path / "s.parquet")["action"]) == {"ran"}


def test_a_replaced_speech_encoder_redoes_every_clips_features(tmp_path, clip_factory, tiny_wav2vec2):  # noqa: F811
    """features.pretrained_dir's files are each clip's inputs: the same folder with a newer weights file
    (a model replaced in place) reruns the features of every clip; untouched, every clip is kept."""
    clip_factory("clips/WRA_A_000.mp4", seconds=0.6)
    cfg = config.defaults(features={"kind": "wav2vec2", "pretrained_dir": str(tiny_wav2vec2)})
    manifest.build_manifest(cfg, str(tmp_path / "clips"), "d", str(tmp_path / "m.parquet"))
    res, m, s = tmp_path / "results", str(tmp_path / "m.parquet"), str(tmp_path / "s.parquet")
    for stage in ("audio", "features"):
        shards.run_stage(cfg, stage, m, str(res), s)
    assert _summary(s).loc["WRA_A_000", "status"] == "ok"
    shards.run_stage(cfg, "features", m, str(res), s)
    assert set(_summary(s)["action"]) == {"kept"}
    weights = tiny_wav2vec2 / "model.safetensors"
    later = (res / "features/WRA_A_000.parquet").stat().st_mtime + 10
    os.utime(weights, (later, later))
    shards.run_stage(cfg, "features", m, str(res), s)
    assert set(_summary(s)["action"]) == {"ran"}
