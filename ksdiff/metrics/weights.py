"""Pretrained weights the user supplies for a metric: a configured path, its sha256, or why there are none.

Nothing is ever downloaded (users' clusters have no network either): a metric whose ``eval`` key is null is
not scored, and every clip records ``not_configured(...)`` as its reason; a path that is set but missing is
an error before any clip is scored, as for SyncNet's weights. The hash goes into the metrics table's attrs
and the report, so two tables scored with different files are never compared unawares.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ksdiff.io.files import sha256_file


class WeightsMissing(FileNotFoundError):
    pass


def not_configured(metric: str, key: str) -> str:
    """The per-clip reason of a metric whose weights are not configured."""
    return f"not scored: no {metric} weights configured (eval.{key}; never downloaded)"


@dataclass(frozen=True)
class Weights:
    """A weights file the user configured under ``eval.{key}``, with its content hash."""

    key: str
    path: str
    sha256: str

    @classmethod
    def of(cls, key: str, path: str | Path) -> "Weights":
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsMissing(f"eval.{key} = {path}: no such file (weights are never downloaded: put the file "
                                 f"there or set eval.{key} to null to leave the metric out)")
        return cls(key, str(p), sha256_file(p))

    def describe(self) -> dict:
        return {"key": f"eval.{self.key}", "weights": self.path, "sha256": self.sha256}
