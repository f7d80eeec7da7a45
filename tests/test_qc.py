import numpy as np

from ksdiff.data.qc import build_qc
from ksdiff.io import parquet

OPTS = {"dataset": {"min_duration_s": 1.0, "min_detection_rate": 0.9, "max_av_mismatch_s": 0.5}}


def _manifest(path, rows):
    cols = {f.name: [] for f in parquet.schemas.MANIFEST}
    for r in rows:
        rec = dict(dataset="d", layout="folder", path="x", fps=25.0, width=64, height=64, has_audio=True,
                   audio_sample_rate=16000, audio_channels=1, variable_fps=False, size_bytes=1, sha256="",
                   probe_error="")
        rec.update(r)
        for k in cols:
            cols[k].append(rec[k])
    parquet.write_table(path, "manifest", cols)


def _ok_tables(res, clip, n=50, detected=None, audio_s=2.0):
    detected = np.ones(n, bool) if detected is None else detected
    parquet.write_table(res / "audio" / f"{clip}.parquet", "audio", {
        "clip_id": [clip], "sample_rate": [16000], "n_samples": [int(audio_s * 16000)], "duration_s": [audio_s],
        "source_sample_rate": [16000], "source_channels": [1], "rms_dbfs": [-20.0], "peak_dbfs": [-3.0],
        "loudness_lufs": [-23.0], "clipped_fraction": [0.0], "silence_fraction": [0.1]})
    parquet.write_table(res / "transcripts" / f"{clip}.parquet", "transcript",
                        {"word": ["hi"], "start_s": [0.1], "end_s": [0.4], "confidence": [1.0]})
    lm = np.tile(np.random.default_rng(0).random((1, 1434)) * 50, (n, 1))
    box = np.tile([0, 0, 50, 50], (n, 1))
    parquet.write_table(res / "landmarks" / f"{clip}.parquet", "landmarks", {
        "frame": np.arange(n), "time_s": np.arange(n) / 25, "source_frame": np.arange(n), "detected": detected,
        "score": np.ones(n), "n_faces": np.ones(n), "box": box, "landmarks": lm, "failure": [""] * n})
    parquet.write_table(res / "pose" / f"{clip}.parquet", "pose", None)
    z3 = np.zeros((n, 3))
    parquet.write_table(res / "coeffs" / f"{clip}.parquet", "coeffs", {
        "sample": np.zeros(n), "frame": np.arange(n), "time_s": np.arange(n) / 25, "valid": detected,
        "rotvec": z3, "yaw": np.zeros(n), "pitch": np.zeros(n), "roll": np.zeros(n), "trans": z3,
        "scale": np.ones(n), "jaw": z3, "expr": [np.zeros(5)] * n, "residual": np.full(n, 0.01)})
    parquet.write_table(res / "features" / f"{clip}.parquet", "features", None)


def test_qc_reasons(tmp_path):
    res = tmp_path / "results"
    _manifest(tmp_path / "m.parquet", [
        dict(clip_id="good", speaker_id="a", duration_s=2.0, n_frames=50),
        dict(clip_id="broken", speaker_id="a", duration_s=0.0, n_frames=0, probe_error="zero-byte file"),
        dict(clip_id="noface", speaker_id="b", duration_s=2.0, n_frames=50),
        dict(clip_id="short", speaker_id="b", duration_s=0.6, n_frames=15),
        dict(clip_id="offsync", speaker_id="c", duration_s=2.0, n_frames=50),
    ])
    _ok_tables(res, "good")
    _ok_tables(res, "short", n=15, audio_s=0.6)
    _ok_tables(res, "noface", detected=np.arange(50) < 20)
    _ok_tables(res, "offsync", audio_s=3.2)
    for step, name in [("audio", "audio"), ("transcripts", "transcript"), ("landmarks", "landmarks"),
                       ("pose", "pose"), ("coeffs", "coeffs"), ("features", "features")]:
        parquet.write_failure(res / step / "broken.parquet", name, "zero-byte file" if step == "audio" else "audio: zero-byte file",
                              status="failed" if step == "audio" else "skipped")
    out = tmp_path / "qc.parquet"
    build_qc(OPTS, str(tmp_path / "m.parquet"), str(res), str(out))
    q = parquet.read_table(out, "qc").to_pandas().set_index("clip_id")
    assert q.loc["good", "usable"] and q.loc["good", "reason"] == ""
    assert q.loc["good", "detection_rate"] == 1.0 and q.loc["good", "n_words"] == 1
    assert not q.loc["broken", "usable"] and q.loc["broken", "reason"] == "manifest: zero-byte file"
    assert "face detected on 40%" in q.loc["noface", "reason"]
    assert q.loc["short", "reason"].startswith("too short")
    assert "audio/video durations differ by 1.20 s" in q.loc["offsync", "reason"]
    assert q["usable"].sum() == 1
