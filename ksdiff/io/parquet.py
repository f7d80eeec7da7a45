"""Parquet tables between workflow steps: versioned schemas, atomic writes, status.

Every per-clip step writes exactly one Parquet file, also when the clip fails:
the file then has zero rows and its key-value metadata says
``status=failed`` (or ``skipped``) with a human-readable ``reason``. Downstream
steps read the status first and propagate a skip, so one bad clip never stops a
dataset run and the QC table can say clip by clip what happened.

Metadata keys (all strings, stored in the Arrow schema metadata):
  ksdiff.table    name of the schema (see ksdiff.io.schemas)
  ksdiff.version  integer schema version
  ksdiff.status   ok | failed | skipped
  ksdiff.reason   why not ok ('' when ok)
  ksdiff.attrs    JSON object of per-file attributes (e.g. fps, clip id, template)
  ksdiff.options  hash of the options the step ran with, when written inside
                  ``recording_options`` (the shard loop's staleness check, ksdiff.data.shards)
"""
from __future__ import annotations

import contextvars
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ksdiff.io import schemas
from ksdiff.io.files import atomic_path

OK, FAILED, SKIPPED = "ok", "failed", "skipped"

# The options hash stamped on every table written inside ``recording_options``.
_OPTIONS: contextvars.ContextVar[str | None] = contextvars.ContextVar("ksdiff_options", default=None)


@contextmanager
def recording_options(options_hash: str):
    """Stamp ``options_hash`` on every table written in this block (ksdiff.options)."""
    token = _OPTIONS.set(options_hash)
    try:
        yield
    finally:
        _OPTIONS.reset(token)


def read_options(path: str | os.PathLike) -> str | None:
    """The options hash a table was written with (None: written outside a shard loop)."""
    md = pq.read_schema(path).metadata or {}
    v = md.get(b"ksdiff.options")
    return v.decode() if v is not None else None


class SchemaError(ValueError):
    """A table does not match the schema or version it claims."""


@dataclass
class Table:
    """A table read back from disk with its status and attributes."""

    table: pa.Table
    name: str
    version: int
    status: str = OK
    reason: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_pandas(self):
        return self.table.to_pandas()

    def column(self, name: str):
        """A column as a numpy array (fixed-size lists become 2-D arrays)."""
        return column_to_numpy(self.table.column(name))


def column_to_numpy(col: pa.ChunkedArray):
    import numpy as np

    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_fixed_size_list(col.type):
        width = col.type.list_size
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return np.asarray(flat).reshape(-1, width)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        return [np.asarray(v) for v in col.to_pylist()]
    return col.to_numpy(zero_copy_only=False)


def _metadata(name: str, status: str, reason: str, attrs: dict | None) -> dict[bytes, bytes]:
    md = {
        b"ksdiff.table": name.encode(),
        b"ksdiff.version": str(schemas.VERSIONS[name]).encode(),
        b"ksdiff.status": status.encode(),
        b"ksdiff.reason": reason.encode(),
        b"ksdiff.attrs": json.dumps(attrs or {}, default=_json_default).encode(),
    }
    if _OPTIONS.get() is not None:
        md[b"ksdiff.options"] = _OPTIONS.get().encode()
    return md


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_table(
    path: str | os.PathLike,
    name: str,
    data: pa.Table | dict | None = None,
    *,
    status: str = OK,
    reason: str = "",
    attrs: dict | None = None,
) -> None:
    """Validate ``data`` against schema ``name`` and write it atomically.

    ``data`` may be a pyarrow Table or a dict of columns (numpy arrays; 2-D
    arrays go into fixed-size list columns). ``None`` writes an empty table,
    which is what a failed or skipped clip gets.
    """
    schema = schemas.SCHEMAS[name]
    if data is None:
        table = schema.empty_table()
    elif isinstance(data, pa.Table):
        table = data
    else:
        table = table_from_columns(schema, data)
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise SchemaError(f"{name}: missing columns {missing}")
    try:
        table = table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as e:
        raise SchemaError(f"{name}: {e}") from e
    table = table.replace_schema_metadata(_metadata(name, status, reason, attrs))
    # Dictionary encoding only pays off for repeated strings; on float columns
    # it costs write time and space (a 250-frame pose table: 4x faster without).
    dict_cols = [f.name for f in schema if pa.types.is_string(f.type)]
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=dict_cols or False)


def write_failure(path, name: str, reason: str, *, status: str = FAILED, attrs: dict | None = None):
    """Record that this clip could not be processed at this step, and why."""
    write_table(path, name, None, status=status, reason=reason, attrs=attrs)


def table_from_columns(schema: pa.Schema, cols: dict) -> pa.Table:
    import numpy as np

    arrays = []
    for f in schema:
        if f.name not in cols:
            raise SchemaError(f"missing column {f.name!r}")
        v = cols[f.name]
        if pa.types.is_fixed_size_list(f.type):
            v = np.asarray(v, dtype=f.type.value_type.to_pandas_dtype())
            width = f.type.list_size
            if v.ndim != 2 or v.shape[1] != width:
                raise SchemaError(f"column {f.name!r}: expected (n, {width}), got {v.shape}")
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), width))
        else:
            if isinstance(v, np.ndarray) and v.ndim > 1:
                v = list(v)
            arrays.append(pa.array(v, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema.remove_metadata())


def read_table(path: str | os.PathLike, name: str | None = None) -> Table:
    """Read a table, checking that it is the schema (and version) we expect."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    t = pq.read_table(path)
    md = t.schema.metadata or {}
    got = md.get(b"ksdiff.table", b"").decode()
    if not got:
        raise SchemaError(f"{path}: not a ksdiff table (no ksdiff.table metadata)")
    if name is not None and got != name:
        raise SchemaError(f"{path}: expected a {name!r} table, found {got!r}")
    version = int(md.get(b"ksdiff.version", b"0"))
    if version != schemas.VERSIONS.get(got):
        raise SchemaError(
            f"{path}: {got!r} schema version {version}, this ksdiff reads "
            f"version {schemas.VERSIONS.get(got)}; rerun the step that wrote it"
        )
    return Table(
        table=t,
        name=got,
        version=version,
        status=md.get(b"ksdiff.status", b"ok").decode(),
        reason=md.get(b"ksdiff.reason", b"").decode(),
        attrs=json.loads(md.get(b"ksdiff.attrs", b"{}").decode() or "{}"),
    )


def read_attrs(path: str | os.PathLike) -> dict:
    """The ``ksdiff.attrs`` of a table without reading its data (one footer read)."""
    md = pq.read_schema(path).metadata or {}
    return json.loads(md.get(b"ksdiff.attrs", b"{}").decode() or "{}")


def read_status(path: str | os.PathLike) -> tuple[str, str]:
    """(status, reason) of a table without reading its data."""
    md = pq.read_schema(path).metadata or {}
    return md.get(b"ksdiff.status", b"ok").decode(), md.get(b"ksdiff.reason", b"").decode()
