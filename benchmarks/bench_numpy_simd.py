"""Do numpy's own numbers depend on the processor? Its vector math under its AVX-512, AVX2 and baseline kernels.

    .venv/bin/python benchmarks/bench_numpy_simd.py

numpy compiles each ufunc loop for several instruction sets and picks, at import, the widest the CPU has
(``numpy.core._multiarray_umath.__cpu_dispatch__``); on a CPU with AVX-512 many of them are Intel's SVML
kernels. ``NPY_DISABLE_CPU_FEATURES`` switches targets off, so one machine can run what an AVX2-only CPU
runs. Each variant runs in a fresh interpreter: numpy's own choice here, the AVX2 kernels (what ksdiff's
pinned numerics run: ksdiff.numerics.NUMPY_AVX512) and the baseline (SSE3: a CPU without AVX2, which
pinned numerics do not cover). Per function and dtype, on 1,048,576 values: how many results differ from
the AVX2 kernels' and by how many units in the last place (ulp), and the CPU time per million values.
Also: which of numpy's compiled kernels contain instructions whose results are not fixed by IEEE 754
(rcpps, rsqrtps and their AVX-512 forms, x87 transcendentals), by disassembling numpy's ufunc library.
Writes benchmarks/out/numpy_simd.json and the "numpy's vector math" section of benchmarks/README.md.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from readme import APPROX, cpu_model, write_section  # noqa: E402  benchmarks/readme.py, beside this script

from ksdiff.numerics import NUMPY_AVX512  # noqa: E402  importing ksdiff.numerics loads no numpy or torch

# One variant, in a fresh interpreter: argv = output .npz; NPY_DISABLE_CPU_FEATURES in its environment.
CHILD = r"""
import json, sys, time
import numpy as np
from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
rng = np.random.default_rng(0)
n = 1 << 20
res, secs = {}, {}
for dt in (np.float32, np.float64):
    x = (rng.standard_normal(n) * 4).astype(dt)
    u = rng.uniform(-1, 1, n).astype(dt)
    p = np.abs(x) + dt(1e-3)
    wide = rng.uniform(-80, 80, n).astype(dt)
    calls = {"exp": (np.exp, (wide,)), "log": (np.log, (p,)), "log10": (np.log10, (p,)), "log2": (np.log2, (p,)),
             "log1p": (np.log1p, (p,)), "expm1": (np.expm1, (x,)), "power": (np.power, (p, x / 4)),
             "sin": (np.sin, (x,)), "cos": (np.cos, (x,)), "tan": (np.tan, (x,)), "arcsin": (np.arcsin, (u,)),
             "arccos": (np.arccos, (u,)), "arctan": (np.arctan, (x,)), "arctan2": (np.arctan2, (x, u)),
             "sinh": (np.sinh, (x,)), "cosh": (np.cosh, (x,)), "tanh": (np.tanh, (x,)),
             "cbrt": (np.cbrt, (x,)), "sqrt": (np.sqrt, (p,)), "hypot": (np.hypot, (x, u)),
             "sum": (lambda a: np.array([a.sum(), a.reshape(1024, -1).sum(1).sum()]), (x,))}
    for name, (f, args) in calls.items():
        key = f"{name} {np.dtype(dt).name}"
        res[key] = f(*args)
        t = time.process_time()
        for _ in range(5):
            f(*args)
        secs[key] = (time.process_time() - t) / 5 * (1 << 20) / n
np.savez(sys.argv[1], **res)
on = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
print(json.dumps({"widest": on[-1] if on else "baseline", "secs_per_million": secs}))
"""

VARIANTS = {  # name -> NPY_DISABLE_CPU_FEATURES ("" = numpy's own choice)
    "numpy's own choice": "",
    "AVX2 (pinned)": NUMPY_AVX512,
    "baseline (no AVX2)": "SSSE3 SSE41 POPCNT SSE42 AVX F16C FMA3 AVX2 " + NUMPY_AVX512,
}
REFERENCE = "AVX2 (pinned)"


def measure(disable: str, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    if disable:
        env["NPY_DISABLE_CPU_FEATURES"] = disable
    r = subprocess.run([sys.executable, "-c", CHILD, str(out)], capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(f"NPY_DISABLE_CPU_FEATURES={disable!r}: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place between two float arrays of one dtype (sign-magnitude ordered)."""
    it = np.int32 if a.dtype == np.float32 else np.int64
    ia, ib = a.view(it).astype(np.int64), b.view(it).astype(np.int64)
    top = np.int64(np.iinfo(it).min)
    ia = np.where(ia < 0, top - ia, ia)
    ib = np.where(ib < 0, top - ib, ib)
    return np.abs(ia - ib)


