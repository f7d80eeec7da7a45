"""Head placement metric: |mean predicted angle - mean ground-truth angle| per angle, median over clips."""
from __future__ import annotations

import numpy as np
import pytest

from ksdiff.io.parquet import read_table, write_table
from ksdiff.metrics.pose_offset import mean_pose_offset, median_offsets


def table(path, yaw, pitch, roll, valid=None, samples=1):
    n = len(yaw)
    cols = {"sample": np.repeat(np.arange(samples), n).astype(np.int16),
            "frame": np.tile(np.arange(n), samples).astype(np.int32), "time_s": np.tile(np.arange(n) / 25, samples),
            "valid": np.tile(np.ones(n, bool) if valid is None else valid, samples),
            "rotvec": np.zeros((n * samples, 3)), "yaw": np.tile(yaw, samples), "pitch": np.tile(pitch, samples),
            "roll": np.tile(roll, samples), "trans": np.zeros((n * samples, 3)), "scale": np.ones(n * samples),
            "jaw": np.zeros((n * samples, 3)), "expr": list(np.zeros((n * samples, 2), np.float32)),
            "residual": np.zeros(n * samples)}
    write_table(path, "coeffs", cols, attrs={"backend": "landmarks"})
    return read_table(path, "coeffs")


def test_known_offsets(tmp_path):
    t = np.linspace(0, 1, 50)
    gt_valid = np.ones(50, bool)
    gt_valid[:5] = False  # invalid frames (fit failed) do not count
    yaw_gt = np.where(gt_valid, 10 + np.sin(2 * np.pi * t), 99.0)
    gt = table(tmp_path / "g.parquet", yaw_gt, np.full(50, -5.0), np.zeros(50), valid=gt_valid)
    pred = table(tmp_path / "p.parquet", np.full(50, 13.0), np.full(50, -5.0), np.full(50, 2.0), samples=3)
    off = mean_pose_offset(pred, gt)
    assert off["yaw"] == pytest.approx(abs(13.0 - yaw_gt[gt_valid].mean()))
    assert off["pitch"] == pytest.approx(0.0) and off["roll"] == pytest.approx(2.0)
    m = median_offsets([off, {"yaw": 1.0, "pitch": 4.0, "roll": 0.0}, {"yaw": 9.0, "pitch": 1.0, "roll": 5.0}])
    assert m == pytest.approx({"yaw": 3.0 - np.sin(2 * np.pi * t[5:]).mean(), "pitch": 1.0, "roll": 2.0})
    with pytest.raises(ValueError, match="no valid frame"):
        mean_pose_offset(pred, table(tmp_path / "e.parquet", yaw_gt, yaw_gt, yaw_gt, valid=np.zeros(50, bool)))
