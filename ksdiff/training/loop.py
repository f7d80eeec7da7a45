"""`ksdiff train`: fit a motion model on the usable training clips of one dataset, in one process or many.

Steps-based loop (no epochs: step k's windows are drawn from (seed, k), see
ksdiff.data.dataset.StepBatchSampler), AdamW, optional mixed precision on CUDA,
validation on the val split, CSV (and TensorBoard when installed) logs, atomic
checkpoints and exact resume (ksdiff.training.checkpoint). The shape is nanoGPT's
train.py: DDP lives in this one loop.

Many processes: ``torchrun --nproc_per_node N [--nnodes M --rdzv_endpoint host:port] -m ksdiff train ...``
(the workflow builds that line, ksdiff.plan.train_launch). torchrun sets RANK, LOCAL_RANK and WORLD_SIZE;
each process computes on cuda:LOCAL_RANK (nccl) or the CPU (gloo) and wraps the model in torch's
DistributedDataParallel, which all-reduces the gradients. Rank 0 alone writes logs, validation, checkpoints
and the model file; every rank resumes from the same checkpoint, so a kill of any rank and a rerun continue
from the last checkpoint.

The global batch (train.batch_size windows) and the learning-rate schedule do not depend on the number of
processes: a step's global batch is split into ``train.micro_batches`` micro-batches (0: one per process),
and rank r computes its contiguous run of them (gradient accumulation, nanoGPT's micro-steps). Two things
make N processes compute what one process does with micro_batches=N:
- noise: with more than one micro-batch, each one's noise (diffusion times and noise, condition dropout,
  dropout) is drawn after seeding torch from (seed, step, micro-batch), so it does not depend on which
  process computes it; with one micro-batch the run keeps the single RNG stream it always had.
- loss weights: the loss terms are means over valid frames, and micro-batches hold different numbers of
  them (short clips are padded and masked). Micro-batch i's loss is weighted by its share of the global
  batch's valid frames, n_i / sum(n) (the sum all-reduced), times WORLD_SIZE because DDP averages the
  processes' gradients: the all-reduced gradient is sum_i n_i / sum(n) * grad(loss_i), on any process count.
The gradients then differ only in the order of the all-reduce's float sums (measured in
tests/test_train_ddp.py). Changing the process count with micro_batches=0 changes the micro-batches, hence
the noise: its checkpoints do not resume (the fingerprint holds the micro-batch count).

Outputs, beside ``out`` (the final model file, e.g. models/synth/ksdiff/model.pt):
  checkpoints/step-{N:08d}.pt   training state, the last ``keep_checkpoints`` kept
  train_log.csv                 step, phase (train|val|model), metric, value; phase "model" (step 0)
                                holds n_params, the trained model's parameter count
  tensorboard/                  when the ``tensorboard`` package is importable
"""
from __future__ import annotations

import datetime
import logging
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ksdiff import numerics
from ksdiff.config import TrainConfig
from ksdiff.data import dataset as ds
from ksdiff.io.files import atomic_torch_save
from ksdiff.models import METHODS, KSDiffConfig, build_model
from ksdiff.models.transcript import tokenizer
from ksdiff.training import checkpoint as ck
from ksdiff.training.data import ChunkCollate, RankSlice, prepare_data
from ksdiff.training.device import amp_dtype, pick_device, to_device
from ksdiff.training.logs import CsvLog, tensorboard
from ksdiff.training.validation import LipError, validate

log = logging.getLogger(__name__)

# Rank 0 validates and writes checkpoints while the others wait in the next step's all-reduce; torch's
# default (10 min for nccl) would end a run whose validation set takes longer.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def chunk_seed(seed: int, step: int, chunk: int) -> int:
    """The noise seed of micro-batch ``chunk`` of ``step``: like the windows, a function of (seed, step) only."""
    return int(np.random.SeedSequence([seed, step, chunk]).generate_state(1, np.uint64)[0])


def lr_at(step: int, tcfg: TrainConfig) -> float:
    if tcfg.warmup_steps > 0 and step < tcfg.warmup_steps:
        return tcfg.lr * (step + 1) / tcfg.warmup_steps
    return tcfg.lr


def resolve_method(cfg: dict, name: str | None) -> tuple[str, dict]:
    """(method name, KSDiffConfig overrides): cfg['model'] updated by cfg['methods'][name].

    ``name`` is a key of cfg['methods'] (e.g. 'ksdiff_nokel') or a bare
    architecture ('ksdiff', 'diffspeaker', 'regression'); None trains cfg['model'].
    """
    base = dict(cfg.get("model") or {})
    if name is None:
        return base.get("method", "ksdiff"), base
    variants = cfg.get("methods") or {}
    if name in variants:
        return name, {**base, **variants[name]}
    if name in METHODS:
        return name, {**base, "method": name}
    raise ValueError(f"unknown method {name!r}: not in config 'methods' ({sorted(variants)}) nor one of {METHODS}")


