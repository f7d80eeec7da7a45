"""librosa, imported so that processes starting together cannot corrupt numba's cache.

librosa compiles its numba ufuncs and gufuncs (pYIN's parabolic interpolation, zero crossings,
local maxima) when their modules are imported, and caches the machine code on disk (``cache=True``).
A gufunc is cached as two files, the kernel and a wrapper that calls the kernel by a symbol name
numbered from a per-process counter (numba issue #10128, not fixed in numba 0.68). Two processes
compiling on an empty cache a second or so apart number the kernel differently; one writes the
kernel, the other the wrapper, and from then on EVERY process that loads them crashes with a
segmentation fault, with no Python error, until the cache files are deleted.

Measured here: two processes running ``librosa.pyin`` on a fresh cache, the second started 0.5-4 s
after the first, left a cache that crashed every later process in 2 of 7 tries. A workflow's
first parallel jobs on a fresh install do just that (CI on a new machine crashed in the feature
jobs and then in every test that called pYIN).

:func:`import_librosa` imports the modules that compile under an exclusive file lock beside the
cache, so the first process compiles and writes both files while the others wait, then load them.
``envs/install.sh`` calls it once, so a fresh install compiles before any job starts, also for
processes on other machines sharing the environment that the lock (local to one machine on most
network file systems) would not cover.
"""
from __future__ import annotations

import fcntl
import importlib
import os
import sys
import tempfile

import librosa  # the package alone (its lazy loader): nothing is compiled until a submodule loads

# librosa's modules that define numba (gu)vectorize functions with signatures, compiled when the module
# is imported, among those that ksdiff's uses of librosa load (pyin, yin, feature, filters, onset, effects;
# tests/test_numba_cache.py checks the list against them). librosa.beat has such functions too but ksdiff
# never loads it: importing it costs 1.6 s a process even from the cache (7.6 s to compile).
COMPILING_MODULES = ("librosa.core.audio", "librosa.core.pitch", "librosa.util.utils")
LOCK_NAME = "ksdiff-numba.lock"


def cache_dir() -> str:
    """Where numba caches librosa's code: NUMBA_CACHE_DIR if set, else beside librosa's sources."""
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured:
        return configured
    return os.path.join(os.path.dirname(librosa.__file__), "__pycache__")


def lock_path() -> str:
    """The lock file, in the cache's folder when it is writable.

    A read-only install (a shared environment) makes numba cache in the user's own folder; processes
    of one machine then take turns on a lock in the temporary folder instead.
    """
    folder = cache_dir()
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        pass
    if not os.access(folder, os.W_OK):
        folder = tempfile.gettempdir()
    return os.path.join(folder, LOCK_NAME)


def import_librosa():
    """The librosa module, its compiling modules imported (compiled or loaded) under the cache lock."""
    if all(name in sys.modules for name in COMPILING_MODULES):
        return librosa
    with open(lock_path(), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if an import fails
        for name in COMPILING_MODULES:
            importlib.import_module(name)
    return librosa
