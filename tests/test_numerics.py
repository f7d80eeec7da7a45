"""Pinned numerics: a trained SyncNet expert and a trained model come out bit-identical whatever CPU code
paths the machine would pick by itself, and equal to the weights recorded on the reference machine."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ksdiff import numerics
from tests.conftest import REPO

PROBE = REPO / "tests" / "numerics_probe.py"

# sha256 of the probe's weights (tests/numerics_probe.py, numerics pinned, the pinned stack in envs/),
# recorded on an AMD EPYC with AVX-512 (4th generation) on 7 Dec 2026, with torch's MKL running its AVX2 branch
# (ksdiff.mkl_dispatch) and fused Adam. The pinned weights equal these on every setting below, so another
# processor computing other weights shows here, by name.
RECORDED = {
    "expert": "714183d93466e2bf80f36c262879e2d4defe305f958e345a94d782f3af85d7f5",
    "model": "d06332cc4c8b373a98b696335beb3a69b1d9f94af42b3d79f722fa50ebb3ca01",
}

# What other processors (or a user's environment) would make the libraries pick, imitated on this one:
# the machine's own choice, an AVX2-only CPU's, and no vector extensions at all.
SETTINGS = {
    "native": {},
    "avx2-only": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                  "NPY_DISABLE_CPU_FEATURES": numerics.NUMPY_AVX512},
    "no-simd": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                "NPY_DISABLE_CPU_FEATURES": "SSSE3 SSE41 POPCNT SSE42 AVX F16C FMA3 AVX2 " + numerics.NUMPY_AVX512},
}

# sha256 of numpy's vector math on fixed inputs (NUMPY_MATH below) under pinned numerics: numpy's AVX2 kernels,
# recorded on the same AMD EPYC (AVX-512) on 7 Dec 2026. An AVX2-only CPU runs these kernels by itself.
RECORDED_NUMPY = "4d1882a64c2f70593fde42579775e845b782ea33f9c941590658c70ac254821e"
NUMPY_MATH = """
import hashlib, json, sys
from ksdiff import numerics
numerics.pin(sys.argv[1])
import numpy as np
rng = np.random.default_rng(0)
h = hashlib.sha256()
for dt in (np.float32, np.float64):  # the functions ksdiff's preprocessing, metrics and reports call
    x = rng.uniform(-3, 3, 1 << 16).astype(dt)
    p = np.abs(x) + dt(0.01)
    for y in (np.exp(x), np.log(p), np.log10(p), np.power(p, x), np.arctan2(x, p), np.tanh(x), np.arcsin(x / 3),
              np.expm1(x), np.sin(x), np.cos(x)):
        h.update(y.tobytes())
import cv2
print(json.dumps({"sha256": h.hexdigest(), "numpy_simd": numerics.numpy_simd(), "avx512": numerics.numpy_avx512(),
                  "opencv": cv2.getCPUFeaturesLine().split(), "numerics": numerics.describe()}))
