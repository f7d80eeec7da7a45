from collections import Counter

from ksdiff.data.splits import assign_splits, make_splits
from ksdiff.io import parquet


def test_speaker_disjoint_deterministic_and_proportional():
    speakers = {f"spk{i}": 3 + i % 4 for i in range(40)}
    a = assign_splits(speakers, 0.15, 0.15, seed=1)
    assert a == assign_splits(speakers, 0.15, 0.15, seed=1)
    assert a != assign_splits(speakers, 0.15, 0.15, seed=2)
    clips = Counter()
    for s, split in a.items():
        clips[split] += speakers[s]
    total = sum(speakers.values())
    assert abs(clips["test"] / total - 0.15) < 0.06 and abs(clips["val"] / total - 0.15) < 0.06


def test_tiny_corpus_still_has_every_split_and_a_training_speaker():
    a = assign_splits({"a": 4, "b": 4, "c": 4}, 0.2, 0.2, seed=0)
    assert sorted(a.values()) == ["test", "train", "val"]
    assert list(assign_splits({"a": 4}, 0.2, 0.2, seed=0).values()) == ["train"]


def test_adding_a_speaker_keeps_existing_assignments_mostly_stable(tmp_path):
    m = tmp_path / "m.parquet"
    ids = [f"c{i}" for i in range(12)]
    spk = [f"s{i // 3}" for i in range(12)]
    n = len(ids)
    parquet.write_table(m, "manifest", {
        "clip_id": ids, "speaker_id": spk, "dataset": ["d"] * n, "layout": ["folder"] * n, "path": ids,
        "duration_s": [2.0] * n, "fps": [25.0] * n, "n_frames": [50] * n, "width": [64] * n, "height": [64] * n,
        "has_audio": [True] * n, "audio_sample_rate": [16000] * n, "audio_channels": [1] * n,
        "variable_fps": [False] * n, "size_bytes": [1] * n, "sha256": [""] * n, "probe_error": [""] * n,
    })
    out = tmp_path / "s.parquet"
    make_splits({"dataset": {"seed": 0, "val_fraction": 0.25, "test_fraction": 0.25}}, str(m), str(out))
    t = parquet.read_table(out, "splits").to_pandas()
    by_speaker = t.groupby("speaker_id")["split"].nunique()
    assert (by_speaker == 1).all()  # a speaker never straddles two splits
    assert set(t["split"]) == {"train", "val", "test"}
