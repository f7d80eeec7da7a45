"""Do torch's numbers depend on who made the processor? MKL's branch, its matrix products and its vector math.

    .venv/bin/python benchmarks/bench_mkl_makers.py

MKL (inside torch's CPU wheel) chooses its kernels by the processor's maker as well as its instructions: its
reproducible ``MKL_CBWR=AVX2`` branch is for Intel processors, and elsewhere MKL runs its AUTO branch
(ksdiff.mkl_dispatch). One machine can run both: MKL's maker test is one cached CPUID answer, which
``mkl_dispatch.use_avx2_branch(intel=...)`` sets, so each variant below runs in a fresh interpreter with MKL
seeing an Intel processor or another maker's. Measured per variant: the branch MKL reports, the bits of
3,993 matrix products (sizes 1..300 in every combination, three transposition patterns) and of torch's
float32 vector functions on 100,000 values, and single-thread GFLOP/s of a 1024 x 1024 product. Compared:
``MKL_CBWR=AVX2,STRICT`` (what ksdiff pins) as on each maker, and MKL's COMPATIBLE branch (SSE2 without
rcpps/rsqrtps, the branch MKL's guide promises equal on every maker) as on each.
Also: which MKL vector-math kernels of the AVX2 branch contain instructions whose results differ between
makers (rcpps, rsqrtps and their AVX-512 forms, x87 transcendentals), by disassembling them (objdump).
Writes benchmarks/out/mkl_makers.json and the "MKL and the processor's maker" section of benchmarks/README.md.
"""
from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from readme import APPROX, cpu_model, write_section  # noqa: E402  benchmarks/readme.py, beside this script

# One variant, in a fresh interpreter: argv = the maker MKL sees (intel|other), MKL_CBWR value.
CHILD = r"""
import hashlib, itertools, json, os, sys, time
maker, cbwr = sys.argv[1], sys.argv[2]
from ksdiff import mkl_dispatch, numerics
numerics.PINNED_ENV["MKL_CBWR"] = cbwr  # the variant's branch; the rest of the pin as ksdiff runs it
numerics.pin("pinned")
import torch
mkl_dispatch.use_avx2_branch(intel=maker == "intel")
torch.set_num_threads(1)
out = {"branch": mkl_dispatch.branch(), "gemm": {}, "vector": {}}
g = torch.Generator().manual_seed(0)
sizes = [1, 2, 3, 4, 8, 16, 32, 64, 90, 128, 300]
for m, n, k in itertools.product(sizes, sizes, sizes):
    for ta, tb in ((0, 0), (1, 0), (0, 1)):
        a = torch.randn(k, m, generator=g).t() if ta else torch.randn(m, k, generator=g)
        b = torch.randn(n, k, generator=g).t() if tb else torch.randn(k, n, generator=g)
        out["gemm"][f"{m},{n},{k},{ta}{tb}"] = hashlib.md5((a @ b).numpy().tobytes()).hexdigest()
x = torch.randn(100000, generator=g) * 3
pos = x.abs() + 1e-3
for name, arg in [("exp", x), ("log", pos), ("sqrt", pos), ("tanh", x), ("sin", x), ("cos", x), ("erf", x),
                  ("erfinv", torch.tanh(x) * 0.9), ("atan", x), ("tan", x), ("asin", torch.tanh(x)),
                  ("acos", torch.tanh(x)), ("log10", pos), ("log2", pos), ("rsqrt", pos), ("sigmoid", x)]:
    out["vector"][name] = hashlib.md5(getattr(torch, name)(arg).numpy().tobytes()).hexdigest()
a, b = torch.randn(1024, 1024, generator=g), torch.randn(1024, 1024, generator=g)
a @ b
t = time.process_time()
for _ in range(10):
    a @ b
out["gflops"] = 2 * 1024**3 * 10 / (time.process_time() - t) / 1e9
print(json.dumps(out))
"""

VARIANTS = {  # name -> (maker MKL sees, MKL_CBWR)
    "AVX2,STRICT, as on Intel": ("intel", "AVX2,STRICT"),
    "AVX2,STRICT, as on AMD/other": ("other", "AVX2,STRICT"),
    "COMPATIBLE,STRICT, as on Intel": ("intel", "COMPATIBLE,STRICT"),
    "COMPATIBLE,STRICT, as on AMD/other": ("other", "COMPATIBLE,STRICT"),
}
PAIRS = (("AVX2,STRICT, as on Intel", "AVX2,STRICT, as on AMD/other"),
         ("COMPATIBLE,STRICT, as on Intel", "COMPATIBLE,STRICT, as on AMD/other"))