"""


def run_probe(mode: str, setting: dict, probe=PROBE, option: str = "") -> dict:
    """A probe script's JSON line, run in a fresh interpreter under ``mode`` with ``setting`` in its environment
    (also tests/test_syncnet_lowered.py's, with its own probe); ``option``: numerics_probe.py's second argument."""
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED_ENV or k in numerics.KEEP_IF_SET}
    env.update(setting)
    r = subprocess.run([sys.executable, str(probe), mode, *([option] if option else [])], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def pinned():
    return {name: run_probe("pinned", s) for name, s in SETTINGS.items()}


def test_the_suite_itself_runs_pinned():
    import torch

    info = numerics.describe()
    assert info["mode"] == os.environ.get("KSDIFF_NUMERICS", "pinned")
    if info["mode"] == "pinned":
        assert torch.backends.cpu.get_cpu_capability() in ("AVX2", "DEFAULT") and "not_pinned" not in info, info
        assert not torch.backends.mkldnn.enabled and torch.are_deterministic_algorithms_enabled()
        assert info["nnpack"] is False  # its blocking follows the L1 cache (ksdiff/numerics.py)


def test_pinned_weights_do_not_depend_on_the_cpu_settings(pinned):
    for name, got in pinned.items():
        assert got["numerics"]["mode"] == "pinned" and got["numerics"]["aten_capability"] == "AVX2", (name, got)
        assert got["numerics"]["mkl_branch"] == "AVX2" and "not_pinned" not in got["numerics"], (name, got)
        assert (got["expert"], got["model"]) == (pinned["native"]["expert"], pinned["native"]["model"]), name


def test_the_settings_do_change_unpinned_weights():
    """Not a vacuous check: without the pin, the same settings give other expert weights."""
    fast = {name: run_probe("fast", SETTINGS[name])["expert"] for name in ("avx2-only", "no-simd")}
    assert fast["avx2-only"] != fast["no-simd"]


def test_mkl_seeing_the_other_maker_trains_other_weights(pinned):
    """What ksdiff.mkl_dispatch is for: MKL's CNR branch follows the processor's maker (AUTO on AMD, AVX2 on
    Intel) unless pinned, and the branches train other weights. Made to see the other maker, the pin is
    reported as partial, and the weights differ from the pinned ones: an Intel and an AMD machine would
    have disagreed without it."""
    other = run_probe("pinned", {}, option="other-maker")
    assert other["numerics"]["mkl_branch"] == "AUTO", other["numerics"]
    assert any(x.startswith("MKL") for x in other["numerics"]["not_pinned"]), other["numerics"]
    assert other["expert"] != pinned["native"]["expert"] and other["model"] != pinned["native"]["model"]
    assert "pinned only in part" in numerics.summary(other["numerics"])


def test_a_process_whose_mkl_ran_before_the_pin_says_so():
    """MKL picks its branch at its first call: a process that multiplied matrices before torch_settings ran
    keeps the branch it had (AUTO on a non-Intel processor), and its numerics record must say so rather than
    claim the pin. On an Intel processor MKL chose AVX2 by itself, and the record says pinned."""
    code = ("import json\nfrom ksdiff import numerics\nnumerics.pin('pinned')\nimport torch\n"
            "a = torch.ones(64, 64)\na @ a\nnumerics.torch_settings()\nprint(json.dumps(numerics.describe()))")
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED_ENV or k in numerics.KEEP_IF_SET}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    partial = any(x.startswith("MKL") for x in info.get("not_pinned", []))
    assert info["mkl_branch"] in ("AVX2", "AUTO") and partial == (info["mkl_branch"] != "AVX2"), info
    assert ("pinned only in part" in numerics.summary(info)) == partial


def test_pinned_work_calls_no_vector_math_that_differs_by_processor_maker():
    """MKL's vector sqrt, tan, atan, asin, acos, log10 and log2 (and float64 log) start from rcpps/rsqrtps, whose
    approximations differ between Intel and AMD processors even on MKL's AVX2 branch (its kernels,
    disassembled: ksdiff.mkl_dispatch). Training both models, sampling and scoring LSE, pinned, call none of them
    on CPU tensors (fused Adam, the schedule's square roots from numpy, rsqrt in the norms); the audit catches
    a torch.sqrt made on purpose, so an empty list is not an audit that saw nothing."""
    got = run_probe("pinned", {}, option="audit")
    assert got["control_caught"] is True
    assert got["vendor_dependent_calls"] == [], got["vendor_dependent_calls"]
    assert (got["expert"], got["model"]) == (RECORDED["expert"], RECORDED["model"])  # the audit changes nothing


def test_pinned_weights_equal_the_recorded_ones(pinned):
    got = {k: pinned["native"][k] for k in RECORDED}
    assert got == RECORDED, (
        "this processor trains other weights than the reference machine under pinned numerics: numbers from "
        f"it are not comparable bit for bit (ksdiff/numerics.py; what ran: {pinned['native']['numerics']})")


def test_every_ksdiff_command_computes_pinned_even_if_it_loads_torch_late(tmp_path):
    """A stage that imports torch only deep inside (LSE scoring reaches SyncNet late) must still find
    oneDNN off and deterministic algorithms on: the demo's scoring once ran with oneDNN on for that reason."""
    code = ("import sys; from ksdiff import cli; import json\n"
            f"rc = cli.main(['list', '--root', {str(tmp_path)!r}, '--dataset', 'x', '--out', {str(tmp_path / 'l.parquet')!r}])\n"
            "loaded_by_list = 'torch' in sys.modules\n"
            "import torch.nn.functional\n"  # a submodule first: torch itself loads through the same hook
            "print(json.dumps([rc, loaded_by_list, torch.backends.mkldnn.enabled, torch._C._get_nnpack_enabled(),"
            " torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),"
            " torch.backends.cpu.get_cpu_capability(), 'torch._inductor' in sys.modules]))")
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED_ENV or k in numerics.KEEP_IF_SET}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    # A stage that never uses torch does not load it (about a second a job); once loaded: oneDNN and NNPACK off,
    # warn-only deterministic mode, and the compiler never loaded (torch_settings skips the wrapper that loads
    # torch._inductor: 1.3 s of CPU in every job)
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [0, False, False, False, True, True, "AVX2", False]