def model_config(cfg: dict, overrides: dict, info: dict) -> KSDiffConfig:
    """KSDiffConfig from the overrides with the data's shapes (feat_dim, expr_dim, feature rate, fps)."""
    d = dict(overrides)
    for key, value in (("feat_dim", info["feat_dim"]), ("expr_dim", info["expr_dim"]),
                       ("feat_rate_hz", info["feat_rate_hz"]), ("fps", float(cfg["fps"]))):
        if key in d and d[key] != value:
            log.warning("model.%s=%s overridden by the data (%s)", key, d[key], value)
        d[key] = value
    return KSDiffConfig.from_dict(d)


class LossOf(nn.Module):
    """A model's training loss as a module's forward: DDP hooks ``forward``, the models expose ``loss``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.model.loss(batch)


def train(cfg: dict, results: str, out: str, method: str | None = None) -> int:
    """`ksdiff train`: train ``method`` (a name in cfg['methods'] or an architecture) and write ``out``."""
    tcfg = TrainConfig.from_dict(cfg.get("train"))
    ddp = "RANK" in os.environ  # set by torchrun; a plain `ksdiff train` is rank 0 of 1
    rank, local_rank, world = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE")) if ddp else (0, 0, 1)
    device = pick_device(tcfg.device, local_rank if ddp else None)
    if ddp:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
    try:
        return _train(cfg, tcfg, Path(results), Path(out), method, device, ddp, rank, world)
    finally:
        if ddp:
            dist.destroy_process_group()


def _train(cfg: dict, tcfg: TrainConfig, results: Path, out: Path, method: str | None, device: torch.device,
           ddp: bool, rank: int, world: int) -> int:
    master = rank == 0
    chunks = tcfg.micro_batches or world
    if chunks % world or tcfg.batch_size % chunks:
        raise ValueError(f"train.micro_batches={chunks} must be a multiple of the {world} processes and divide "
                         f"train.batch_size={tcfg.batch_size}")
    per_rank, chunk_size = chunks // world, tcfg.batch_size // chunks
    name, overrides = resolve_method(cfg, method)
    pre = KSDiffConfig.from_dict(overrides)
    data = prepare_data(cfg, results, pre.window, pre.n_prev, tokenizer(pre))
    mcfg = model_config(cfg, overrides, data.info)
    dtype = amp_dtype(tcfg, device)
    if tcfg.num_threads > 0:
        torch.set_num_threads(tcfg.num_threads)
    numerics.torch_settings(numerics.mode_of(cfg))
    fp = ck.fingerprint(mcfg.to_dict(), tcfg, data.stats, [c.clip_id for c in data.train.clips], chunks)

    seed_everything(tcfg.seed)
    model = build_model(mcfg).to(device)
    # Fused: one kernel of ATen's own vector code per parameter. The default (for-each) AdamW takes torch.sqrt of
    # its second moments, which on the CPU is MKL's vector sqrt, whose results differ between Intel and AMD
    # processors (ksdiff.mkl_dispatch); the fused kernel's square root is the IEEE one. Faster too.
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, betas=tcfg.adam_betas, weight_decay=tcfg.weight_decay,
                            fused=device.type in ("cpu", "cuda"))
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    step = 0
    best = None  # {"step", "val_loss", "model"}: the weights with the lowest validation loss so far
    ckdir = ck.checkpoint_dir(out)
    state = ck.resume_state(ckdir, fp, tcfg.steps)  # every rank loads the same state
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        ck.set_rng_state(state["rng"])
        step, best = int(state["step"]), state.get("best")
        if master:
            log.info("resuming from %s (step %d)", state["path"], step)
    if ddp:
        dist.barrier()  # every rank has read its checkpoint before rank 0 may delete stale ones
    if state is None and master and ck.list_checkpoints(ckdir):
        log.warning("checkpoints in %s belong to another configuration or a shorter run: starting afresh", ckdir)
        for p in ck.list_checkpoints(ckdir):
            p.unlink()
    net = (DistributedDataParallel(LossOf(model), device_ids=[device.index] if device.type == "cuda" else None)
           if ddp else LossOf(model))

    n_par = sum(p.numel() for p in model.parameters())
    if master:
        log.info("training %s (%.2fM parameters) on %s%s, %d process(es), %d micro-batch(es) of %d: %d train "
                 "clips, %d val clips, %d steps", mcfg.method, n_par / 1e6, device, f" ({dtype})" if dtype else "",
                 world, chunks, chunk_size, len(data.train.clips), len(data.val.clips) if data.val else 0, tcfg.steps)
    csv_log = CsvLog(out.parent / "train_log.csv", step) if master else None
    tb = tensorboard(out.parent / "tensorboard") if master else None
    sampler = ds.StepBatchSampler(data.train.lengths(), data.train.window, tcfg.batch_size, tcfg.seed,
                                  start_step=step, n_steps=tcfg.steps)
    lo = rank * per_rank * chunk_size  # this rank's windows of every global batch: lo .. lo + per_rank * chunk_size
    # The loader draws its base seed from its own generator, not the global RNG, so
    # creating it at a resumed step does not shift the training noise.
    loader = torch.utils.data.DataLoader(data.train, batch_sampler=RankSlice(sampler, lo, lo + per_rank * chunk_size),
                                         collate_fn=ChunkCollate(chunk_size), num_workers=tcfg.num_workers,
                                         generator=torch.Generator().manual_seed(0),
                                         pin_memory=device.type == "cuda")
    lip_error = LipError.build(data, tcfg.val_lve_samples)
    if tcfg.select == "best_val_lve" and lip_error is None:
        raise ValueError("train.select=best_val_lve needs validation clips and a landmark expression basis")

    def run_validation() -> dict[str, float]:
        return validate(model, data, lip_error, tcfg.batch_size, device, dtype, tcfg.val_seed)

    if master and step == 0:
        csv_log.write(0, "model", {"n_params": n_par})
        if data.val is not None:  # the untrained model's loss: the reference for "it learned"
            csv_log.write(0, "val", {**run_validation(), **({"lve_static": lip_error.static()} if lip_error else {})})
    net.train()
    t0, run_sums, run_grad, run_n = time.time(), {}, 0.0, 0
    bar = tqdm(total=tcfg.steps, initial=step, desc=f"train {mcfg.method}", unit="step", disable=None if master else True)
    for micro in loader:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tcfg)
        counts = [float(b["mask"].sum()) for b in micro]  # valid frames per micro-batch: the loss weights
        total = sum(counts)
        if ddp:
            t = torch.tensor(total, dtype=torch.float64, device=device)
            dist.all_reduce(t)
            total = float(t)
        opt.zero_grad(set_to_none=True)
        for i, batch in enumerate(micro):
            if chunks > 1:
                torch.manual_seed(chunk_seed(tcfg.seed, step, rank * per_rank + i))
            if ddp:  # all-reduce once per step, in the backward of the rank's last micro-batch
                net.require_backward_grad_sync = i == len(micro) - 1
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                terms = net(to_device(batch, device))
            loss = terms["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss at step {step}: lower train.lr or check the data")
            w = counts[i] / max(total, 1.0)
            scale = w * world  # DDP averages the ranks' gradients; 1.0 in one process with one micro-batch
            scaler.scale(loss if scale == 1.0 else loss * scale).backward()
            for k, v in terms.items():
                run_sums[k] = run_sums.get(k, 0.0) + w * float(v.detach() if isinstance(v, torch.Tensor) else v)
        scaler.unscale_(opt)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        step += 1
        bar.update(1)
        run_grad += float(grad_norm)  # the same on every rank: the gradients are all-reduced
        run_n += 1
        if step % tcfg.log_every == 0 or step == tcfg.steps:
            if ddp:  # the global batch's loss terms: each rank holds its micro-batches' weighted share
                t = torch.tensor(list(run_sums.values()), dtype=torch.float64, device=device)
                dist.all_reduce(t)
                run_sums = dict(zip(run_sums, t.tolist()))
            row = {k: v / run_n for k, v in run_sums.items()}
            row["grad_norm"] = run_grad / run_n
            row["lr"] = opt.param_groups[0]["lr"]
            row["steps_per_s"] = run_n / max(time.time() - t0, 1e-9)
            if master:
                csv_log.write(step, "train", row)
                if tb:
                    for k, v in row.items():
                        tb.add_scalar(f"train/{k}", v, step)
                bar.set_postfix(loss=f"{row['loss']:.4f}")
            t0, run_sums, run_grad, run_n = time.time(), {}, 0.0, 0
        if master and data.val is not None and (step % tcfg.val_every == 0 or step == tcfg.steps):
            val = run_validation()
            csv_log.write(step, "val", val)
            key = {"best_val": "loss", "best_val_lve": "lve"}.get(tcfg.select)
            if key is not None and (best is None or val[key] < best["val_" + key]):
                best = {"step": step, "val_" + key: val[key],
                        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
            if tb:
                for k, v in val.items():
                    tb.add_scalar(f"val/{k}", v, step)
            log.info("step %d: val loss %.4f%s", step, val["loss"],
                     f", val lip error {val['lve']:.4f}" if "lve" in val else "")
        if master and (step % tcfg.ckpt_every == 0 or step == tcfg.steps):
            state = ck.model_payload(model, mcfg, tcfg, data, step, name)
            state.update(optimizer=opt.state_dict(), scaler=scaler.state_dict(), rng=ck.rng_state(), best=best,
                         fingerprint=fp, sampler={"seed": tcfg.seed, "next_step": step})
            atomic_torch_save(state, ckdir / f"step-{step:08d}.pt")
            ck.prune_checkpoints(ckdir, tcfg.keep_checkpoints)
    bar.close()
    if not master:
        return 0
    if tb:
        tb.close()
    final = ck.model_payload(model, mcfg, tcfg, data, step, name)
    final["val_loss"] = csv_log.history("val", "loss")
    final["trained_steps"] = step
    if best is not None:
        final["model"], final["step"] = best["model"], best["step"]
        what = "loss" if "val_loss" in best else "lve"
        log.info("keeping the weights of step %d (lowest validation %s %.4f)", best["step"],
                 "loss" if what == "loss" else "lip error", best["val_" + what])
    atomic_torch_save(final, out)
    log.info("wrote %s (step %d)", out, step)
    return 0
