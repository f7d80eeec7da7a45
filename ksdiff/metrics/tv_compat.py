"""Import torchvision's Python models even where its C++ extension does not load.

The reference packages of two weight-based metrics build their networks from torchvision's model classes
(pytorch-fid: InceptionV3; lpips: AlexNet/VGG/SqueezeNet) and never call torchvision's C++ operators
(nms, roi_align, image decoding). torchvision's ``__init__`` however registers fake kernels for
``torchvision::nms`` and ``torchvision::qnms`` unconditionally, which raises when the extension library
failed to load, e.g. the CUDA torchvision wheel from PyPI beside a CPU-only torch (libc10_cuda.so is
missing): the whole package then fails to import although the model classes need nothing of it. That is
the situation on the machine this project is built on, where only PyPI's CUDA wheel of torchvision 0.28.0
is reachable; users who install the CPU wheel (envs/install.sh) never take the fallback.

``import_torchvision()`` imports torchvision normally; only if that fails with exactly this error does it
declare the two operators' schemas (no kernel: calling them still raises) and import again. Nothing else
of torch changes, and the fallback is recorded (``FALLBACK``) so a report can say the C++ ops were absent.
"""
from __future__ import annotations

import sys

import torch

# the two operators torchvision/_meta_registrations.py registers fake kernels for without checking the extension
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
FALLBACK: list[str] = []  # the reason, once the fallback was taken
_LIB = []  # keeps the schema library alive (a torch.library.Library is dropped with its last reference)


def import_torchvision():
    """torchvision, imported with the schema fallback described above when its extension does not load; None
    when torchvision is not installed. Called before transformers loads too (ksdiff.extract.features): it
    imports torchvision whenever the package is installed, and would fail on the same error."""
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    try:
        import torchvision
    except ModuleNotFoundError:
        return None
    except RuntimeError as e:
        if "torchvision::nms" not in str(e):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]  # the half-imported package
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for schema in _SCHEMAS:
            lib.define(schema)
        _LIB.append(lib)
        FALLBACK.append(f"torchvision's C++ extension did not load ({e}); its Python models are used without it")
        import torchvision
    return torchvision
