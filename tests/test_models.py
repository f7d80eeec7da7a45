"""KSDiff modules, masks, the model interface, ablations, baselines, and a single-clip overfit."""
import math

import numpy as np
import pytest
import torch

from ksdiff.models import KSDiffConfig, build_model, sample_long
from ksdiff.models.attention import alignment_mask, periodic_bias
from ksdiff.models.dpse import DPSE, PooledCrossAttention, masked_pool, resample_to_frames
from ksdiff.models.kel import KEL
from ksdiff.models.msdc import MSDC
from ksdiff.models.seams import window_joins, window_seams
from ksdiff.data.clip_arrays import prosody_features
from ksdiff.models.prosody import ProsodyFiLM
from ksdiff.models.transcript import (PHONE_ID, SILENCE, UNKNOWN, TranscriptEncoder, frame_phone_ids,
                                     frame_word_ids, hash_word, n_tokens)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and OpenMP spinning on a shared 2-core box costs 10x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(**kw) -> KSDiffConfig:
    base = dict(d_model=32, n_heads=4, n_layers=1, msdc_dilations=(1, 2), msdc_groups=4, vocab_size=64, expr_dim=5,
                pool_long=10, pool_mid=4, n_train_steps=100, ddim_steps=5, window=24, n_prev=4, window_overlap=0)
    base.update(kw)
    return KSDiffConfig(**base)


