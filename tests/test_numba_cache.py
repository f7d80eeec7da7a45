"""Processes starting together on a fresh numba cache leave a cache every later process can use.

Without the lock (plain ``import librosa``), this setting crashed: two processes running pYIN on an
empty cache, the second started 1 s or 2.5 s after the first, left kernel and wrapper files that
did not match, and every later process died of a segmentation fault (numba issue #10128). It did not
happen at every delay (2 of 7 tried), so the test runs three staggered processes. With the lock taken
out, the test failed in 2 of 3 runs; with it, it passed in 4 of 4.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ksdiff import numba_cache

REPO = Path(__file__).resolve().parents[1]

PYIN_OF_A_TONE = textwrap.dedent("""
    import numpy as np
    from ksdiff.numba_cache import import_librosa
    librosa = import_librosa()
    x = np.sin(2 * np.pi * 150 * np.arange(16000) / 16000).astype(np.float32)
    f0, voiced, _ = librosa.pyin(x, fmin=60, fmax=500, sr=16000, frame_length=1024, hop_length=320)
    print(float(np.nanmedian(f0[voiced])))
""")


def _python(code: str, cache: Path | None = None) -> subprocess.Popen:
    env = dict(os.environ, **({"NUMBA_CACHE_DIR": str(cache)} if cache else {}))
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_processes_compiling_together_leave_a_cache_that_later_processes_load(tmp_path):
    cache = tmp_path / "numba"
    procs = []
    for delay in (0.0, 1.0, 1.5):  # the second and third start while the first is still compiling
        time.sleep(delay)
        procs.append(_python(PYIN_OF_A_TONE, cache))
    later = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        later.append((p.returncode, out, err))
    after = _python(PYIN_OF_A_TONE, cache)
    out, err = after.communicate(timeout=300)
    later.append((after.returncode, out, err))
    for rc, out, err in later:
        assert rc == 0, f"exit {rc} (-11: segmentation fault): {err[-2000:]}"
        assert abs(float(out) - 150.0) < 2.0
    assert any(cache.rglob("*.nbc")), "numba wrote no cache there: the test did not exercise it"
    assert (cache / numba_cache.LOCK_NAME).exists()


def test_the_lock_covers_every_compiling_module_that_ksdiffs_uses_of_librosa_load():
    """Every ``librosa.x.y`` that ksdiff's code names is loaded; the librosa modules then imported that
    compile numba (gu)vectorize functions must be those imported under the lock."""
    used = set()
    for path in (REPO / "ksdiff").rglob("*.py"):
        if path.name == "numba_cache.py":  # names the modules it imports, and librosa.beat that it leaves out
            continue
        used |= set(re.findall(r"\blibrosa((?:\.[a-z_]+)+)", path.read_text()))
    assert ".pyin" in used and ".onset.onset_detect" in used  # the scan finds ksdiff's uses
    code = textwrap.dedent(f"""
        import re, sys
        from ksdiff.numba_cache import import_librosa
        librosa = import_librosa()
        for dotted in {sorted(used)!r}:
            obj = librosa
            for name in dotted.strip(".").split("."):
                obj = getattr(obj, name)
        compiling = re.compile(r"@(numba\\.)?guvectorize\\(|numba\\.vectorize\\(")
        for name, mod in sorted(sys.modules.items()):
            if name.startswith("librosa") and getattr(mod, "__file__", None):
                if compiling.search(open(mod.__file__).read()):
                    print(name)
    """)
    p = _python(code)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-2000:]
    loaded = set(out.split())
    assert "librosa.core.pitch" in loaded  # the check sees pYIN's module
    assert loaded <= set(numba_cache.COMPILING_MODULES), loaded - set(numba_cache.COMPILING_MODULES)
