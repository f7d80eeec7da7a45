"""Every model hyperparameter, with its default and the reason for it, in one place.

The paper (Lyu et al., arXiv 2509.20128) gives KSDiff's structure but no numbers.
Where it is silent we start from its two predecessors, DiffSpeaker (DS) and
DiffPoseTalk (DPT), and where those are too heavy for the CPU demo we say so and
keep their value reachable as an option (e.g. ``ddim_steps=50``, ``d_model=512``).
Workflow configs override fields through the ``model:`` section
(``KSDiffConfig.from_dict``), which rejects unknown keys.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

METHODS = ("ksdiff", "diffspeaker", "regression")


@dataclass
class KSDiffConfig:
    # --- what is trained -------------------------------------------------------------
    method: str = "ksdiff"  # ksdiff | diffspeaker (single-path diffusion) | regression (FaceFormer-like)

    # --- data shapes (must match the feature / coefficient extraction config) --------
    feat_dim: int = 80  # log-mel bins of the default feature extractor (wav2vec2/HuBERT: 768/1024)
    feat_rate_hz: float = 50.0  # speech feature rate; wav2vec2/HuBERT also run at 50 Hz
    fps: float = 25.0  # motion frame rate of HDTF/VoxCeleb and of both predecessors
    head_dim: int = 6  # yaw, pitch, roll, tx, ty, tz (normalized)
    expr_dim: int = 50  # FLAME/DECA expression count used by the paper and DPT
    vocab_size: int = 4096  # hashed word ids when transcript_tokens="words" (0 = no word)

    # --- shared transformer sizes ----------------------------------------------------
    d_model: int = 128  # DS uses 512-1024 and DPT 512; 128 keeps CPU inference real-time
    n_heads: int = 4  # DS uses 4 heads
    n_layers: int = 2  # denoiser layers; DS uses 1, DPT 8; 2 is the CPU compromise
    # KSDiff's two denoisers may differ in depth (None = n_layers / ffn_mult). Paper silent.
    head_n_layers: int | None = None
    expr_n_layers: int | None = None
    expr_ffn_mult: int | None = None
    ffn_mult: int = 2  # FFN width = ffn_mult * d_model (small model, small FFN)
    dropout: float = 0.1  # standard transformer dropout; the datasets are small

    # --- DPSE: adapter + MSDC trunk -------------------------------------------------
    msdc_dilations: tuple[int, ...] = (1, 2, 4, 8)  # branch spans 3..17 feature frames at k=3 (up to 0.34 s)
    msdc_kernel: int = 3  # depthwise kernel; dilations supply the reach
    msdc_groups: int = 8  # GroupNorm groups inside each MSDC branch (divides 2*d_model)

    # --- DPSE: pooling paths (windows in speech-feature frames) ----------------------
    pool_long: int = 50  # pose coarse window: 1 s at 50 Hz (head pose is low-frequency)
    pool_mid: int = 10  # pose fine window: 0.2 s (5 motion frames)
    pool_short: int = 2  # expression window: 0.04 s, i.e. one motion frame at 25 fps
    dpse_attn_window_s: float | None = 2.0  # pooled queries see h_s within +-2 s (None = all); keeps alignment
    # Relative position bias of DPSE's cross-attention (pooled token vs frame key): "alibi" adds
    # -slope_h * |token centre - key| / pooling window (ALiBi's per-head slopes, distance counted in the
    # path's own pooling windows, so the 0.04 s expression tokens stay local and the 1 s pose tokens see
    # seconds). Without it ("none") the +-2 s window is a bag of frames: a token cannot tell its own
    # frames from frames 2 s away, and the order of frames in time does not reach the output.
    dpse_position_bias: str = "alibi"
    resample_mode: str = "linear"  # pooled tokens -> T frames: interpolation in time ("nearest"); paper silent
    # Each path's output also gets a Linear of the frame-rate features it pooled
    # (h_s for pose, FiLM'd h' for expression). Paper silent; without it the pooled
    # tokens alone learned expression slower than the single-path baseline on the
    # demo corpus (val expression loss 0.80 vs 0.64 after 300 steps).
    path_residual: bool = True
    # Prosody FiLM on the expression feature (the paper's expression path). With split_paths=False the
    # shared feature keeps it too, so the no-split ablation removes the split only; the baselines turn it
    # off (DiffSpeaker and FaceFormer see speech features only). False = the "no prosody" ablation.
    use_prosody: bool = True

    # --- transcript ------------------------------------------------------------------
    # phones (CMUdict, a closed set every run sees; they are the visemes) | words (hashed into vocab_size;
    # unseen test words get untrained rows: hurt held-out lip error on the demo corpus). See models/transcript.py.
    transcript_tokens: str = "phones"
    transcript_kernel: int = 5  # conv over per-frame token embeddings: +-2 frames of context

    # --- KEL: keyframes --------------------------------------------------------------
    keyframe_signal: str = "speed"  # ground-truth keyframes peak in motion speed ("speed") or acceleration ("accel")
    keyframe_percentile_head: float = 80.0  # a keyframe's speed must exceed this percentile of its window
    keyframe_percentile_expr: float = 80.0  # same for expressions
    keyframe_min_spacing_head: int = 6  # frames between head keyframes (~0.24 s; pose moves slowly)
    keyframe_min_spacing_expr: int = 3  # 0.12 s: up to ~2 peaks per syllable (4-6 Hz)
    kel_sampling: str = "bernoulli"  # Bernoulli(p) keeps the trained keyframe rate ("threshold": p > kel_threshold)
    kel_threshold: float = 0.5  # only used when kel_sampling == "threshold"
    kel_enforce_spacing: bool = True  # sampled keyframes keep the min spacing, like the ground truth
    # The keyframes the denoiser is conditioned on in training (see models/kel.py):
    # "free_running" (default): KEL decodes its own keyframes with no ground truth at all (the sampler's
    # autoregressive loop under no_grad, fed back its own picks and values), exactly what the denoiser gets
    # at sampling. "sampled": KEL's picks from its *teacher-forced* probabilities, which are conditioned on
    # the ground-truth earlier keyframes (a leak: the denoiser learns to trust keyframes better than KEL can
    # produce). "ground_truth": the ground-truth positions. KEL's own loss stays teacher-forced in all three.
    kel_condition: str = "free_running"

    # --- dual-path denoisers ---------------------------------------------------------
    alibi_period: int = 25  # periodic self-attention bias period: 1 s at 25 fps (FaceFormer/DS use the frame rate)
    align_radius: int = 2  # motion frame t cross-attends to condition frames t-2..t+2 (DS alignment mask, widened)
    # Token positions over the line [previous frames; window]: "ppe" = FaceFormer/DiffSpeaker's periodic
    # positional encoding (sinusoid of t mod alibi_period, added to every token); "learned" = one learned
    # vector per position (at most n_prev + window tokens); "none" = only the type embedding. The periodic
    # bias is constant within a period, so without positions the previous frames are an unordered set to
    # the window's first frames (reversing their order changed the output by 2e-7).
    positions: str = "ppe"
    # The previous frames get their aligned speech condition (DiffPoseTalk): DPSE encodes the audio of
    # [previous frames; window] in one pass and previous frame t cross-attends to its own condition frames,
    # like the window's. At a clip start there is no earlier audio: masked, as the previous motion is.
    prev_condition: bool = True

    # --- diffusion -------------------------------------------------------------------
    n_train_steps: int = 1000  # DS: 1000 DDPM steps (DPT: 500)
    beta_schedule: str = "scaled_linear"  # DS; "cosine" for DPT's schedule
    beta_start: float = 0.00085  # DS scaled-linear start
    beta_end: float = 0.012  # DS scaled-linear end
    cosine_s: float = 0.008  # offset of the cosine schedule (Nichol & Dhariwal)
    predict: str = "x0"  # DS and DPT both predict the clean motion
    ddim_steps: int = 20  # DS uses 50; 20 meets real-time factor <= 0.05 on 2 CPU cores (see the timing in the report)
    ddim_eta: float = 0.0  # deterministic DDIM given the initial noise (DS)
    p_uncond: float = 0.1  # probability of dropping the speech condition in training (DPT-style CFG)
    guidance: float = 1.0  # classifier-free guidance scale at sampling; 1.0 = off (no second forward pass)
    p_drop_prev: float = 0.2  # probability of hiding prev frames in training so cold starts are learned
    # KSDiff's expression path gets its own sampler (None = ddim_steps / guidance, like the head path).
    # Why: lip error is a squared distance to the one ground truth, so a sample's spread around the
    # conditional mean adds to it (E|x - gt|^2 = |E x - gt|^2 + Var x); a regressor predicts that mean and
    # wins LVE by construction. Lip shape is nearly determined by the phones, head pose is not (one-to-many),
    # so the split lets the expression path sample close to the speech-conditioned mean (few DDIM steps of
    # an x0-predictor; audio CFG sharpens it towards the condition) while the head path keeps the full
    # stochastic sampler and its diversity. Chosen on the validation speaker's sampled lip error (LipError,
    # 3 samples x 10 clips, the seed-0 demo models after 300 steps; expression steps at guidance 1:
    # 20/5/3/2/1 -> 0.0570/0.0559/0.0550/0.0548/0.0590; at guidance 1.5: 3/2/1 -> 0.0541/0.0535/0.0554;
    # 2 steps at guidance 2: 0.0539; the static face 0.0686). One step alone is the t = T-1 mean estimate,
    # over-smoothed; the second step (t = 0) restores detail. Single-path models (diffspeaker) cannot
    # separate the two paths and use the shared ddim_steps / guidance.
    expr_ddim_steps: int | None = 2
    expr_guidance: float | None = 1.5

    # --- windows ---------------------------------------------------------------------
    window: int = 100  # motion frames per training/sampling window (DPT)
    n_prev: int = 10  # previous frames given for continuity (DPT)
    # sample_long: consecutive windows overlap by this many frames (0 = back to back, DPT's scheme), crossfaded
    # linearly from the earlier window's frames to the later one's. Back to back, the demo model's head pose
    # jumped at each join by 7.5x ground truth's 95th-percentile frame-to-frame change (median over the 10 test
    # clips; expression 0.94x, its own interior steps 1.38x) even with positions and the previous frames'
    # speech; 25 frames (1 s) brought the head to 0.68x (max 0.95x) and test lip error from 0.0423 to 0.0418,
    # for a third more sampling compute. Must be < window.
    window_overlap: int = 25

    # --- baselines' size (capacity-matched to KSDiff at the defaults: see models/baselines.py) -----
    # KSDiff has two paths (two DPSE path stacks, two KELs, two denoisers); a single-path model at the
    # shared sizes has a third of its parameters, so a win could be capacity, not method. The baselines get
    # more layers and a wider FFN (DPT itself uses 8 layers): at the defaults (7 layers, FFN 4 x d_model)
    # 1.06x (diffspeaker) and 1.04x (regression) KSDiff's 1.97 M parameters (tests/test_models.py: +-15%).
    baseline_n_layers: int = 7
    baseline_ffn_mult: int = 4

    # --- loss weights ----------------------------------------------------------------
    w_value: float = 1.0  # DS: value loss weight 1
    w_velocity: float = 1.0  # DS: velocity loss weight 1
    w_smooth: float = 0.0  # DPT's acceleration penalty; off by default like DS
    w_kel: float = 1.0  # KEL loss (BCE on indicators + L1 on keyframe values) relative to the diffusion loss
    w_kel_value: float = 1.0  # inside KEL: value term relative to the indicator BCE
    w_head: float = 1.0  # head-path diffusion loss weight
    w_expr: float = 1.0  # expression-path diffusion loss weight

    # --- ablation switches -----------------------------------------------------------
    split_paths: bool = True  # False: no DPSE split, both generators get one shared feature
    use_kel: bool = True  # False: no keyframes
    use_transcript: bool = True  # False: no transcript condition

    def __post_init__(self) -> None:
        self.msdc_dilations = tuple(int(d) for d in self.msdc_dilations)
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; expected one of {METHODS}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if (2 * self.d_model) % self.msdc_groups:
            raise ValueError(f"msdc_groups={self.msdc_groups} must divide 2*d_model={2 * self.d_model}")
        if self.beta_schedule not in ("scaled_linear", "linear", "cosine"):
            raise ValueError(f"unknown beta_schedule {self.beta_schedule!r}")
        if self.predict != "x0":
            raise ValueError("only predict='x0' is implemented (both DiffSpeaker and DiffPoseTalk predict x0)")
        if self.resample_mode not in ("linear", "nearest"):
            raise ValueError(f"unknown resample_mode {self.resample_mode!r}")
        if self.transcript_tokens not in ("phones", "words"):
            raise ValueError(f"unknown transcript_tokens {self.transcript_tokens!r}; expected 'phones' or 'words'")
        if self.keyframe_signal not in ("speed", "accel"):
            raise ValueError(f"unknown keyframe_signal {self.keyframe_signal!r}")
        if self.kel_condition not in ("free_running", "sampled", "ground_truth"):
            raise ValueError(f"unknown kel_condition {self.kel_condition!r}; expected 'free_running', 'sampled' "
                             "or 'ground_truth'")
        if self.positions not in ("ppe", "learned", "none"):
            raise ValueError(f"unknown positions {self.positions!r}; expected 'ppe', 'learned' or 'none'")
        if self.dpse_position_bias not in ("alibi", "none"):
            raise ValueError(f"unknown dpse_position_bias {self.dpse_position_bias!r}; expected 'alibi' or 'none'")
        if not 0 <= self.window_overlap < self.window:
            raise ValueError(f"window_overlap must be in 0..window-1, got {self.window_overlap}")
        if self.kel_sampling not in ("bernoulli", "threshold"):
            raise ValueError(f"unknown kel_sampling {self.kel_sampling!r}")
        if self.msdc_kernel % 2 == 0:
            raise ValueError("msdc_kernel must be odd so the convolutions keep frames aligned")
        for name in ("head_n_layers", "expr_n_layers", "expr_ffn_mult"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1 or null, got {v}")
        for name in ("ddim_steps", "expr_ddim_steps"):
            v = getattr(self, name)
            if v is not None and not 1 <= v <= self.n_train_steps:
                raise ValueError(f"{name} must be in 1..{self.n_train_steps}, got {v}")
        if self.ddim_steps is None:
            raise ValueError("ddim_steps must be set")
        guided = [n for n in ("guidance", "expr_guidance") if getattr(self, n) not in (None, 1.0)]
        if guided and self.p_uncond <= 0:  # the unconditional model guidance extrapolates from is never trained
            raise ValueError(f"{', '.join(guided)} != 1 needs p_uncond > 0 (classifier-free guidance trains the "
                             "unconditional model by dropping the condition); set them to 1.0 or null")
        ratio = self.feat_rate_hz / self.fps
        if abs(ratio - round(ratio)) > 1e-6:
            raise ValueError(f"feat_rate_hz/fps must be an integer (got {ratio}); windows are cropped in whole frames")

    @property
    def feat_per_frame(self) -> int:
        """Speech-feature frames per motion frame (2 for 50 Hz features at 25 fps)."""
        return int(round(self.feat_rate_hz / self.fps))

    @classmethod
    def from_dict(cls, d: dict | None) -> "KSDiffConfig":
        from ksdiff.config import dataclass_from_dict

        return dataclass_from_dict(cls, d, "KSDiffConfig")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["msdc_dilations"] = list(self.msdc_dilations)
        return d
