import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from ksdiff.config import defaults
from ksdiff.data.splits import SplitFileError, assign_splits, make_splits
from ksdiff.io import parquet
from tests.conftest import REPO


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


def write_manifest(path: Path, ids: list[str], spk: list[str]) -> str:
    n = len(ids)
    parquet.write_table(path, "manifest", {
        "clip_id": ids, "speaker_id": spk, "dataset": ["d"] * n, "layout": ["folder"] * n, "path": ids,
        "duration_s": [2.0] * n, "fps": [25.0] * n, "n_frames": [50] * n, "width": [64] * n, "height": [64] * n,
        "has_audio": [True] * n, "audio_sample_rate": [16000] * n, "audio_channels": [1] * n,
        "variable_fps": [False] * n, "size_bytes": [1] * n, "sha256": [""] * n, "probe_error": [""] * n,
    })
    return str(path)


def test_adding_a_speaker_keeps_existing_assignments_mostly_stable(tmp_path):
    ids = [f"c{i}" for i in range(12)]
    m = write_manifest(tmp_path / "m.parquet", ids, [f"s{i // 3}" for i in range(12)])
    out = tmp_path / "s.parquet"
    make_splits({"dataset": {"seed": 0, "val_fraction": 0.25, "test_fraction": 0.25}}, m, str(out))
    t = parquet.read_table(out, "splits").to_pandas()
    by_speaker = t.groupby("speaker_id")["split"].nunique()
    assert (by_speaker == 1).all()  # a speaker never straddles two splits
    assert set(t["split"]) == {"train", "val", "test"}


# ------------------------------------------------------------ published splits

# HDTF-like data: speakers A..E, clips {speaker}_{index}.
HDTF_CLIPS = ["WRA_A_000", "WRA_A_001", "RD_B_000", "RD_B_001", "WDA_C_000", "WDA_C_001", "WDA_D_000", "RD_E_000"]
HDTF_SPK = ["A", "A", "B", "B", "C", "C", "D", "E"]


def split_with(tmp_path, ids, spk, **dataset):
    m = write_manifest(tmp_path / "manifest.parquet", ids, spk)
    out = tmp_path / "splits.parquet"
    make_splits(defaults(dataset=dataset), m, str(out))
    t = parquet.read_table(out, "splits")
    return dict(zip(t.column("clip_id"), t.column("split"))), t.attrs


def test_clip_csv_overrides_the_hash_split_and_reports_both_kinds_of_mismatch(tmp_path):
    f = tmp_path / "published.csv"
    f.write_text("clip_id,split\nWRA_A_000.mp4,train\nWRA_A_001,train\nRD_B_000,val\nRD_B_001,validation\n"
                 "WDA_C_000,test\nWDA_C_001,test\nRD_E_000,dev\nRD_GHOST_007,test\n")
    got, attrs = split_with(tmp_path, HDTF_CLIPS, HDTF_SPK, split_file=str(f))
    # Exactly the file's assignment; the unlisted clip (WDA_D_000) is left out.
    assert got == {"WRA_A_000": "train", "WRA_A_001": "train", "RD_B_000": "val", "RD_B_001": "val",
                   "WDA_C_000": "test", "WDA_C_001": "test", "RD_E_000": "train"}
    assert attrs["missing_from_data"] == 1 and attrs["missing_ids"] == ["RD_GHOST_007"]
    assert attrs["unlisted_clips"] == 1 and attrs["unlisted_ids"] == ["WDA_D_000"]
    assert attrs["split_unlisted"] == "drop" and attrs["speakers_in_several_splits"] == 0
    assert attrs["split_file"] == str(f) and len(attrs["split_file_sha256"]) == 64


def test_unlisted_clips_placed_by_hash_join_their_speakers_split(tmp_path):
    # Clip-level file covering one clip of A and of C; B, D and E are unlisted.
    f = tmp_path / "published.csv"
    f.write_text("clip_id,split\nWRA_A_000,test\nWDA_C_000,val\n")
    got, attrs = split_with(tmp_path, HDTF_CLIPS, HDTF_SPK, split_file=str(f), split_unlisted="hash")
    assert set(got) == set(HDTF_CLIPS)
    assert got["WRA_A_001"] == "test" and got["WDA_C_001"] == "val"  # with their listed speaker
    expected = assign_splits({"B": 2, "D": 1, "E": 1}, 0.2, 0.2, seed=0)  # the rest: hash split among themselves
    assert {c: got[c] for c in ("RD_B_000", "RD_B_001", "WDA_D_000", "RD_E_000")} == {
        "RD_B_000": expected["B"], "RD_B_001": expected["B"], "WDA_D_000": expected["D"], "RD_E_000": expected["E"]}
    assert attrs["unlisted_clips"] == 6


def test_speaker_parquet_places_every_clip_of_a_listed_speaker(tmp_path):
    f = tmp_path / "speakers.parquet"
    pd.DataFrame({"speaker_id": ["A", "B", "C", "D", "E"], "split": ["train", "train", "val", "test", "train"]}).to_parquet(f)
    got, attrs = split_with(tmp_path, HDTF_CLIPS, HDTF_SPK, split_file=str(f))
    assert got == {"WRA_A_000": "train", "WRA_A_001": "train", "RD_B_000": "train", "RD_B_001": "train",
                   "WDA_C_000": "val", "WDA_C_001": "val", "WDA_D_000": "test", "RD_E_000": "train"}
    assert attrs["missing_from_data"] == 0 and attrs["unlisted_clips"] == 0


