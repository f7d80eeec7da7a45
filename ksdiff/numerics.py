"""Which CPU code paths do the arithmetic: pinned, so one config gives the same numbers on every x86-64 CPU.

Float sums are not associative, and each numeric library picks its kernels for the processor it runs on:
16-lane AVX-512 kernels sum in another order than 8-lane AVX2 ones. Measured on the tiny end-to-end
corpus (benchmarks/README.md, "Numerics across processors"): an AVX-512 machine's pose and coefficient
tables differ from an AVX2-only machine's in their last bits (numpy's OpenBLAS), and the SyncNet expert
trained on identical crops comes out different (oneDNN's convolutions, ATen's vectorised kernels, MKL's
GEMM), enough to turn a sync check from pass to fail. Each library can be told at start-up to use the code
path that every CPU with AVX2 has, and then gives the same bits there:

- ATen (torch's own kernels): ``ATEN_CPU_CAPABILITY=avx2``.
- MKL (torch's matrix products and vector math): Conditional Numerical Reproducibility,
  ``MKL_CBWR=AVX2,STRICT`` (MKL's documented promise of the same results on every Intel CPU with AVX2), and
  ``MKL_ENABLE_INSTRUCTIONS=AVX2``, which caps that branch at AVX2. On other makers' processors MKL runs its
  AUTO branch instead, with other kernels and other bits (measured: an AMD EPYC trains other weights than
  the same machine with MKL seeing an Intel processor), so once torch loads, pinned numerics have MKL run the
  AVX2 branch on every processor (ksdiff.mkl_dispatch, which says why that is sound) and record the branch
  that runs. MKL's vector sqrt, tan, atan, asin, acos, log10 and log2 still differ by maker (they start from
  rcpps/rsqrtps), so pinned code does not call them on CPU tensors; tests/test_numerics.py checks both, and compares a
  trained expert's and model's sha256 with the ones recorded on the reference machine.
- oneDNN (torch's convolutions by default) is switched off (``torch.backends.mkldnn.enabled = False``), so
  convolutions run as ATen's unfold + MKL's GEMM. Capping oneDNN at AVX2 (``ONEDNN_MAX_CPU_ISA``, set
  too) is not enough: its JIT kernels choose their blocking, and with it the order of their sums, from
  the processor's cache sizes, and it promises no equality across machines. Measured: on input tables
  identical to an AVX2-only machine's, an expert trained here with ATen, oneDNN and MKL capped at AVX2
  passed the sync check that machine's own expert failed, so capping did not reproduce it. The cost is measured in
  benchmarks/README.md ("Numerics: pinned against fast").
- NNPACK is switched off too (``torch.backends.nnpack``). With oneDNN off, torch sends 2-D convolutions
  with a batch of 16 or more to it (the expert's audio stream at the demo's batch, LSE's audio windows),
  and NNPACK splits the sum over input channels into blocks sized from the L1 cache
  (``input_channels_block_max`` from ``nnp_hwinfo.blocking.l1`` in its src/convolution-output.c): AMD
  EPYCs have 32 KiB of L1 data cache, recent Intel Xeons 48 KiB, so the same convolution sums in another
  order there. Without it those convolutions run as ATen's unfold + MKL's GEMM like the others.
- OpenBLAS (numpy's linear algebra: pose fits, PCA): ``OPENBLAS_CORETYPE=Haswell``. A value already set
  in the environment is kept: some machines set one because other kernels are broken on them. And one
  thread, ``OPENBLAS_NUM_THREADS=1``: OpenBLAS splits some sums (dot products) over its threads, and it
  never runs more threads than the process has cores, whatever the variable asks, so any count above one
  gives numbers that depend on the machine's core count (measured: the external audio check's peak
  correlation, 1.0000000000000193 with one thread, ...0013 with two). ksdiff's numpy work is small
  beside torch's; the workflow's jobs already ran it on one thread.
- numpy's own vector math (its ufuncs: exp, log, log10, power, arctan2, tanh, the inverse trigonometric
  functions, in float32 and float64) dispatches on the CPU's instruction sets. On a CPU with AVX-512 it runs
  Intel's SVML kernels, whose bits differ from the AVX2 kernels an AVX2-only CPU runs (measured: float64 exp,
  log and arctan2 differ on about a quarter of random inputs, float32 log10 on 42%, by 1 to 4 ulp;
  benchmarks/README.md, "numpy's vector math"; enough to change 25 of the demo's 60 synthetic videos), and some
  of those SVML kernels start from rcp14ps/rsqrt14ps. ``NPY_DISABLE_CPU_FEATURES``
  (:data:`NUMPY_AVX512`) switches numpy 1.26's AVX-512 targets off, so every CPU with AVX2 runs numpy's AVX2
  kernels, built from instructions whose results IEEE 754 fixes (its compiled code, disassembled, has
  rcp14ps/rsqrt14ps only in the SVML kernels). numpy sorts are unaffected in value but not in ties: its
  AVX-512 argsort orders equal keys otherwise, one more reason.
- OpenCV (warps, resizes and blurs in rendering, the synthetic corpus and the metrics' mouth crops) dispatches
  the same way; ``OPENCV_CPU_DISABLE=AVX512-SKX`` caps it at AVX2. Measured, the operations ksdiff calls gave
  the same bits with and without its AVX-512 code (float32 Gaussian blurs differ between AVX2 and SSE3, which
  pinned numerics do not cover), so this only keeps an OpenCV whose AVX-512 code grows from changing that.
  It is set only where the CPU has that target: elsewhere OpenCV would run AVX2 anyway and prints a warning
  ("Trying to disable unavailable CPU feature") into every job's log that loads it.
- Video encoding is held where the files are written, not here, since it holds in both modes: libx264 picks
  some algorithms by the instruction sets unless it runs cpu-independent, and FFmpeg's SIMD scaler rounds
  otherwise than its C one unless asked to be bit-exact (ksdiff.io.video.X264_PARAMS, hdtf_prepare.cut_clip).

Each library reads its variable once, when it loads, so :func:`pin` must run before numpy or torch is
imported: ``ksdiff``'s command line calls it first thing, and the test suite's conftest does. Once torch
is loaded, :func:`torch_settings` switches oneDNN off and torch's deterministic algorithms on (and cuDNN's
deterministic mode on a GPU, where bit equality across cards is not promised). The command line has it
applied the moment torch finishes loading, by whatever code loads it (:func:`torch_settings_on_import`: a
stage may import torch late, LSE scoring only once it reaches SyncNet), so that the stages that never use
torch (listing, probing, audio, landmarks, pose, QC, merging tables, the report: about 24 of the demo's jobs)
do not load it for nothing (about a second each). Training and the SyncNet expert apply it themselves for
callers outside the command line.
``numerics: fast`` in the config leaves every library its own choice in the stages that read it
(training, the expert, inference, scoring: ksdiff.stage_config): faster, and numbers that depend on the
processor. Preprocessing is not given the
key and so always runs pinned: its tables are what every method trains on, and pinning costs it little.
"""
from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import logging
import os
import sys

