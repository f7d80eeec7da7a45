"""Batched inference (``infer.batch_size``): clips sampled together equal each clip sampled alone.

Each clip draws its noise from its own generator in the shapes it would draw alone (ksdiff.models.noise),
and sample_long samples each window only for the clips that reach it, so the only difference left is
float32 rounding: a batch's matrix products sum in other blocks than one clip's. TOL bounds it: measured
at most 8.3e-7 (ksdiff) and 7.2e-7 (diffspeaker) on motion of magnitude about 2 in normalised units; the
regression model came out bit-identical. The written coefficients get rtol 1e-4 on top (they pass through
de-normalisation and the anchor's rotation).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fabricate import tiny_model_cfg
from ksdiff.data import clip_arrays as ca
from ksdiff.data import dataset as ds
from ksdiff.infer import Predictor, predict_clip
from ksdiff.io.parquet import read_table
from ksdiff.models import KSDiffConfig, build_model, sample_long
from ksdiff.models.noise import ClipGenerators, draw
from tests.test_infer import setup  # noqa: F401  (the module's trained model and fabricated results)

TOL = 1e-5


def _speech(n_frames: int, cfg: KSDiffConfig, seed: int, n_samples: int) -> dict:
    rng = np.random.default_rng(seed)
    r = cfg.feat_per_frame
    return ds.inference_batch(rng.standard_normal((n_frames * r, cfg.feat_dim)).astype(np.float32),
                              np.ones(n_frames * r, bool), rng.standard_normal((n_frames * r, 2)).astype(np.float32),
                              rng.integers(0, 40, n_frames), cfg.n_prev, cfg.head_dim, cfg.expr_dim,
                              n_samples)


def _pad(x: torch.Tensor, n: int) -> torch.Tensor:
    return torch.cat([x, x.new_zeros(x.shape[0], n - x.shape[1], *x.shape[2:])], 1)


@pytest.mark.parametrize("method", ["ksdiff", "diffspeaker", "regression"])
def test_clips_batched_equal_clips_alone(method):
    cfg = KSDiffConfig.from_dict(tiny_model_cfg(method=method, ddim_eta=0.5))  # eta > 0: noise at every step too
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    lengths, seeds, s = [23, 95, 61, 95], [5, 6, 7, 8], 2  # one window; several, ending at other frames
    alone = []
    for n, seed in zip(lengths, seeds):
        alone.append(sample_long(model, _speech(n, cfg, seed, s), generator=torch.Generator().manual_seed(seed)))
    speech = [_speech(n, cfg, seed, s) for n, seed in zip(lengths, seeds)]
    batch = {k: torch.cat([_pad(b[k], max(x[k].shape[1] for x in speech)) for b in speech]) for k in speech[0]}
    gens = ClipGenerators(tuple(torch.Generator().manual_seed(seed) for seed in seeds), s)
    together = sample_long(model, batch, generator=gens, lengths=[n for n in lengths for _ in range(s)])
    for k, (n, one) in enumerate(zip(lengths, alone)):
        for key in ("head", "expr"):
            got = together[key][k * s:(k + 1) * s]
            np.testing.assert_allclose(got[:, :n].numpy(), one[key].numpy(), atol=TOL, rtol=0)
            assert not got[:, n:].any()  # past the clip's end nothing is written
    # not vacuous: another clip's noise gives other motion
    assert not np.allclose(alone[1]["head"].numpy(), alone[3]["head"].numpy(), atol=TOL)


def test_clip_generators_draw_what_each_clip_draws_alone():
    gens = [torch.Generator().manual_seed(k) for k in (1, 2)]
    got = draw(torch.randn, (6, 4), ClipGenerators(tuple(gens), 3))
    want = torch.cat([torch.randn((3, 4), generator=torch.Generator().manual_seed(k)) for k in (1, 2)])
    assert torch.equal(got, want)
    with pytest.raises(ValueError, match="rows"):
        draw(torch.randn, (5, 4), ClipGenerators(tuple(gens), 3))


def test_a_shard_predicted_in_batches_equals_clip_by_clip(setup, tmp_path):  # noqa: F811
    root, ck, cfg = setup
    clips = sorted(ca.usable_clips(root, "test")) + sorted(ca.usable_clips(root, "val"))
    bad = "spk0_clip_missing"  # a clip without inputs, inside the first batch
    order = clips[:1] + [bad] + clips[1:]
    batched = Predictor({**cfg, "infer": {**cfg["infer"], "batch_size": 3}}, str(root), order, checkpoint=str(ck))
    for c in reversed(order):  # any order: a clip not yet sampled is sampled with the clips after it
        batched.predict(c, str(tmp_path / f"b_{c}.parquet"))
    assert read_table(tmp_path / f"b_{bad}.parquet", "coeffs").status == "skipped"
    for c in clips:
        predict_clip(cfg, str(root), c, str(tmp_path / f"a_{c}.parquet"), checkpoint=str(ck))
        _assert_close_tables(tmp_path / f"a_{c}.parquet", tmp_path / f"b_{c}.parquet")


def _assert_close_tables(a_path, b_path):
    a, b = read_table(a_path, "coeffs"), read_table(b_path, "coeffs")
    assert a.ok and b.ok and a.attrs == b.attrs
    da, db = a.to_pandas(), b.to_pandas()
    num = [col for col in da.columns if pd.api.types.is_float_dtype(da[col])]
    assert list(da.columns) == list(db.columns) and len(da) == len(db) > 0
    np.testing.assert_allclose(db[num].to_numpy(), da[num].to_numpy(), atol=TOL, rtol=1e-4)


def test_a_shard_job_samples_in_batches_and_resumes(setup, tmp_path):  # noqa: F811
    from ksdiff.infer_shards import infer_shard
    from ksdiff.io.parquet import write_table

    root, ck, cfg = setup
    clips = ["spk3_clip0", "ghost-missing", "spk3_clip1", "spk3_clip2"]
    write_table(tmp_path / "ts.parquet", "test_shards", {"clip_id": clips, "shard": [0] * 4},
                attrs={"n_shards": 1, "shard_size": 4})
    batched = {**cfg, "infer": {**cfg["infer"], "batch_size": 2}}

    def shard():
        infer_shard(batched, str(root), str(tmp_path / "ts.parquet"), 0, str(tmp_path / "pred"),
                    str(tmp_path / "s.parquet"), checkpoint=str(ck))
        return read_table(tmp_path / "s.parquet", "shard").to_pandas().set_index("clip_id")

    s = shard()
    assert list(s["status"]) == ["ok", "skipped", "ok", "ok"]
    real = [c for c in clips if c != "ghost-missing"]
    for clip in real:
        predict_clip(cfg, str(root), clip, str(tmp_path / f"{clip}.parquet"), checkpoint=str(ck))
        _assert_close_tables(tmp_path / f"{clip}.parquet", tmp_path / "pred" / f"{clip}.parquet")
    # a killed job's rerun samples only what is missing, in batches of what is left
    (tmp_path / "pred" / "spk3_clip1.parquet").unlink()
    s = shard()
    assert s.loc["spk3_clip1", "action"] == "ran" and set(s.loc[["spk3_clip0", "spk3_clip2"], "action"]) == {"kept"}
    _assert_close_tables(tmp_path / "spk3_clip1.parquet", tmp_path / "pred" / "spk3_clip1.parquet")