# VoxCeleb-like data (the voxceleb layout names clips {speaker}_{youtube id}_{index}).
VOX_CLIPS = ["id10001_1zcIwhmdeo4_00001", "id10001_1zcIwhmdeo4_00002", "id10002_6WO410QOeuo_00001",
             "id10003_5ablueV_1tw_00001", "id10004_4r1b-Bme9UE_00001"]
VOX_SPK = ["id10001", "id10001", "id10002", "id10003", "id10004"]


def test_voxceleb1_iden_split_lines(tmp_path):
    f = tmp_path / "iden_split.txt"
    f.write_text("1 id10001/1zcIwhmdeo4/00001.wav\n3 id10001/1zcIwhmdeo4/00002.wav\n2 id10002/6WO410QOeuo/00001.wav\n"
                 "1 id10003/5ablueV_1tw/00001.wav\n3 id10004/4r1b-Bme9UE/00001.wav\n1 id10005/xxxxxxxxxxx/00001.wav\n")
    got, attrs = split_with(tmp_path, VOX_CLIPS, VOX_SPK, split_file=str(f))
    assert got == {"id10001_1zcIwhmdeo4_00001": "train", "id10001_1zcIwhmdeo4_00002": "test",
                   "id10002_6WO410QOeuo_00001": "val", "id10003_5ablueV_1tw_00001": "train",
                   "id10004_4r1b-Bme9UE_00001": "test"}
    assert attrs["missing_ids"] == ["id10005_xxxxxxxxxxx_00001"]
    # The identification split is not speaker-disjoint: followed, and said so.
    assert attrs["speakers_in_several_splits_ids"] == ["id10001"]


def test_voxceleb2_speaker_lists_get_val_from_the_dev_speakers(tmp_path):
    spk = [f"id{i:05d}" for i in range(10)]
    clips = [f"{s}_yt{j}_0000{j}" for s in spk for j in range(2)]
    (tmp_path / "dev.txt").write_text("".join(f"{s}\n" for s in spk[:8]))
    (tmp_path / "test.txt").write_text("id00008\nid00009\nid99999\n")
    lists = {"train": str(tmp_path / "dev.txt"), "test": str(tmp_path / "test.txt")}
    got, attrs = split_with(tmp_path, clips, [c.split("_")[0] for c in clips], split_file=lists)
    by_spk = {c.split("_")[0]: s for c, s in got.items()}
    assert {s for s, v in by_spk.items() if v == "test"} == {"id00008", "id00009"}
    val = {s for s, v in by_spk.items() if v == "val"}
    expected = {s for s, v in assign_splits({s: 2 for s in spk[:8]}, 0.2, 0.0, seed=0).items() if v == "val"}
    assert val == expected and val <= set(spk[:8]) and len(val) >= 1
    assert attrs["missing_ids"] == ["id99999"] and "val_from" in attrs
    assert attrs["speakers_in_several_splits"] == 0


def test_voxceleb1_meta_csv_tab_separated(tmp_path):
    f = tmp_path / "vox1_meta.csv"
    f.write_text("VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"
                 "id10001\tA.J._Buckley\tm\tIreland\tdev\nid10002\tA.R._Rahman\tm\tIndia\tdev\n"
                 "id10003\tAamir_Khan\tm\tIndia\tdev\nid10004\tAaron_Tveit\tm\tUSA\ttest\n")
    got, _ = split_with(tmp_path, VOX_CLIPS, VOX_SPK, split_file=str(f), val_fraction=0.0)
    assert got == {"id10001_1zcIwhmdeo4_00001": "train", "id10001_1zcIwhmdeo4_00002": "train",
                   "id10002_6WO410QOeuo_00001": "train", "id10003_5ablueV_1tw_00001": "train",
                   "id10004_4r1b-Bme9UE_00001": "test"}


@pytest.mark.parametrize("text, words", [
    ("clip_id,split\nWRA_A_000,holdout\n", ["unknown split", "holdout"]),
    ("clip_id,split\nWRA_A_000,train\nWRA_A_000,test\n", ["WRA_A_000", "both"]),
    ("name,fold\nWRA_A_000,train\n", ["needs a split column"]),
])
def test_bad_split_files_are_refused_with_a_reason(tmp_path, text, words):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(SplitFileError) as e:
        split_with(tmp_path, HDTF_CLIPS, HDTF_SPK, split_file=str(f))
    for w in words:
        assert w in str(e.value)


def test_plain_list_without_its_split_is_refused(tmp_path):
    f = tmp_path / "test.txt"
    f.write_text("id10001\nid10002\n")
    with pytest.raises(SplitFileError, match="needs its split named"):
        split_with(tmp_path, VOX_CLIPS, VOX_SPK, split_file=str(f))


def test_the_splits_rule_reads_the_split_file(tmp_path):
    # The file is an input of the rule, so that editing it reruns the split.
    f = tmp_path / "published.csv"
    f.write_text("clip_id,split\n")
    r = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "-n", "--cores", "1", "--config",
         f"results_dir={tmp_path}/results", f"dataset={{split_file: {f}}}", "--", f"{tmp_path}/results/synth/splits.parquet"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    job = out[out.index("rule splits:"):]
    assert f"input: {tmp_path}/results/synth/manifest.parquet, {f}" in job.splitlines()[1], job[:400]