def measure(maker: str, cbwr: str) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, maker, cbwr], capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(f"{maker} {cbwr}: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def approximate_kernels() -> dict[str, list[str]] | None:
    """MKL vector-math kernels of the AVX2 branch (``_L9HA``: ATen asks for high accuracy) -> the instructions
    in them whose results differ between makers; None without objdump."""
    import torch

    if shutil.which("objdump") is None or shutil.which("readelf") is None:
        return None
    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    syms = subprocess.run(["readelf", "-Ws", str(lib)], capture_output=True, text=True).stdout
    found = {}
    for line in syms.splitlines():
        f = line.split()
        if len(f) == 8 and f[3] == "FUNC" and re.fullmatch(r"mkl_vml_kernel_[sd][A-Za-z0-9]+_L9HAynn", f[7]):
            found[f[7]] = (int(f[1], 16), int(f[2], 0))
    out = {}
    for name, (addr, size) in sorted(found.items()):
        asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={addr}",
                              f"--stop-address={addr + size}", str(lib)], capture_output=True, text=True).stdout
        hits = sorted({m.group(1) for m in APPROX.finditer(asm)})
        out[name.removeprefix("mkl_vml_kernel_").removesuffix("_L9HAynn")] = hits
    return out


def main() -> int:
    runs = {name: measure(*v) for name, v in VARIANTS.items()}
    pairs = []
    for a, b in PAIRS:
        ga, gb = runs[a]["gemm"], runs[b]["gemm"]
        va, vb = runs[a]["vector"], runs[b]["vector"]
        pairs.append({"variants": [a, b], "branches": [runs[a]["branch"], runs[b]["branch"]],
                      "gemm_differ": sum(ga[k] != gb[k] for k in ga), "gemm_total": len(ga),
                      "vector_differ": sorted(k for k in va if va[k] != vb[k])})
    kernels = approximate_kernels()
    res = {"date": time.strftime("%Y-%m-%d"), "cpu": platform.processor() or platform.machine(),
           "cpu_model": cpu_model(), "pairs": pairs, "gflops": {n: r["gflops"] for n, r in runs.items()},
           "branch": {n: r["branch"] for n, r in runs.items()}, "approximate_avx2_kernels": kernels}
    (ROOT / "benchmarks" / "out" / "mkl_makers.json").write_text(json.dumps(res, indent=1))
    rows = "\n".join(
        f"| {p['variants'][0].split(',')[0]} | {p['branches'][0]} / {p['branches'][1]} | "
        f"{p['gemm_differ']} of {p['gemm_total']} | {', '.join(p['vector_differ']) or 'none'} | "
        f"{res['gflops'][p['variants'][0]]:.0f} / {res['gflops'][p['variants'][1]]:.0f} |" for p in pairs)
    approx = ("objdump not found: not checked" if kernels is None else
              ", ".join(f"{k} ({'/'.join(v)})" for k, v in kernels.items() if v) or "none")
    clean = "" if kernels is None else ", ".join(k for k, v in kernels.items() if not v)
    body = f"""`benchmarks/bench_mkl_makers.py`: torch's MKL as on an Intel processor and as on another maker's, on one
machine ({res['cpu_model']}, {res['date']}; ksdiff.mkl_dispatch sets MKL's cached maker test, each variant in a fresh
interpreter, one thread). Bits compared between the two makers for 3,993 matrix products (sizes 1..300, three
transposition patterns) and 16 float32 vector functions on 100,000 values; GFLOP/s of one 1024 x 1024 product.

| MKL_CBWR | branch MKL reports (Intel / other) | products that differ | vector functions that differ | GFLOP/s (Intel / other) |
|---|---|---:|---|---:|
{rows}

ksdiff's pinned numerics run the first row's Intel column on every processor (ksdiff.mkl_dispatch); before
7 Dec 2026 they ran whichever column the machine's maker gave. MKL's AVX2 vector-math kernels (that branch) with instructions whose results differ between
makers (rcpps, rsqrtps, their AVX-512 forms, x87 transcendentals): {approx}. Without any: {clean}.
"""
    write_section("MKL and the processor's maker", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
