"""The workflow configuration: load a YAML file, validate it, fill in defaults.

Defaults live in one place, the JSON schema at workflow/schemas/config.schema.yaml
(Snakemake's ``validate`` reads the same file), so the CLI, the tests and the
workflow can never disagree about them. The free-form sections default in their
dataclasses: ``train`` in TrainConfig below, ``model`` in ksdiff.models.config,
``infer`` in ksdiff.infer, ``eval.expert`` in ksdiff.metrics.syncnet_train.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


# The non-learned methods `baselines` may name (ksdiff.infer), and those of them every metric
# must put ground truth above (ksdiff.report.sanity), in the order reports show them.
BASELINES = ("static", "mismatched")
FLOORS = ("mismatched", "static")


class ConfigError(ValueError):
    pass


def _schema() -> dict:
    if not SCHEMA_PATH.exists():
        raise ConfigError(f"config schema not found at {SCHEMA_PATH}")
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def validate(config: dict) -> dict:
    """Return a validated copy of ``config`` with every default filled in."""
    config = copy.deepcopy(config)
    schema = _schema()
    cls = _with_defaults(jsonschema.Draft202012Validator)
    # Two passes: the first creates defaulted sub-objects, the second fills their defaults.
    for _ in range(2):
        errors = sorted(cls(schema).iter_errors(config), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.path) or "(top level)"
            raise ConfigError(f"config error at {where}: {e.message}")
    return config


def load(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    return validate(yaml.safe_load(path.read_text()) or {})


def defaults(**overrides) -> dict:
    """The default configuration (one synthetic dataset) with top-level overrides."""
    cfg = {"datasets": [{"name": "synth", "root": "data/synth", "synthetic": True}]}
    cfg.update(overrides)
    return validate(cfg)


def dataclass_from_dict(cls, d: dict | None, what: str):
    """``cls(**d)`` for a config dataclass, refusing keys it does not have.

    The free-form config sections (model, train, infer, eval.expert) are
    checked here, so a typo never silently falls back to a default.
    """
    d = dict(d or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; known keys: {sorted(known)}")
    return cls(**d)


def split_file_paths(split_file) -> list[str]:
    """The file(s) named by ``dataset.split_file`` (a path, a split -> path mapping, or None)."""
    if not split_file:
        return []
    return [str(p) for p in split_file.values()] if isinstance(split_file, dict) else [str(split_file)]


@dataclass
class ExpertConfig:
    """The SyncNet expert's training (ksdiff.metrics.syncnet_train), defaults in one place; override through
    ``eval.expert``. Kept here, torch-free, because the workflow reads an expert job's threads from it
    (ksdiff.plan.expert_threads)."""

    embed_dim: int = 1024  # S's num_layers_in_fc_layers (1024 in syncnet_v2.model)
    steps: int = 3000  # a real corpus; the unit test uses ~100 on synthetic clips
    batch_size: int = 16  # video windows per step (each gives one positive and one negative pair)
    lr: float = 1e-4  # Wav2Lip's expert learning rate (Adam)
    loss: str = "contrastive"  # 'contrastive' (SyncNet, Euclidean) | 'bce_cosine' (Wav2Lip)
    margin: float = 10.0  # contrastive margin in embedding distance; off-sync pairs pushed beyond it
    neg_min_shift: int = 3  # |shift| of a negative, frames: 1-2 frame shifts still overlap 3/5 of the window
    neg_max_shift: int = 15  # the largest offset LSE searches
    color: str = "rgb"  # channel order of the given frames/crops; S is fed BGR like syncnet_python
    seed: int = 0
    device: str = "cpu"
    # torch CPU threads (0: torch's default). Conv backward sums in thread-sized chunks, so the trained
    # weights (and every LSE scored with them) depend on the thread count: one thread makes the expert the
    # same under any `--cores`, and lets it train beside a model job instead of waiting for two free cores.
    num_threads: int = 1
    log_every: int = 10


@dataclass
class TrainConfig:
    """Training hyperparameters (ksdiff.training), defaults in one place; override through the config's ``train:``
    section. Kept here, beside the schema, because the workflow reads the thread count of a training job from
    it (ksdiff.plan.train_threads) in an environment without torch."""

    steps: int = 600  # demo: ~5 min per CPU core on the synthetic corpus (see benchmarks); real datasets want 50k+
    batch_size: int = 16  # DiffPoseTalk's batch size
    lr: float = 1e-4  # AdamW learning rate of both DiffSpeaker and DiffPoseTalk
    warmup_steps: int = 100  # linear warm-up to lr; then constant like DS/DPT (avoids early attention blow-ups)
    weight_decay: float = 0.01  # AdamW's usual decoupled decay
    adam_betas: tuple[float, float] = (0.9, 0.999)  # torch / DS defaults
    grad_clip: float = 1.0  # global grad-norm clip; diffusion losses at small t spike occasionally
    seed: int = 0  # model init, data order, diffusion noise
    amp: str = "bf16"  # CUDA only: bf16 | fp16 (with GradScaler) | off; CPU always trains in fp32
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    num_threads: int = 1  # torch CPU threads (0: torch default); 2 ran 15-40x slower beside another job
    num_workers: int = 0  # clips are in memory; windows are cheap slices, so workers only add start-up cost
    val_every: int = 100  # steps between validation losses
    val_seed: int = 1234  # fixed diffusion noise for validation, so val losses compare across evaluations
    log_every: int = 25  # steps between training-loss log rows
    ckpt_every: int = 100  # steps between checkpoints (resume points)
    keep_checkpoints: int = 2  # most recent checkpoints kept on disk
    # final weights: best_val (lowest validation loss; small data overfits) | best_val_lve (lowest sampled
    # validation lip error, see LipError) | last
    select: str = "best_val"
    val_lve_samples: int = 1  # samples per validation clip for the logged validation lip error (0: not computed)
    # Micro-batches a step's global batch is computed in, each with its own noise seeded by (seed, step,
    # micro-batch); torchrun's processes take disjoint runs of them. 0: one per process. A run of N processes
    # equals a 1-process run with micro_batches=N (ksdiff.training.loop); must divide batch_size.
    micro_batches: int = 0
    # How the workflow launches a training job (ksdiff.plan.train_launch); `ksdiff train` itself runs as
    # whatever torchrun made it. nproc_per_node: processes (GPUs) per node; nnodes > 1: a multi-node job
    # (under Slurm: one torchrun per node by srun); rdzv_endpoint: host:port of the rendezvous (null: the
    # allocation's first node, port 29500).
    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str | None = None

    # Fields that do not change the training trajectory (so they may differ on resume).
    _RESUME_FREE = ("device", "num_threads", "num_workers", "val_every", "log_every", "ckpt_every",
                    "keep_checkpoints", "steps", "val_lve_samples",
                    # the resolved micro-batch count is fingerprinted instead (0 and N are one trajectory on N)
                    "micro_batches", "nproc_per_node", "nnodes", "rdzv_endpoint")

    def __post_init__(self):
        self.adam_betas = tuple(float(b) for b in self.adam_betas)
        if self.select not in ("best_val", "best_val_lve", "last"):
            raise ValueError(f"train.select must be best_val, best_val_lve or last, got {self.select!r}")
        if self.select == "best_val_lve" and self.val_lve_samples < 1:
            raise ValueError("train.select=best_val_lve needs train.val_lve_samples >= 1")
        if self.amp not in ("bf16", "fp16", "off"):
            raise ValueError(f"train.amp must be bf16, fp16 or off, got {self.amp!r}")
        if self.micro_batches < 0 or (self.micro_batches and self.batch_size % self.micro_batches):
            raise ValueError(f"train.micro_batches must be 0 or divide batch_size={self.batch_size}, "
                             f"got {self.micro_batches}")
        for name in ("steps", "batch_size", "val_every", "log_every", "ckpt_every", "keep_checkpoints",
                     "nproc_per_node", "nnodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1")

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainConfig":
        return dataclass_from_dict(cls, d, "train config")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d