from threadpoolctl import threadpool_limits

from ksdiff import mkl_dispatch

log = logging.getLogger(__name__)

MODES = ("pinned", "fast")
DEFAULT_MODE = "pinned"

# Library -> (environment variable, the value every x86-64 CPU with AVX2 runs alike).
PINNED_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2,STRICT",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "OPENBLAS_NUM_THREADS": "1",  # not a code path: a count no core count can lower (see above)
}
# numpy 1.26's AVX-512 dispatch targets (numpy.core._multiarray_umath.__cpu_dispatch__); a name numpy does not
# dispatch on would make it warn at import, so the list follows the pinned numpy (describe() checks it held).
NUMPY_AVX512 = "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL"
PINNED_ENV["NPY_DISABLE_CPU_FEATURES"] = NUMPY_AVX512
PINNED_ENV["OPENCV_CPU_DISABLE"] = "AVX512-SKX"  # OpenCV's name for its one AVX-512 target
# The CPU flags (Linux's names) OpenCV's AVX512-SKX target needs; without all of them it never runs that code.
OPENCV_AVX512_FLAGS = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")
KEEP_IF_SET = ("OPENBLAS_CORETYPE",)  # a machine's own workaround for broken kernels wins
# cuBLAS needs a fixed workspace to be deterministic (torch's reproducibility notes).
GPU_ENV = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}

_state = {"mode": None, "late": [], "mkl": ""}