def approximate_kernels() -> dict[str, list[str]] | None:
    """numpy's compiled functions -> the instructions in them whose results IEEE 754 does not fix; None
    without objdump."""
    if shutil.which("objdump") is None:
        return None
    lib = next(Path(np.__file__).parent.glob("core/_multiarray_umath*.so"))
    asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(lib)], capture_output=True, text=True).stdout
    found: dict[str, set] = {}
    fn = "?"
    for line in asm.splitlines():
        if line.endswith(">:"):
            fn = line.split("<", 1)[1][:-2]
        else:
            m = APPROX.search(line)
            if m:
                found.setdefault(fn, set()).add(m.group(1))
    return {k: sorted(v) for k, v in sorted(found.items())}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        runs, arrays = {}, {}
        for name, disable in VARIANTS.items():
            path = Path(tmp) / f"{len(runs)}.npz"
            runs[name] = measure(disable, path)
            with np.load(path) as z:
                arrays[name] = {k: z[k] for k in z.files}
    ref = arrays[REFERENCE]
    rows = []
    for key in ref:
        row = {"function": key}
        for name in VARIANTS:
            if name == REFERENCE:
                continue
            a = arrays[name][key]
            same_nan = np.isnan(a) & np.isnan(ref[key])
            d = ulps(a, ref[key])[~same_nan]
            row[name] = {"differ": int((d > 0).sum()), "max_ulp": int(d.max(initial=0))}
        row["total"] = int(ref[key].size)
        row["ms_per_million"] = {name: round(runs[name]["secs_per_million"][key] * 1e3, 2) for name in VARIANTS}
        rows.append(row)
    kernels = approximate_kernels()
    res = {"date": time.strftime("%Y-%m-%d"), "cpu_model": cpu_model(), "numpy": np.__version__,
           "widest": {name: r["widest"] for name, r in runs.items()}, "reference": REFERENCE, "rows": rows,
           "approximate_instructions": kernels}
    (ROOT / "benchmarks" / "out" / "numpy_simd.json").write_text(json.dumps(res, indent=1))
    own, base = "numpy's own choice", "baseline (no AVX2)"

    def cell(r, name):
        c = r[name]
        return f"{c['differ']:,} ({c['max_ulp']})" if c["differ"] else "0"

    table = "\n".join(
        f"| {r['function']} | {cell(r, own)} | {cell(r, base)} | {r['ms_per_million'][own]:.1f} | "
        f"{r['ms_per_million'][REFERENCE]:.1f} |" for r in rows)
    approx = ("objdump not found: not checked" if kernels is None else
              ", ".join(f"{k} ({'/'.join(v)})" for k, v in kernels.items()) or "none")
    differ = [r["function"] for r in rows if r[own]["differ"]]
    body = f"""`benchmarks/bench_numpy_simd.py`: numpy {res['numpy']}'s ufuncs on {res['cpu_model']} ({res['date']}), each
variant in a fresh interpreter with ``NPY_DISABLE_CPU_FEATURES`` choosing its kernels: numpy's own choice here
(widest target {res['widest'][own]}), the AVX2 kernels (what an AVX2-only CPU runs, and what ksdiff's pinned numerics
run everywhere: ksdiff/numerics.py) and the baseline (SSE3, a CPU without AVX2). Results compared with the AVX2
kernels' on 1,048,576 values per function: how many differ (largest difference in ulp); CPU time per million
values, one thread.

| function | numpy's own choice here: differ (max ulp) | baseline: differ (max ulp) | ms / million, own | ms / million, AVX2 |
|---|---:|---:|---:|---:|
{table}

Unpinned, {len(differ)} of {len(rows)} function-dtype pairs give other bits on this CPU than on an AVX2-only one
({', '.join(differ) or 'none'}): every number computed with them (prosody, poses, metrics, bootstrap intervals) could
part in its last bits between machines. numpy's compiled functions with instructions whose results IEEE 754 does
not fix (rcpps, rsqrtps, their AVX-512 forms, x87 transcendentals; fsqrt is exact): {approx}. Those are SVML's
AVX-512 kernels only; the AVX2 kernels pinned numerics run have none, so their bits do not depend on the maker.
"""
    write_section("numpy's vector math", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
