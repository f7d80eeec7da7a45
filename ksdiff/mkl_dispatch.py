"""MKL's reproducible AVX2 branch on every x86-64 processor, whoever made it.

torch's CPU wheel carries MKL inside libtorch_cpu.so; it does torch's matrix products, its FFTs (torch.stft)
and its vector math (torch.exp, log, sqrt, ... on float tensors). ``MKL_CBWR=AVX2`` asks MKL for its Conditional
Numerical Reproducibility branch for AVX2, which MKL's guide promises gives the same results on every
*Intel* processor with AVX2; on other makers' processors "the AUTO branch is used instead". MKL says so
itself: asked for its branch (``mkl_serv_cbwr_get``), it answers AUTO on an AMD EPYC, and AVX2 once it sees
an Intel processor, and the two branches run other kernels (``mkl_blas_cnr_def_sgemm_kernel_0_zen`` against
``mkl_blas_avx2_sgemm_kernel_0_cnr``) whose sums round differently. Measured on an AMD EPYC with MKL made to
see an Intel processor (benchmarks/README.md, "Numerics across processors"): 2,139 of 3,993 small matrix
products differ in their bits, and the pinned SyncNet expert and KSDiff train to other weights. Numbers
from an Intel machine would then not equal numbers from an AMD one.

MKL tells the two apart by one CPUID test, ``mkl_serv_intel_cpu_true``, which caches its answer in a static
int (-1 until first asked). :func:`use_avx2_branch` sets that cache to "Intel" before MKL's first call, so
that every processor with AVX2 runs the AVX2 branch, the one Intel documents as reproducible. Setting it is
safe because the branch is plain AVX2 and FMA code that runs on any processor with those instructions
(what ``MKL_ENABLE_INSTRUCTIONS=AVX2`` already caps it to); it is equal across makers because the kernels
of that branch that ksdiff runs use only instructions whose results IEEE 754 fixes (add, multiply, FMA,
divide, square root, compares, table lookups): checked by disassembling them. MKL's vector sqrt, tan, atan,
asin, acos, log10 and log2 are the exception (they start from ``rsqrtps``/``rcpps``, whose approximations
differ between makers), so pinned code never calls them on CPU tensors (fused Adam, square roots from numpy
or ATen's rsqrt; tests/test_numerics.py audits a training, sampling and scoring run for them).

Only libtorch_cpu.so's own MKL is touched (numpy uses OpenBLAS), only in pinned numerics, and only when its
code is the expected one; anything else is reported (:func:`branch` says which branch runs) and the numbers
are marked as not pinned rather than claimed equal.
"""
from __future__ import annotations

import ctypes
import sys
from pathlib import Path

# mkl_service.h: MKL_CBWR_BRANCH asks for the branch; the branch codes.
MKL_CBWR_BRANCH = 1
BRANCHES = {1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2", 9: "AVX", 10: "AVX2",
            11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1", 14: "AVX512_E1"}
# The start of mkl_serv_intel_cpu_true: `mov eax, [rip + disp32]` (the cache), then `test eax, eax; js` (not
# yet asked: ask CPUID). Anything else is another MKL, whose cache this module does not know how to find.
_LOAD_CACHE, _TEST_SIGN = b"\x8b\x05", b"\x85\xc0\x78"


def _libtorch_cpu() -> ctypes.CDLL | None:
    """torch's loaded libtorch_cpu.so (dlopen of a loaded library returns it), or None without torch or MKL."""
    torch = sys.modules.get("torch")
    if torch is None or not getattr(torch, "__file__", None):
        return None
    path = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    if not path.exists():
        return None
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:
        return None
    if not hasattr(lib, "mkl_serv_cbwr_get") or not hasattr(lib, "mkl_serv_intel_cpu_true"):
        return None
    return lib


def branch() -> str | None:
    """The CNR branch torch's MKL runs (AVX2, AUTO, ...), or None when torch is not loaded or has no MKL."""
    lib = _libtorch_cpu()
    if lib is None:
        return None
    code = lib.mkl_serv_cbwr_get(MKL_CBWR_BRANCH)
    return BRANCHES.get(code, f"code {code}")


def _intel_cache(lib: ctypes.CDLL) -> ctypes.c_int | None:
    """mkl_serv_intel_cpu_true's cached answer, found from the function's first instruction."""
    start = ctypes.cast(lib.mkl_serv_intel_cpu_true, ctypes.c_void_p).value
    code = ctypes.string_at(start, 9)
    if code[:2] != _LOAD_CACHE or code[6:9] != _TEST_SIGN:
        return None
    return ctypes.c_int.from_address(start + 6 + int.from_bytes(code[2:6], "little", signed=True))


def use_avx2_branch(intel: bool = True) -> str:
    """Have torch's MKL run its reproducible AVX2 branch (``MKL_CBWR`` must say AVX2) on this processor.

    Returns '' when MKL runs that branch, else why not (no MKL in this torch, an MKL whose processor test
    is not the expected code, a branch other than AVX2). Call it before torch's first matrix product:
    MKL picks its kernels at its first call. ``intel=False`` makes MKL see a processor of another maker
    instead, which is how tests show that the choice changes numbers on any machine.
    """
    lib = _libtorch_cpu()
    if lib is None:
        return "torch has no MKL of its own here"
    cache = _intel_cache(lib)
    if cache is None:
        return "torch's MKL is not the build whose processor test ksdiff knows (mkl_serv_intel_cpu_true)"
    cache.value = 1 if intel else 0
    got = branch()
    return "" if got == "AVX2" else f"MKL runs its {got} branch, not AVX2"
