import numpy as np
import pyarrow.parquet as pq
import pytest

from ksdiff.io import parquet, schemas


def _landmarks(n=4):
    return {
        "frame": np.arange(n), "time_s": np.arange(n) / 25, "source_frame": np.arange(n),
        "detected": [True] * n, "score": np.ones(n), "n_faces": np.ones(n),
        "box": np.zeros((n, 4)), "landmarks": np.random.default_rng(0).random((n, 478 * 3)),
        "failure": [""] * n,
    }


def test_round_trip_keeps_values_status_and_attrs(tmp_path):
    cols = _landmarks()
    p = tmp_path / "l.parquet"
    parquet.write_table(p, "landmarks", cols, attrs={"fps": 25, "width": 512})
    t = parquet.read_table(p, "landmarks")
    assert t.ok and t.version == schemas.VERSIONS["landmarks"]
    assert t.attrs == {"fps": 25, "width": 512}
    np.testing.assert_allclose(t.column("landmarks"), cols["landmarks"].astype(np.float32))
    assert t.column("landmarks").shape == (4, 1434)


def test_failure_is_an_empty_table_with_reason(tmp_path):
    p = tmp_path / "c.parquet"
    parquet.write_failure(p, "coeffs", "landmarks: no face in any frame", status="skipped")
    t = parquet.read_table(p, "coeffs")
    assert not t.ok and t.status == "skipped" and t.table.num_rows == 0
    assert parquet.read_status(p) == ("skipped", "landmarks: no face in any frame")


def test_wrong_table_or_version_is_refused(tmp_path):
    p = tmp_path / "l.parquet"
    parquet.write_table(p, "landmarks", _landmarks())
    with pytest.raises(parquet.SchemaError, match="expected a 'coeffs' table"):
        parquet.read_table(p, "coeffs")
    t = pq.read_table(p)
    md = dict(t.schema.metadata)
    md[b"ksdiff.version"] = b"999"
    pq.write_table(t.replace_schema_metadata(md), p)
    with pytest.raises(parquet.SchemaError, match="version 999"):
        parquet.read_table(p)


def test_bad_shape_is_refused_and_nothing_is_written(tmp_path):
    cols = _landmarks()
    cols["landmarks"] = np.zeros((4, 10))
    p = tmp_path / "l.parquet"
    with pytest.raises(parquet.SchemaError, match="landmarks"):
        parquet.write_table(p, "landmarks", cols)
    assert not p.exists() and not list(tmp_path.iterdir())


def test_every_schema_round_trips_empty(tmp_path):
    for name in schemas.SCHEMAS:
        p = tmp_path / f"{name}.parquet"
        parquet.write_table(p, name, None)
        t = parquet.read_table(p, name)
        assert t.table.schema.names == schemas.SCHEMAS[name].names
