"""Sampling noise drawn per clip, so that a batch of several clips samples what each clip alone would.

A sampler's ``generator`` is either a ``torch.Generator`` (the whole batch draws from it, as it always has)
or a :class:`ClipGenerators`: one generator per clip, the batch's rows grouped clip by clip
(``rows_per_clip`` each, a clip's samples). Every draw then takes each clip's share of the rows from that
clip's own generator, in the shape the clip alone would have drawn, so batching clips (ksdiff.infer) does
not change any clip's noise. Noise is drawn on the CPU and moved to the device by the caller, as before.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ClipGenerators:
    """One generator per clip; rows ``[k * rows_per_clip, (k + 1) * rows_per_clip)`` belong to clip k."""

    generators: tuple[torch.Generator, ...]
    rows_per_clip: int

    def take(self, clips: Sequence[int]) -> "ClipGenerators":
        """The generators of these clips (by position), for a sub-batch holding only their rows."""
        return ClipGenerators(tuple(self.generators[k] for k in clips), self.rows_per_clip)


def draw(fn: Callable[..., torch.Tensor], shape: Sequence[int], generator) -> torch.Tensor:
    """``fn(shape, generator=...)`` (torch.randn / torch.rand) with ``generator`` a torch.Generator, None or
    ClipGenerators (each clip's rows from its own generator)."""
    if not isinstance(generator, ClipGenerators):
        return fn(tuple(shape), generator=generator)
    n = generator.rows_per_clip
    if shape[0] != n * len(generator.generators):
        raise ValueError(f"{shape[0]} rows for {len(generator.generators)} clips of {n} rows each")
    return torch.cat([fn((n, *shape[1:]), generator=g) for g in generator.generators])