def numpy_math(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED_ENV or k in numerics.KEEP_IF_SET}
    r = subprocess.run([sys.executable, "-c", NUMPY_MATH, mode], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return {**json.loads(r.stdout.strip().splitlines()[-1]), "stderr": r.stderr}


def test_pinned_numpy_vector_math_equals_the_recorded_bits():
    """numpy's ufuncs run Intel's SVML kernels on a CPU with AVX-512 and other kernels, with other bits, on an
    AVX2-only one (float64 exp, log, arctan2; float32 log10, ...). Pinned, numpy runs its AVX2 kernels on both,
    and their bits equal the ones recorded; unpinned on an AVX-512 CPU, they differ (the pin is what holds)."""
    pinned = numpy_math("pinned")
    assert (pinned["numpy_simd"], pinned["avx512"]) == ("AVX2", []), pinned
    assert not {"AVX512-SKX", "*AVX512-SKX"} & set(pinned["opencv"]), pinned["opencv"]  # OpenCV capped too
    # and without the warning OpenCV prints when told to switch off code an AVX2-only CPU does not have
    assert "OPENCV" not in pinned["stderr"], pinned["stderr"][-2000:]
    assert "not_pinned" not in pinned["numerics"]
    assert pinned["sha256"] == RECORDED_NUMPY, (
        "numpy's vector math gives other bits here than on the reference machine under pinned numerics "
        f"(ksdiff/numerics.py; what ran: {pinned['numerics']})")
    own = numpy_math("fast")  # numpy's own choice on this CPU
    if own["avx512"]:
        assert own["sha256"] != pinned["sha256"], "numpy's AVX-512 kernels gave the AVX2 kernels' bits"
    else:  # an AVX2-only CPU runs the AVX2 kernels by itself
        assert own["sha256"] == pinned["sha256"]


def test_opencv_is_capped_only_on_a_cpu_that_has_its_avx512_target():
    """OPENCV_CPU_DISABLE=AVX512-SKX on a CPU without that target switches nothing off and makes OpenCV warn in
    every process: the pin sets it where the CPU has every flag the target needs (or where the flags are unknown)."""
    skx = set(numerics.OPENCV_AVX512_FLAGS) | {"avx2", "fma"}
    assert not numerics._needless("OPENCV_CPU_DISABLE", skx)
    assert not numerics._needless("OPENCV_CPU_DISABLE", None)
    assert numerics._needless("OPENCV_CPU_DISABLE", {"avx2", "fma"})
    assert numerics._needless("OPENCV_CPU_DISABLE", skx - {"avx512bw"})  # a Xeon Phi's AVX-512: no SKX either
    assert not numerics._needless("NPY_DISABLE_CPU_FEATURES", {"avx2", "fma"})  # numpy does not warn
    flags = numerics.cpu_flags()
    if flags is not None:  # Linux: on the test's own machine, the flags tell what OpenCV itself detects
        assert numerics._needless("OPENCV_CPU_DISABLE", flags) == ("*AVX512-SKX" not in opencv_features()), (
            "cpu_flags() disagrees with OpenCV's detection of its AVX512-SKX target")


def opencv_features() -> list[str]:
    """OpenCV's dispatch line with nothing switched off ('*AVX512-SKX': dispatched; '*AVX512-SKX?': not available)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_CPU_DISABLE"}
    r = subprocess.run([sys.executable, "-c", "import cv2; print(cv2.getCPUFeaturesLine())"], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split()


@pytest.mark.parametrize("numpy_first", [False, True])
def test_pinned_openblas_runs_one_thread_whatever_the_core_count(numpy_first):
    """OpenBLAS splits some sums over its threads and runs no more threads than the process has cores, so pinned
    numerics run it on one: the same sums on a 1-core machine as on a 64-core one, also in a process that loaded
    numpy before the pin (threadpoolctl lowers the count of a loaded OpenBLAS)."""
    code = ("import json, sys\n" + ("import numpy\n" if numpy_first else "") +
            "from ksdiff import numerics\nnumerics.pin('pinned')\nimport numpy\n"
            "from threadpoolctl import threadpool_info\n"
            "print(json.dumps([i['num_threads'] for i in threadpool_info() if i['internal_api'] == 'openblas']))")
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED_ENV}
    env["OPENBLAS_NUM_THREADS"] = "2"  # what Snakemake exports for a two-thread rule
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [1]


def test_a_process_that_loaded_numpy_or_opencv_before_the_pin_says_so():
    """numpy and OpenCV read their variables once, at import: a process (a notebook) that imported them before the
    pin keeps their AVX-512 kernels on a CPU that has them, and its numerics record says so instead of claiming
    the pin; on an AVX2-only CPU nothing was missed and none is claimed missing."""
    code = ("import json, numpy, cv2\nfrom ksdiff import numerics\nnumerics.pin('pinned')\n"
            "cv_avx512 = 'AVX512-SKX' in cv2.getCPUFeaturesLine().replace('*', '').split()\n"
            "print(json.dumps([numerics.numpy_avx512(), numerics.describe().get('not_pinned', []), cv_avx512]))")
    env = {k: v for k, v in os.environ.items() if k not in numerics.PINNED_ENV}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    avx512, not_pinned, cv_avx512 = json.loads(r.stdout.strip().splitlines()[-1])
    assert any(x.startswith("numpy's vector math") for x in not_pinned) == bool(avx512), not_pinned
    assert any(x.startswith("OpenCV") for x in not_pinned) == cv_avx512, not_pinned