@functools.cache  # read once a process: pin() and every describe() (each checkpoint, each scoring) ask
def cpu_flags() -> frozenset[str] | None:
    """The CPU's instruction-set flags as Linux names them (/proc/cpuinfo), or None where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def _needless(var: str, flags: frozenset[str] | set[str] | None) -> bool:
    """A pin that would switch off code this CPU cannot run: OpenCV warns about it in every process."""
    return var == "OPENCV_CPU_DISABLE" and flags is not None and not set(OPENCV_AVX512_FLAGS) <= flags


def mode_of(cfg: dict | None) -> str:
    """The numerics mode a (possibly unvalidated) config asks for."""
    mode = (cfg or {}).get("numerics", DEFAULT_MODE)
    if mode not in MODES:
        raise ValueError(f"numerics: {mode!r} is not one of {', '.join(MODES)}")
    return mode


def pin(mode: str = DEFAULT_MODE) -> str:
    """Set the libraries' code paths for ``mode``; call before numpy and torch are imported.

    Returns the mode. In a process that already loaded one of them, the pin cannot take for that
    library: it is logged and :func:`describe` says so, rather than claiming numbers it cannot promise.
    """
    if mode not in MODES:
        raise ValueError(f"numerics: {mode!r} is not one of {', '.join(MODES)}")
    _state["mode"] = mode
    if mode == "fast":
        return mode
    changed = set()
    flags = cpu_flags()
    for var, value in {**PINNED_ENV, **GPU_ENV}.items():
        if (var in KEEP_IF_SET and os.environ.get(var)) or os.environ.get(var) == value or _needless(var, flags):
            continue
        if var in os.environ:
            log.info("numerics pinned: %s=%s replaces %s", var, value, os.environ[var])
        os.environ[var] = value
        changed.add(var)
    # A variable set only now is too late for a library already loaded (a second pin() is harmless).
    late = []
    if "numpy" in sys.modules and "OPENBLAS_CORETYPE" in changed:
        late.append("OpenBLAS (numpy was imported before the pin)")
    missed = numpy_avx512() if "numpy" in sys.modules and "NPY_DISABLE_CPU_FEATURES" in changed else []
    if missed:
        late.append(f"numpy's vector math (numpy was imported before the pin and runs {', '.join(missed)})")
    if "cv2" in sys.modules and "OPENCV_CPU_DISABLE" in changed:
        import cv2  # already loaded: no import cost

        # e.g. "SSE SSE2 SSE3 *SSE4.1 ... *AVX2 *AVX512-SKX": '*' dispatched, a trailing '?' switched off
        if "AVX512-SKX" in cv2.getCPUFeaturesLine().replace("*", "").split():
            late.append("OpenCV (cv2 was imported before the pin and runs AVX-512)")
    if "numpy" in sys.modules and "OPENBLAS_NUM_THREADS" in changed:
        threadpool_limits(1, user_api="blas")  # unlike its kernels, OpenBLAS's thread count can change once loaded
    if "torch" in sys.modules and changed - {"OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS"}:
        import torch  # already loaded: no import cost

        if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "DEFAULT"):
            late.append(f"ATen (torch was imported before the pin and runs {torch.backends.cpu.get_cpu_capability()})")
    _state["late"] = late + [x for x in _state["late"] if x.startswith("MKL")]  # torch_settings' own, if it ran
    if late:
        log.warning("numerics pinned too late for: %s; these numbers may differ on another processor", "; ".join(late))
    return mode


def _numpy_cpu():
    """numpy's (baseline, dispatch targets, features) lists; numpy is already loaded when this is called."""
    try:  # numpy 2 renamed numpy.core (which then warns) to numpy._core
        from numpy._core import _multiarray_umath as umath
    except ImportError:
        from numpy.core import _multiarray_umath as umath
    return umath.__cpu_baseline__, umath.__cpu_dispatch__, umath.__cpu_features__


def numpy_avx512() -> list[str]:
    """numpy's AVX-512 dispatch targets that are on in this process (empty on an AVX2-only CPU or pinned).
    numpy 2 names its AVX-512 group X86_V4, which NUMPY_AVX512 does not switch off: it shows here."""
    _, dispatch, features = _numpy_cpu()
    return [f for f in dispatch if (f.startswith("AVX512") or f == "X86_V4") and features.get(f)]


def numpy_simd() -> str:
    """The widest of numpy's dispatch targets that runs in this process (its vector math's code path)."""
    baseline, dispatch, features = _numpy_cpu()
    on = [f for f in dispatch if features.get(f)]
    return on[-1] if on else baseline[-1]


