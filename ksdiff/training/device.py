"""Where a training (or inference) process computes: its device, autocast dtype and RNG devices."""
from __future__ import annotations

import torch

from ksdiff.config import TrainConfig


def pick_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """The device ``name`` asks for; under torchrun (``local_rank`` given) a CUDA device is the rank's own,
    cuda:LOCAL_RANK, so the processes of a node share its GPUs one each."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    if dev.type == "cuda" and local_rank is not None:
        if dev.index is not None:
            raise ValueError(f"train.device={name!r} names one GPU, but torchrun gives each process its own "
                             "(cuda:LOCAL_RANK): set train.device to auto or cuda")
        dev = torch.device("cuda", local_rank)
    return dev


def amp_dtype(tcfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32 (always on CPU: CPU autocast gains little and costs accuracy)."""
    if device.type != "cuda" or tcfg.amp == "off":
        return None
    if tcfg.amp == "bf16" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose RNG ``torch.random.fork_rng`` must save for work on ``device``."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]