def make_batch(cfg: KSDiffConfig, b: int = 2, n: int = 24, p: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    nf = n * cfg.feat_per_frame
    return {
        "feat": torch.randn(b, nf, cfg.feat_dim, generator=g),
        "feat_mask": torch.ones(b, nf, dtype=torch.bool),
        "prosody": torch.randn(b, nf, 2, generator=g),
        "words": torch.randint(0, n_tokens(cfg), (b, n), generator=g),
        "head": torch.randn(b, n, cfg.head_dim, generator=g),
        "expr": torch.randn(b, n, cfg.expr_dim, generator=g),
        "mask": torch.ones(b, n, dtype=torch.bool),
        "prev_head": torch.randn(b, p, cfg.head_dim, generator=g),
        "prev_expr": torch.randn(b, p, cfg.expr_dim, generator=g),
        "prev_mask": torch.ones(b, p, dtype=torch.bool),
    }


# --- config ------------------------------------------------------------------------------

def test_config_round_trip_and_unknown_keys():
    cfg = tiny(use_kel=False)
    assert KSDiffConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown KSDiffConfig keys.*d_modle"):
        KSDiffConfig.from_dict({"d_modle": 64})
    with pytest.raises(ValueError, match="unknown method"):
        KSDiffConfig(method="sadtalker")
    with pytest.raises(ValueError, match="integer"):
        KSDiffConfig(feat_rate_hz=60.0)


# --- masks -------------------------------------------------------------------------------

def test_periodic_bias_is_constant_within_a_period_and_steps_by_the_slope():
    period, n = 5, 23
    bias = periodic_bias(4, n, period)
    assert bias.shape == (4, n, n)
    assert torch.equal(bias, bias.transpose(1, 2))
    for h in range(4):
        slope = -float(bias[h, 0, period])
        assert slope > 0
        for i in range(n):
            for j in range(n):  # depends only on which period |i - j| falls in
                assert float(bias[h, i, j]) == pytest.approx(-slope * (abs(i - j) // period))
    assert torch.all(torch.diagonal(bias, dim1=1, dim2=2) == 0)
    assert torch.all(bias[0] <= bias[-1])  # steeper heads look closer


def test_alignment_mask_is_a_band_around_each_frame():
    m = alignment_mask(10, 10, 2)
    for t in range(10):
        assert m[t, t]  # every frame sees its own aligned condition
        assert np.flatnonzero(m[t].numpy()).tolist() == list(range(max(0, t - 2), min(10, t + 3)))


def test_denoiser_cross_attention_mask():
    cfg = tiny(align_radius=1)
    net = build_model(cfg).paths["head"].denoiser
    cond = torch.randn(2, 6, cfg.d_model)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 5] = False
    prev, prev_mask = torch.zeros(2, 3, cfg.head_dim), torch.ones(2, 3, dtype=torch.bool)
    prev_cond = torch.randn(2, 3, cfg.d_model)
    prev_cond_mask = torch.tensor([[True, True, True], [False, True, True]])  # sample 1: audio starts at prev 1
    ctx = net.prepare(cond, mask, prev, prev_mask, torch.tensor([False, False]), prev_cond, prev_cond_mask)
    allowed = ctx["cross_bias"][:, 0] == 0  # (B, P + T, 1 + P + T); column 0 is the sink
    assert allowed.shape == (2, 9, 10)
    assert allowed[:, :, 0].all()  # everyone may see the sink
    for t in range(9):  # one band over the line [prev; window]: token t sees condition tokens t-1..t+1
        assert np.flatnonzero(allowed[0, t, 1:].numpy()).tolist() == list(range(max(0, t - 1), min(9, t + 2)))
    assert not allowed[1, :, 1].any()  # no audio before the clip: masked
    assert not allowed[1, 3 + 4, 1 + 3 + 5]  # padded condition frame blocked
    dropped = net.prepare(cond, mask, prev, prev_mask, torch.tensor([False, True]), prev_cond, prev_cond_mask)
    assert not (dropped["cross_bias"][1, 0, :, 1:] == 0).any()  # dropped condition: sink only (CFG)
    no_prev_cond = net.prepare(cond, mask, prev, prev_mask, torch.tensor([False, False]))
    assert not (no_prev_cond["cross_bias"][:, 0, :, 1:4] == 0).any()  # without their speech: nothing to see
    assert not (no_prev_cond["cross_bias"][:, 0, :3, 1:] == 0).any()  # and they see no condition at all
    assert ctx["self_bias"].shape == (2, cfg.n_heads, 9, 9)


def denoiser_output(net, prev, cond, prev_cond=None):
    b, n = cond.shape[:2]
    g = torch.Generator().manual_seed(3)
    x_t = torch.randn(b, n, net.motion_dim, generator=g)
    pm = torch.ones(b, prev.shape[1], dtype=torch.bool)
    with torch.no_grad():
        return net(x_t, torch.full((b,), 50), cond, torch.ones(b, n, dtype=torch.bool), prev, pm,
                   torch.zeros(b, dtype=torch.bool), prev_cond, None if prev_cond is None else pm)


@pytest.mark.parametrize("method", ["ksdiff", "diffspeaker", "regression"])
@pytest.mark.parametrize("positions", ["ppe", "learned"])
def test_reversing_the_previous_frames_changes_every_denoiser(method, positions):
    """The previous frames are a sequence, not a set: reversing their order moves the output by a sizeable
    fraction of what entirely different previous frames do (without positions: not at all)."""
    def change(pos):
        torch.manual_seed(0)
        model = build_model(tiny(method=method, positions=pos, dropout=0.0)).eval()
        net = model.paths["expr"].denoiser if method == "ksdiff" else model.net
        if pos == "learned":
            with torch.no_grad():
                net.pos_embed.normal_(0, 1)  # trained positions are not ~0 like their initialisation
        g = torch.Generator().manual_seed(1)
        prev = torch.randn(1, 4, net.motion_dim, generator=g)
        cond = torch.randn(1, 8, model.cfg.d_model, generator=g)
        ref = denoiser_output(net, prev, cond)
        rev = denoiser_output(net, prev.flip(1), cond)
        other = denoiser_output(net, torch.randn(1, 4, net.motion_dim, generator=g), cond)
        return float((rev - ref).abs().mean() / (other - ref).abs().mean())

    assert change(positions) > 0.05
    assert change("none") < 1e-4  # the line is shorter than one period: the bias alone cannot order it


def test_previous_frames_are_conditioned_on_their_own_speech():
    """DiffPoseTalk: the previous frames' audio reaches the output; where there is none (masked) it does not."""
    cfg = tiny(dropout=0.0)
    model = build_model(cfg).eval()
    batch = make_batch(cfg, b=1)
    r, p = cfg.feat_per_frame, 4
    g = torch.Generator().manual_seed(5)
    speech = {"prev_feat": torch.randn(1, p * r, cfg.feat_dim, generator=g),
              "prev_feat_mask": torch.ones(1, p * r, dtype=torch.bool),
              "prev_prosody": torch.randn(1, p * r, 2, generator=g),
              "prev_words": torch.randint(0, n_tokens(cfg), (1, p), generator=g)}
    other = dict(speech, prev_feat=torch.randn(1, p * r, cfg.feat_dim, generator=g))

    def run(extra):
        return model.sample({**batch, **extra}, generator=torch.Generator().manual_seed(0))["expr"]

    assert not torch.allclose(run(speech), run(other), atol=1e-4)
    masked = {k: v for k, v in speech.items()}
    masked["prev_feat_mask"] = torch.zeros_like(speech["prev_feat_mask"])
    masked_other = dict(masked, prev_feat=other["prev_feat"], prev_prosody=torch.zeros(1, p * r, 2))
    # masked speech: what the features hold does not matter (the denoiser never sees it; DPSE masks it)
    assert torch.allclose(run(masked), run(masked_other), atol=1e-5)
    with pytest.raises(ValueError, match="previous-frame speech"):
        run(dict(speech, prev_words=speech["prev_words"][:, 1:]))


def test_baselines_are_capacity_matched_to_ksdiff_at_the_default_size():
    count = {m: sum(p.numel() for p in build_model(KSDiffConfig(method=m)).parameters())
             for m in ("ksdiff", "diffspeaker", "regression")}
    for m in ("diffspeaker", "regression"):
        assert 0.85 <= count[m] / count["ksdiff"] <= 1.15, count


def test_no_split_ablation_keeps_prosody_and_the_baselines_do_not_see_it():
    cfg = tiny(split_paths=False, dropout=0.0)
    g = torch.Generator().manual_seed(0)
    feat, mask = torch.randn(1, 48, cfg.feat_dim, generator=g), torch.ones(1, 48, dtype=torch.bool)
    dpse = DPSE(cfg).eval()
    with torch.no_grad():
        dpse.film.gamma.weight.normal_()  # FiLM starts as the identity; a trained one is not
        a, _ = dpse(feat, mask, torch.randn(1, 48, 2, generator=g), 24)
        b, _ = dpse(feat, mask, torch.randn(1, 48, 2, generator=g), 24)
    assert not torch.allclose(a, b)
    for method in ("diffspeaker", "regression"):
        assert build_model(tiny(method=method)).encoder.film is None


# --- DPSE ---# --- DPSE ----------------------------------------------------------------------------------

def test_msdc_and_dpse_shapes():
    cfg = tiny()
    x = torch.randn(2, 48, cfg.d_model)
    mask = torch.ones(2, 48, dtype=torch.bool)
    assert MSDC(cfg.d_model, (1, 2, 4), 3, 4, 0.0)(x, mask).shape == x.shape
    f_h, f_e = DPSE(cfg)(torch.randn(2, 48, cfg.feat_dim), mask, torch.randn(2, 48, 2), 24)
    assert f_h.shape == f_e.shape == (2, 24, cfg.d_model)
    assert not torch.equal(f_h, f_e)
    f_h, f_e = DPSE(tiny(split_paths=False))(torch.randn(2, 48, cfg.feat_dim), mask, torch.randn(2, 48, 2), 24)
    assert f_h is f_e


def test_dpse_output_does_not_depend_on_padding():
    """A clip encodes the same alone or padded with garbage in a batch (masked GroupNorm, pooling, attention)."""
    cfg = tiny(dropout=0.0, dpse_attn_window_s=0.2)
    dpse = DPSE(cfg).eval()
    g = torch.Generator().manual_seed(1)
    feat, pros = torch.randn(1, 40, cfg.feat_dim, generator=g), torch.randn(1, 40, 2, generator=g)
    alone = dpse(feat, torch.ones(1, 40, dtype=torch.bool), pros, 20)
    pad_feat = torch.cat([feat, 50 * torch.randn(1, 17, cfg.feat_dim, generator=g)], dim=1)
    pad_pros = torch.cat([pros, 50 * torch.randn(1, 17, 2, generator=g)], dim=1)
    pad_mask = torch.arange(57)[None] < 40
    padded = dpse(pad_feat, pad_mask, pad_pros, 28)
    for a, p in zip(alone, padded):
        assert torch.allclose(a, p[:, :20], atol=1e-5)


@pytest.mark.parametrize("bias", ["alibi", "none"])
def test_dpse_cross_attention_knows_the_order_of_frames_within_a_pooling_window(bias):
    """Swapping two frames of one pooling window keeps the pooled query; only a position bias lets the
    attention (and so the output) tell the order apart."""
    cfg = tiny(dropout=0.0, dpse_position_bias=bias)
    attn = PooledCrossAttention(cfg, window=4).eval()
    h = torch.randn(1, 16, cfg.d_model, generator=torch.Generator().manual_seed(0))
    swapped = h.clone()
    swapped[:, [0, 1]] = h[:, [1, 0]]  # frames 0 and 1: 1.5 and 0.5 frames from the token centre
    mask = torch.ones(1, 16, dtype=torch.bool)
    with torch.no_grad():
        a, _ = attn(h, mask)
        b, _ = attn(swapped, mask)
    if bias == "alibi":
        assert (a[:, 0] - b[:, 0]).abs().max() > 1e-4
    else:
        assert torch.allclose(a, b, atol=1e-6)


def test_resample_clamps_to_leading_padding_too():
    """The previous frames' audio is masked at a clip start: frames there take the first valid token."""
    tok = torch.arange(4.0).view(1, 4, 1)
    mask = torch.tensor([[False, True, True, True]])
    frames = resample_to_frames(tok, mask, 2, 50, 25, 4).flatten()
    assert frames.tolist() == [1.0, 1.0, 2.0, 3.0]


def test_pool_and_resample_keep_time_alignment():
    x = torch.arange(12.0).view(1, 12, 1)
    pooled, pmask = masked_pool(x, torch.ones(1, 12, dtype=torch.bool), 4)
    assert pooled.flatten().tolist() == [1.5, 5.5, 9.5] and pmask.all()
    # one feature pair per motion frame at 50 Hz / 25 fps: resampling is the identity
    tok = torch.randn(1, 10, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(resample_to_frames(tok, torch.ones(1, 10, dtype=torch.bool), 2, 50, 25, 10), tok)
    # a linear ramp of pooled tokens stays a linear ramp in frame time
    ramp = torch.arange(4.0).view(1, 4, 1) * 10  # token i centred at feature frame 10 i + 5
    frames = resample_to_frames(ramp, torch.ones(1, 4, dtype=torch.bool), 10, 50, 25, 20).flatten()
    expected = (((torch.arange(20) + 0.5) * 2 - 5) / 10 * 10).clamp(0, 30)
    assert torch.allclose(frames, expected, atol=1e-5)
    # padded tokens never leak in: frames past the valid tokens hold the last valid value
    mask = torch.tensor([[True, True, False, False]])
    assert resample_to_frames(ramp, mask, 10, 50, 25, 20).max() == 10.0


def test_prosody_features_and_film():
    f0 = np.array([0, 100, 200, 0, 150, 0], dtype=float)
    voiced = f0 > 0
    p = prosody_features(f0, voiced, np.array([-60, -20, -10, -50, -15, -70.0]))
    assert p.shape == (6, 2) and p.dtype == np.float32
    assert np.all(p[~voiced, 0] == 0) and abs(p[voiced, 0].mean()) < 1e-6 and p[2, 0] > p[4, 0] > p[1, 0]
    assert abs(p[:, 1].mean()) < 1e-6 and p[:, 1].std() == pytest.approx(1, abs=1e-4)
    film = ProsodyFiLM(8)
    h = torch.randn(1, 6, 8)
    assert torch.equal(film(h, torch.from_numpy(p)[None]), h)  # identity at initialisation


def test_transcript_hashing_and_encoder():
    assert hash_word("Hello,", 64) == hash_word("hello", 64) != 0
    assert hash_word("...", 64) == 0
    ids = frame_word_ids(["hi", "there"], np.array([0.0, 0.5]), np.array([0.2, 0.9]), 25, 25.0, 64)
    assert ids[:5].tolist() == [hash_word("hi", 64)] * 5 and ids[5:12].tolist() == [0] * 7
    assert ids[12:22].tolist() == [hash_word("there", 64)] * 10 and ids[22:].tolist() == [0] * 3
    cfg = tiny(transcript_tokens="words")
    enc = TranscriptEncoder(cfg)
    assert enc(torch.from_numpy(ids)[None]).shape == (1, 25, cfg.d_model)
    with pytest.raises(ValueError, match="token ids"):
        enc(torch.tensor([[cfg.vocab_size]]))


def test_phone_tokens_follow_cmudict_over_each_word_span():
    # "map" = M AE P: the vowel gets VOWEL_WEIGHT (1.6) shares, so over 0.0-0.396 s
    # M covers 0-0.11 s, AE 0.11-0.286 s, P 0.286-0.396 s (frame centres at 0.02, 0.06, ... s).
    ids = frame_phone_ids(["Map,", "zzxqj", "..."], np.array([0.0, 0.4, 0.6]), np.array([0.396, 0.6, 0.8]), 25, 25.0)
    want = ["M"] * 3 + ["AE"] * 4 + ["P"] * 3  # frames 0..9
    assert ids[:10].tolist() == [PHONE_ID[p] for p in want]
    assert ids[10:15].tolist() == [UNKNOWN] * 5  # not in the dictionary: unknown, not silence
    assert ids[15:].tolist() == [SILENCE] * 10  # punctuation only, then nothing said
    cfg = tiny()
    assert cfg.transcript_tokens == "phones" and n_tokens(cfg) == len(PHONE_ID) + 2
    assert TranscriptEncoder(cfg)(torch.from_numpy(ids)[None]).shape == (1, 25, cfg.d_model)


# --- KEL -------------------------------------------------------------------------------------

def test_kel_is_causal_in_its_keyframe_inputs():
    cfg = tiny()
    kel = KEL(cfg, 3, min_spacing=2).eval()
    f = torch.randn(1, 12, cfg.d_model)
    ind = torch.zeros(1, 12, dtype=torch.bool)
    motion = torch.randn(1, 12, 3)
    logits, values = kel.teacher_forced(f, ind, motion)
    assert logits.shape == (1, 12) and values.shape == (1, 12, 3)
    ind2 = ind.clone()
    ind2[0, 6] = True
    logits2, _ = kel.teacher_forced(f, ind2, motion)
    assert torch.equal(logits[:, :7], logits2[:, :7])  # frame 6 is only seen from frame 7 on
    assert not torch.allclose(logits[:, 7:], logits2[:, 7:])


def test_kel_sampling_respects_spacing_mask_and_seed():
    cfg = tiny()
    kel = KEL(cfg, 3, min_spacing=3).eval()
    with torch.no_grad():
        kel.out.bias[0] = 5.0  # make every frame want to be a keyframe
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 10:] = False
    f = torch.randn(2, 20, cfg.d_model)
    tokens = kel.sample(f, mask, torch.Generator().manual_seed(0))
    assert tokens.shape == (2, 20, 4)
    ind = tokens[..., -1].bool()
    for b in range(2):
        assert np.all(np.diff(np.flatnonzero(ind[b].numpy())) >= 3)
    assert not ind[1, 10:].any()
    assert np.flatnonzero(ind[0].numpy()).tolist() == list(range(0, 20, 3))  # always-on -> every 3rd frame
    again = kel.sample(f, mask, torch.Generator().manual_seed(0))
    assert torch.equal(tokens, again)


def test_kel_sampling_steps_its_gru_layer_bit_for_bit():
    """Sampling runs the GRU one frame at a time through torch.gru_cell (no nn.GRU call per frame); its
    keyframes must be exactly those of the layer itself stepped frame by frame: trained models and their
    recorded weights depend on these bits (the demo's KSDiff conditions its denoiser on sampled keyframes)."""
    cfg = tiny()
    kel = KEL(cfg, 3, min_spacing=2).eval()
    f, mask = torch.randn(4, 30, cfg.d_model), torch.ones(4, 30, dtype=torch.bool)
    mask[2, 20:] = False
    got = kel.sample(f, mask, torch.Generator().manual_seed(3))
    gen, since = torch.Generator().manual_seed(3), torch.full((4,), 2)
    with torch.no_grad():
        feat, token, state, want = kel.feat_in(f), torch.zeros(4, 1, 4), None, []
        for t in range(30):
            h, state = kel.gru(feat[:, t: t + 1] + kel.prev_in(token), state)
            out = kel.out(h[:, 0])
            ind, since = kel.spaced(kel.decide(torch.sigmoid(out[:, 0]), torch.rand((4,), generator=gen)) & mask[:, t],
                                    since)
            token = torch.cat([out[:, 1:] * ind[:, None], ind[:, None].float()], dim=-1)[:, None]
            want.append(token)
    assert 0 < got[..., -1].sum() < got[..., -1].numel()  # some keyframes, not all: the draws mattered
    assert torch.equal(got, torch.cat(want, dim=1))


@pytest.mark.parametrize("mode", ["free_running", "sampled"])
def test_kel_keyframes_for_the_denoiser_are_free_of_ground_truth(mode):
    """free_running: the keyframes conditioning the denoiser in training do not depend on the ground truth
    at all (same draws, other ground truth: the same tokens). 'sampled' leaks it: its teacher-forced
    probabilities and values are fed the ground-truth earlier keyframes."""
    cfg = tiny(kel_condition=mode, kel_sampling="threshold", kel_threshold=0.5)
    kel = KEL(cfg, 3, min_spacing=2)
    with torch.no_grad():
        kel.out.bias[0] = 0.2  # about every other frame wants to be a keyframe
        kel.prev_in.weight.mul_(20)  # and the previous keyframe token matters
    g = torch.Generator().manual_seed(0)
    f, mask = torch.randn(1, 16, cfg.d_model, generator=g), torch.ones(1, 16, dtype=torch.bool)
    ind_a = torch.zeros(1, 16, dtype=torch.bool)
    ind_a[0, ::4] = True
    ind_b = torch.zeros(1, 16, dtype=torch.bool)
    ind_b[0, 2::5] = True
    _, tok_a = kel.loss(f, ind_a, torch.randn(1, 16, 3, generator=g), mask)
    _, tok_b = kel.loss(f, ind_b, torch.randn(1, 16, 3, generator=g), mask)
    if mode == "free_running":
        assert torch.equal(tok_a, tok_b)
        assert torch.equal(tok_a, kel.sample(f, mask))  # exactly what sampling gives
    else:
        assert not torch.equal(tok_a, tok_b)


# --- the model interface -----------------------------------------------------------------------

@pytest.mark.parametrize("method", ["ksdiff", "diffspeaker", "regression"])
def test_every_method_trains_a_step_and_samples(method):
    cfg = tiny(method=method)
    model = build_model(cfg)
    assert model.cfg is cfg
    batch = make_batch(cfg)
    terms = model.loss(batch)
    assert terms["loss"].dim() == 0 and torch.isfinite(terms["loss"])
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    terms["loss"].backward()
    opt.step()
    changed = sum(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert changed >= 0.8 * len(before)  # nearly every parameter gets a gradient
    out = model.sample(batch, generator=torch.Generator().manual_seed(0))
    assert out["head"].shape == (2, 24, cfg.head_dim) and out["expr"].shape == (2, 24, cfg.expr_dim)
    assert model.training  # sample() restores the training mode


@pytest.mark.parametrize("switch", [{"split_paths": False}, {"use_kel": False}, {"use_transcript": False},
                                    {"split_paths": False, "use_kel": False, "use_transcript": False}])
def test_ablations_build_train_and_sample(switch):
    cfg = tiny(**switch)
    model = build_model(cfg)
    terms = model.loss(make_batch(cfg))
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"])
    assert ("head_kel" in terms) == cfg.use_kel
    assert (model.transcript is not None) == cfg.use_transcript
    out = model.sample(make_batch(cfg, b=1), steps=3)
    assert out["expr"].shape == (1, 24, cfg.expr_dim)
    full = sum(p.numel() for p in build_model(tiny()).parameters())
    assert sum(p.numel() for p in model.parameters()) < full


@pytest.mark.parametrize("method", ["ksdiff", "diffspeaker"])
def test_sample_is_reproducible_per_seed(method):
    cfg = tiny(method=method)
    model = build_model(cfg)
    batch = make_batch(cfg, b=1)
    a = model.sample(batch, generator=torch.Generator().manual_seed(7))
    b = model.sample(batch, generator=torch.Generator().manual_seed(7))
    c = model.sample(batch, generator=torch.Generator().manual_seed(8))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(not torch.allclose(a[k], c[k]) for k in a)
    g = model.sample(batch, guidance=2.0, generator=torch.Generator().manual_seed(7))
    assert not torch.allclose(a["head"], g["head"])  # guidance runs the unconditional pass and changes the result


def test_expression_path_sampler_applies_to_the_expression_path_only():
    """expr_ddim_steps / expr_guidance change KSDiff's expression sampler and nothing else; explicit
    steps/guidance apply to both paths; single-path models use the shared settings."""
    shared = tiny(expr_ddim_steps=None, expr_guidance=None, ddim_steps=5)
    own = tiny(expr_ddim_steps=2, expr_guidance=1.5, ddim_steps=5)
    torch.manual_seed(0)
    model = build_model(shared)
    batch = make_batch(shared, b=1)
    ref_head = model.sample(batch, generator=torch.Generator().manual_seed(3))["head"]
    ref_expr = model.sample(batch, steps=2, guidance=1.5, generator=torch.Generator().manual_seed(3))["expr"]
    model.cfg = own  # same weights, the expression path's own sampler
    for path in model.paths.values():
        path.cfg = own
    out = model.sample(batch, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out["head"], ref_head)  # the head path keeps ddim_steps=5, guidance 1
    assert torch.equal(out["expr"], ref_expr)  # the expression path: 2 steps at guidance 1.5
    assert model.sampler("head") == (5, 1.0) and model.sampler("expr") == (2, 1.5)
    assert model.sampler("expr", steps=7, guidance=1.0) == (7, 1.0)  # a caller's setting wins on every path
    assert build_model(own.__class__(**{**own.to_dict(), "method": "diffspeaker"})).sampler("joint") == (5, 1.0)
    with pytest.raises(ValueError, match="expr_ddim_steps"):
        tiny(expr_ddim_steps=0)
    with pytest.raises(ValueError, match="expr_guidance != 1 needs p_uncond > 0"):
        tiny(p_uncond=0.0)  # guidance without a trained unconditional model


def test_one_ddim_step_is_the_denoisers_mean_estimate():
    """Why few expression steps lower lip error: one DDIM step from pure noise returns the x0-predictor's
    output at t = T - 1, its estimate of the speech-conditioned mean (the sample spread it removes adds to
    a squared lip distance)."""
    cfg = tiny(dropout=0.0)
    model = build_model(cfg).eval()
    diff = model.paths["expr"].denoiser
    calls = []
    orig = diff.run

    def spy(ctx, x, t, n):
        calls.append(int(t[0]))
        return orig(ctx, x, t, n)

    diff.run = spy
    model.sample(make_batch(cfg, b=1), steps=1, guidance=1.0, generator=torch.Generator().manual_seed(0))
    assert calls == [cfg.n_train_steps - 1]  # one conditional pass at the last training step
    calls.clear()
    model.sample(make_batch(cfg, b=1), generator=torch.Generator().manual_seed(0))
    assert len(calls) == 2 * cfg.expr_ddim_steps  # default: expr_ddim_steps steps, conditional + unconditional


def test_sample_ignores_ground_truth_and_uses_prev_frames():
    cfg = tiny(dropout=0.0)
    model = build_model(cfg)
    batch = make_batch(cfg, b=1)
    ref = model.sample(batch, generator=torch.Generator().manual_seed(0))
    other = dict(batch, head=torch.zeros_like(batch["head"]), expr=torch.zeros_like(batch["expr"]))
    assert torch.equal(model.sample(other, generator=torch.Generator().manual_seed(0))["head"], ref["head"])
    cold = dict(batch, prev_mask=torch.zeros_like(batch["prev_mask"]))
    assert not torch.allclose(model.sample(cold, generator=torch.Generator().manual_seed(0))["head"], ref["head"])


def test_sample_long_chains_windows_with_generated_prev_frames():
    cfg = tiny()
    model = build_model(cfg)
    full = make_batch(cfg, b=1, n=50, p=0)
    seen = []
    inner = model.sample

    def recording_sample(chunk, **kw):
        seen.append({k: v.clone() for k, v in chunk.items()})
        out = inner(chunk, **kw)
        seen[-1]["out_head"] = out["head"]
        return out

    model.sample = recording_sample
    out = sample_long(model, full, window=20, n_prev=4, generator=torch.Generator().manual_seed(0))
    assert out["head"].shape == (1, 50, cfg.head_dim) and out["expr"].shape == (1, 50, cfg.expr_dim)
    assert [c["mask"].shape[1] for c in seen] == [20, 20, 10]
    assert [c["feat"].shape[1] for c in seen] == [40, 40, 20]
    assert seen[0]["prev_head"].shape[1] == 0
    for prev, cur in zip(seen, seen[1:]):
        assert torch.equal(cur["prev_head"], prev["out_head"][:, -4:]) and cur["prev_mask"].all()
    assert torch.equal(out["head"][:, 20:40], seen[1]["out_head"])


def test_sample_long_gives_each_window_the_speech_before_it():
    cfg = tiny()
    model = build_model(cfg)
    full = make_batch(cfg, b=1, n=50, p=0)
    r = cfg.feat_per_frame
    seen = []
    inner = model.sample
    model.sample = lambda chunk, **kw: (seen.append(chunk), inner(chunk, **kw))[1]
    sample_long(model, full, window=20, n_prev=4, generator=torch.Generator().manual_seed(0))
    assert not seen[0]["prev_mask"].numel()  # the batch brought no previous frames: a cold start
    for k, s in ((1, 20), (2, 40)):
        assert torch.equal(seen[k]["prev_feat"], full["feat"][:, (s - 4) * r: s * r])
        assert torch.equal(seen[k]["prev_words"], full["words"][:, s - 4: s]) and seen[k]["prev_feat_mask"].all()
    cold = cold_clip(cfg, 30)
    seen.clear()
    sample_long(model, cold, window=20, n_prev=4, generator=torch.Generator().manual_seed(0))
    assert seen[0]["prev_feat"].shape == (1, 4 * r, cfg.feat_dim) and not seen[0]["prev_feat_mask"].any()


def cold_clip(cfg, n):
    from ksdiff.data.dataset import inference_batch

    g = np.random.default_rng(0)
    return inference_batch(g.normal(size=(n * cfg.feat_per_frame, cfg.feat_dim)), np.ones(n * cfg.feat_per_frame, bool),
                           g.normal(size=(n * cfg.feat_per_frame, 2)), np.zeros(n, int), cfg.n_prev, cfg.head_dim,
                           cfg.expr_dim)


class ConstantWindows:
    """A stand-in model whose k-th sampled window is the constant k: where windows meet is then visible."""

    def __init__(self, cfg):
        self.cfg, self.calls = cfg, 0

    def sample(self, chunk, **kw):
        n = chunk["mask"].shape[1]
        self.calls += 1
        return {"head": torch.full((1, n, self.cfg.head_dim), float(self.calls - 1)),
                "expr": torch.full((1, n, self.cfg.expr_dim), float(self.calls - 1))}


def test_sample_long_overlaps_windows_and_crossfades_them():
    cfg = tiny()
    full = make_batch(cfg, b=1, n=26, p=0)
    out = sample_long(ConstantWindows(cfg), full, window=10, n_prev=2, overlap=3)["head"][0, :, 0]
    # windows start at 0, 7, 14, 21 (the last one cut at 26); joins fade over 3 frames: 1/4, 2/4, 3/4
    want = [0.0] * 7 + [0.25, 0.5, 0.75] + [1.0] * 4 + [1.25, 1.5, 1.75] + [2.0] * 4 + [2.25, 2.5, 2.75] + [3.0] * 2
    assert out.tolist() == want
    back_to_back = sample_long(ConstantWindows(cfg), full, window=10, n_prev=2, overlap=0)["head"][0, :, 0]
    assert back_to_back.tolist() == [0.0] * 10 + [1.0] * 10 + [2.0] * 6
    with pytest.raises(ValueError, match="overlap"):
        sample_long(ConstantWindows(cfg), full, window=10, overlap=10)


def test_window_seams_measure_jumps_at_joins_against_ground_truth():
    # ground truth moves 0.1 per frame (p95 = 0.1); the prediction copies it but jumps by 0.5 at frame 10
    gt = (np.arange(25) * 0.1)[:, None] * np.array([[0.6, 0.8]])  # steps of norm 0.1
    pred = gt.copy()
    pred[10:] += 0.5 * np.array([0.6, 0.8])
    sm = window_seams(pred, gt, window=10)
    assert window_joins(25, 10) == [(10, 10), (20, 20)]
    assert sm["n_joins"] == 2 and sm["gt_p95"] == pytest.approx(0.1)
    assert sm["jump_max"] == pytest.approx(0.6) and sm["ratio_max"] == pytest.approx(6.0)
    assert sm["jump_median"] == pytest.approx(0.35) and sm["interior_p95"] == pytest.approx(0.1)
    assert window_seams(gt, gt, window=10)["ratio_max"] == pytest.approx(1.0)  # no seam: as smooth as gt
    assert sm["gt_ratio_median"] == pytest.approx(1.0)  # ground truth's own step at the joins
    # with overlap 3 the join spans steps 7..10 (fade start to the new window's own frames)
    assert window_joins(25, 10, overlap=3) == [(7, 10), (14, 17), (21, 24)]
    valid = np.ones(25, bool)
    valid[3] = False  # a gap in the fit: its steps are not ground-truth motion
    gap = gt.copy()
    gap[3] = 100.0
    assert window_seams(pred, gap, window=10, valid=valid)["gt_p95"] == pytest.approx(0.1)
    assert np.isnan(window_seams(pred[:8], gt[:8], window=10)["jump_max"])  # one window: no join


def test_every_method_trains_under_cpu_bf16_autocast():
    """The mixed-precision path's dtypes (biases, positions, masks) work; CUDA's bf16 runs the same ops."""
    for method in ("ksdiff", "diffspeaker", "regression"):
        cfg = tiny(method=method)
        model = build_model(cfg)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            terms = model.loss(make_batch(cfg))
        assert torch.isfinite(terms["loss"])
        terms["loss"].backward()


# --- learning ----------------------------------------------------------------------------------

def smooth_motion(n: int, dims: int, g: torch.Generator) -> torch.Tensor:
    t = torch.arange(n)[:, None, None] / 25.0
    freq = torch.rand(dims, 3, generator=g) * 2 + 0.3
    phase = torch.rand(dims, 3, generator=g) * 2 * math.pi
    m = torch.sin(2 * math.pi * freq * t + phase).sum(-1)
    return ((m - m.mean(0)) / m.std(0))[None]


def test_ksdiff_overfits_and_follows_the_audio():
    """The full model learns two clips that share a transcript: the loss collapses, and each sample lands
    on its own clip's motion, so the speech condition (not just memorisation) drives it."""
    torch.manual_seed(0)
    cfg = tiny(d_model=64, n_layers=2, expr_dim=8, dropout=0.0, p_uncond=0.0, p_drop_prev=0.0, n_train_steps=1000,
               ddim_steps=10, expr_guidance=None)  # no condition dropping: no guidance
    g = torch.Generator().manual_seed(0)
    clips = make_batch(cfg, b=2, n=48, p=4)
    clips.update(
        head=torch.cat([smooth_motion(48, cfg.head_dim, g) for _ in range(2)]),
        expr=torch.cat([smooth_motion(48, cfg.expr_dim, g) for _ in range(2)]),
        words=clips["words"][:1].expand(2, -1).contiguous(),
        prev_mask=torch.zeros(2, 4, dtype=torch.bool),
    )
    batch = {k: v.repeat(2, *([1] * (v.dim() - 1))) for k, v in clips.items()}  # 2 noise levels per clip per step
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(100):
        terms = model.loss(batch)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        losses.append(terms["loss"].item())
    assert np.mean(losses[-10:]) < 0.15 * np.mean(losses[:5])
    out = model.sample(clips, generator=torch.Generator().manual_seed(1))
    for k in ("head", "expr"):
        err = ((out[k][:, None] - clips[k][None]) ** 2).mean(dim=(2, 3))  # (sample, clip)
        zeros = float((clips[k] ** 2).mean())  # error of predicting the mean motion
        assert float(err.diagonal().max()) < 0.1 * zeros, k
        assert float(err.diagonal().max()) < 0.1 * float(err[0, 1].min(err[1, 0])), k


def test_ksdiff_paths_can_differ_in_depth():
    """head_n_layers / expr_n_layers / expr_ffn_mult size each path's denoiser; unset, both follow n_layers."""
    cfg = tiny(n_layers=2, head_n_layers=1, expr_n_layers=3, expr_ffn_mult=3)
    model = build_model(cfg)
    head, expr = model.paths["head"].denoiser, model.paths["expr"].denoiser
    assert (len(head.layers), len(expr.layers)) == (1, 3)
    assert expr.layers[0].ffn[0].out_features == 3 * cfg.d_model
    assert head.layers[0].ffn[0].out_features == cfg.ffn_mult * cfg.d_model
    default = build_model(tiny(n_layers=2))
    assert [len(p.denoiser.layers) for p in default.paths.values()] == [2, 2]
    batch = make_batch(cfg)
    assert torch.isfinite(model.loss(batch)["loss"])
    out = model.sample(batch, generator=torch.Generator().manual_seed(0))
    assert out["expr"].shape == (2, 24, cfg.expr_dim) and out["head"].shape == (2, 24, cfg.head_dim)
    with pytest.raises(ValueError, match="expr_n_layers"):
        tiny(expr_n_layers=0)