def torch_settings(mode: str | None = None) -> None:
    """oneDNN and NNPACK off and deterministic algorithms, once torch is imported; nothing in fast mode."""
    import torch

    if (mode or _state["mode"] or DEFAULT_MODE) != "pinned":
        return
    if not _state["mkl"]:  # once a process; before torch's first matrix product, when MKL picks its kernels
        _state["mkl"] = mkl_dispatch.use_avx2_branch() or "AVX2"
        if _state["mkl"] != "AVX2":
            _state["late"].append(f"MKL ({_state['mkl']})")
            log.warning("numerics pinned without MKL's AVX2 branch: %s; numbers may differ on another processor",
                        _state["mkl"])
    torch.backends.mkldnn.enabled = False  # see the module's docstring: oneDNN's blocking follows the caches
    torch.backends.nnpack.set_flags(False)  # and so does NNPACK's, which torch uses once oneDNN is off
    # warn_only: an op without a deterministic implementation (a few CUDA ones) warns instead of stopping a run.
    # The switch itself, not torch.use_deterministic_algorithms: that wrapper first imports torch._inductor (1.3 s
    # of CPU in every job: about 45 s of the demo's 35 jobs) to set the compiler's flag, and ksdiff compiles
    # nothing (tests/test_numerics.py checks that the switch is on and that no job loads the compiler).
    torch._C._set_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also fills every new tensor with NaN (to expose reads of uninitialised memory): a
    # cost on every allocation that changes no result of correct code.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


class _SettingsOnTorchImport(importlib.abc.MetaPathFinder):
    """Finds torch with the other finders, and has its loader apply :func:`torch_settings` right after
    torch's own module code has run: before any caller's ``import torch`` returns."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "torch":
            return None
        sys.meta_path.remove(self)  # once: torch's own spec comes from the finders after this one
        spec = importlib.util.find_spec("torch")
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            torch_settings()

        spec.loader.exec_module = exec_module  # this spec's loader instance only
        return spec


def torch_settings_on_import() -> None:
    """:func:`torch_settings` now if torch is loaded, else the moment it is, whoever imports it."""
    if "torch" in sys.modules:
        torch_settings()
    elif not any(isinstance(f, _SettingsOnTorchImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _SettingsOnTorchImport())


def describe() -> dict:
    """What actually ran: recorded beside trained weights and printed in every report."""
    mode = _state["mode"] or "unset"
    out = {"mode": mode}
    if "torch" in sys.modules:
        import torch

        out["aten_capability"] = torch.backends.cpu.get_cpu_capability()
        out["torch"] = str(torch.__version__)
        out["deterministic_algorithms"] = bool(torch.are_deterministic_algorithms_enabled())
        out["onednn"] = bool(torch.backends.mkldnn.enabled)
        out["nnpack"] = bool(torch._C._get_nnpack_enabled())
        out["mkl_branch"] = mkl_dispatch.branch()  # AVX2 pinned; AUTO: MKL's own choice for a non-Intel CPU
    late = list(_state["late"])
    if "numpy" in sys.modules:
        out["numpy_simd"] = numpy_simd()
        missed = numpy_avx512() if mode == "pinned" else []
        if missed and not any(x.startswith("numpy") for x in late):
            late.append(f"numpy's vector math (runs {', '.join(missed)})")  # a numpy with other targets
    flags = cpu_flags()
    for var, value in PINNED_ENV.items():
        out[var] = os.environ.get(var, "")
        if not out[var] and mode == "pinned" and _needless(var, flags):  # the CPU itself holds the cap
            out[var] = f"unset: the CPU lacks {value}"
    if late:
        out["not_pinned"] = late
    return out


def summary(info: dict | None) -> str:
    """One line for logs and reports from a describe() record (None: not recorded)."""
    if not info:
        return "numerics not recorded"
    if info.get("mode") == "pinned" and not info.get("not_pinned"):
        if "onednn" not in info:  # the process never loaded torch (a stage with no torch work): nothing to pin
            onednn = "torch not loaded"
        else:
            onednn = "oneDNN off" if info["onednn"] is False else "oneDNN ON (set after torch loaded?)"
            onednn += {False: ", NNPACK off", True: ", NNPACK ON (set after torch loaded?)"}.get(info.get("nnpack"), "")
        mkl = f"MKL branch {info['mkl_branch']}" if info.get("mkl_branch") else f"MKL CBWR {info.get('MKL_CBWR')}"
        numpy = f"numpy {info['numpy_simd']}, " if info.get("numpy_simd") else ""
        return (f"numerics pinned (ATen {info.get('aten_capability', '?')}, {onednn}, {mkl}, {numpy}"
                f"OpenBLAS {info.get('OPENBLAS_CORETYPE')}, {info.get('OPENBLAS_NUM_THREADS') or '?'} thread): the same on any x86-64 CPU with AVX2")
    if info.get("mode") == "pinned":
        return "numerics pinned only in part (" + "; ".join(info["not_pinned"]) + "): may differ on another processor"
    return (f"numerics {info.get('mode')} (ATen {info.get('aten_capability', '?')}): the processor's own kernels, "
            "numbers may differ on another processor")
