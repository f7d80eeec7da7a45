"""Train a tiny SyncNet expert and a tiny KSDiff in a fresh interpreter under one numerics mode; print JSON.

    python tests/numerics_probe.py pinned|fast [other-maker|audit]

Run by tests/test_numerics.py with other CPU settings in the environment (each library reads its own
once, when it loads, so every setting needs its own process). Prints the sha256 of each trained
state_dict (float32 tensors in key order) and what ran (ksdiff.numerics.describe).
``other-maker``: the pin makes torch's MKL see a non-Intel processor instead of an Intel one
(ksdiff.mkl_dispatch), so MKL runs its AUTO branch on any machine and the pin's effect shows. ``audit``: the run also samples the model
and scores LSE with the expert, and lists the vector-math calls whose results differ by processor maker
(VENDOR_DEPENDENT) that ran on CPU tensors; a control call shows that the list would catch one.
"""
import functools
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from ksdiff import mkl_dispatch, numerics

numerics.pin(sys.argv[1])  # before numpy and torch load
OPTION = sys.argv[2] if len(sys.argv) > 2 else ""
if OPTION == "other-maker":  # the pin then makes MKL see the other maker: its AUTO branch on any machine
    mkl_dispatch.use_avx2_branch = functools.partial(mkl_dispatch.use_avx2_branch, intel=False)

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fabricate import fabricate_with_stats, tiny_model_cfg  # noqa: E402

from ksdiff import config  # noqa: E402
from ksdiff.infer import predict_clip  # noqa: E402
from ksdiff.metrics.syncnet import lse  # noqa: E402
from ksdiff.metrics.syncnet_train import ExpertConfig, synthetic_sync_clips, train_expert  # noqa: E402
from ksdiff.training.loop import train  # noqa: E402

# torch ops whose CPU kernels for float tensors are MKL vector-math functions that start from rcpps/rsqrtps
# (their AVX2 kernels, disassembled: ksdiff.mkl_dispatch), whose approximations differ between Intel and AMD.
# Float64 log too (vdLn; the float32 one is exact-instruction code). pow(x, 0.5) is sqrt's kernel.
VENDOR_DEPENDENT = {"sqrt", "sqrt_", "tan", "tan_", "atan", "atan_", "asin", "asin_", "acos", "acos_",
                    "log10", "log10_", "log2", "log2_", "_foreach_sqrt", "_foreach_sqrt_"}


class VendorDependentCalls(TorchDispatchMode):
    """Records each VENDOR_DEPENDENT call on a CPU float tensor (name and dtype)."""

    def __init__(self):
        super().__init__()
        self.calls = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        x = args[0] if args else None
        if isinstance(x, (list, tuple)) and x:
            x = x[0]
        if isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.is_floating_point():
            pow_half = name in ("pow", "pow_") and len(args) > 1 and args[1] == 0.5
            if (name in VENDOR_DEPENDENT or pow_half or (name in ("log", "log_") and x.dtype == torch.float64)):
                self.calls.add(f"{name} {str(x.dtype).replace('torch.', '')}")
        return func(*args, **(kwargs or {}))


def state_sha256(state: dict) -> str:
    h = hashlib.sha256()
    for k, v in state.items():
        h.update(k.encode())
        h.update(v.detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def run(out: dict) -> None:
    clips = synthetic_sync_clips(n_clips=3, n_frames=40, seed=0)
    expert, _ = train_expert(clips,
                             # batch 8: the audio stream sees 16 windows, the batch at which torch would pick NNPACK
                             ExpertConfig(steps=3, batch_size=8, log_every=1000))
    out["expert"] = state_sha256(expert.state_dict())
    with tempfile.TemporaryDirectory() as tmp:
        results = fabricate_with_stats(Path(tmp) / "results")
        cfg = config.defaults(model=tiny_model_cfg(), numerics=sys.argv[1], train=dict(
            steps=6, batch_size=4, val_every=6, ckpt_every=6, log_every=3, warmup_steps=2, lr=1e-3, num_threads=1))
        model = Path(tmp) / "m" / "model.pt"
        train(cfg, str(results), str(model))
        out["model"] = state_sha256(torch.load(model, map_location="cpu", weights_only=True)["model"])
        if OPTION == "audit":  # inference and LSE scoring too: the other pinned torch work of a benchmark run
            predict_clip(cfg, str(results), "spk3_clip0", str(Path(tmp) / "pred.parquet"), checkpoint=str(model),
                         n_samples=1, seed=0)
            out["lse_d"] = lse(expert, clips[0][0], clips[0][1])["lse_d"]


def main() -> None:
    out = {}
    if OPTION == "audit":
        with VendorDependentCalls() as audit:
            run(out)
        out["vendor_dependent_calls"] = sorted(audit.calls)
        with VendorDependentCalls() as control:
            torch.sqrt(torch.ones(3))
        out["control_caught"] = sorted(control.calls) == ["sqrt float32"]
    else:
        run(out)
    out["numerics"] = numerics.describe()
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    main()
