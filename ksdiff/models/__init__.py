"""KSDiff and its baselines as compact research code; ``build_model(cfg)`` picks one by ``cfg.method``."""
from __future__ import annotations

from torch import nn

from .baselines import DiffSpeakerModel, RegressionModel
from .config import METHODS, KSDiffConfig
from .ksdiff import KSDiff, MotionModel, sample_long

_MODELS = {"ksdiff": KSDiff, "diffspeaker": DiffSpeakerModel, "regression": RegressionModel}
assert set(_MODELS) == set(METHODS)


def build_model(cfg: KSDiffConfig) -> nn.Module:
    """The model named by ``cfg.method`` ('ksdiff', 'diffspeaker' or 'regression')."""
    if not isinstance(cfg, KSDiffConfig):
        raise TypeError(f"build_model expects a KSDiffConfig, got {type(cfg).__name__} (use KSDiffConfig.from_dict)")
    return _MODELS[cfg.method](cfg)


__all__ = ["KSDiffConfig", "METHODS", "MotionModel", "build_model", "sample_long", "KSDiff", "DiffSpeakerModel",
           "RegressionModel"]
