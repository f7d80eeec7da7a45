import numpy as np

from ksdiff.data import manifest
from ksdiff.io import parquet


def test_hdtf_layout_speakers_and_probe(clip_factory, tmp_path):
    root = tmp_path
    clip_factory("WRA_JaneDoe_000.mp4")
    clip_factory("WRA_JaneDoe_001.mp4")
    clip_factory("RD_JohnRoe_000.mp4", audio=False)
    (root / "RD_Broken_000.mp4").write_bytes(b"")  # zero-byte
    out = tmp_path / "m.parquet"
    manifest.build_manifest({}, str(root), "hdtf", str(out))
    t = parquet.read_table(out, "manifest").to_pandas().set_index("clip_id")
    assert t.loc["WRA_JaneDoe_000", "speaker_id"] == "JaneDoe"
    assert t.loc["WRA_JaneDoe_000", "layout"] == "hdtf"
    assert t.loc["WRA_JaneDoe_000", "fps"] == 25 and t.loc["WRA_JaneDoe_000", "n_frames"] == 37
    assert t.loc["WRA_JaneDoe_000", "has_audio"] and not t.loc["RD_JohnRoe_000", "has_audio"]
    assert len(t.loc["WRA_JaneDoe_000", "sha256"]) == 64
    assert t.loc["RD_Broken_000", "probe_error"] == "zero-byte file"
    assert t.loc["WRA_JaneDoe_000", "probe_error"] == ""


def test_voxceleb_layout(clip_factory, tmp_path):
    (tmp_path / "id00012" / "abcdefghijk").mkdir(parents=True)
    (tmp_path / "id00077" / "zyxwvutsrqp").mkdir(parents=True)
    clip_factory("id00012/abcdefghijk/00001.mp4")
    clip_factory("id00077/zyxwvutsrqp/00003.mp4")
    rows = manifest.scan(tmp_path)
    assert {r["layout"] for r in rows} == {"voxceleb"}
    assert {(r["clip_id"], r["speaker_id"]) for r in rows} == {
        ("id00012_abcdefghijk_00001", "id00012"),
        ("id00077_zyxwvutsrqp_00003", "id00077"),
    }


def test_folder_layout_and_corrupt_file(clip_factory, tmp_path):
    (tmp_path / "alice").mkdir()
    good = clip_factory("alice/talk one.mp4")
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(good.read_bytes()[:300])
    out = tmp_path / "m.parquet"
    manifest.build_manifest({}, str(tmp_path), "mine", str(out), layout="auto")
    t = parquet.read_table(out, "manifest").to_pandas().set_index("clip_id")
    assert t.loc["alice_talk-one", "speaker_id"] == "alice"
    assert t.loc["truncated", "probe_error"] != ""
    assert set(t["layout"]) == {"folder"}


def test_clip_row(clip_factory, tmp_path):
    clip_factory("WRA_A_000.mp4")
    out = tmp_path / "m.parquet"
    manifest.build_manifest({}, str(tmp_path), "d", str(out))
    row = manifest.clip_row(out, "WRA_A_000")
    assert row["speaker_id"] == "A" and np.isclose(row["duration_s"], 1.5, atol=0.05)
