"""Freed memory kept in the process, so a loop's large buffers stop costing page faults every step.

glibc's malloc serves every request above its mmap threshold (32 MiB at most) with a fresh ``mmap`` and gives
it back to the kernel on ``free``. A loop that allocates the same large tensors every step then faults in
every 4 KiB page again each time, and the kernel zeroes each page first. The SyncNet expert's training does
exactly that: its convolutions' column buffers (ATen's slow_conv3d, 35 MB a sample in the first layer) and
activations are allocated and freed every step. Measured on the demo's data (benchmarks/README.md, "Demo run
time"), 60 steps of the expert: 12.4 million minor page faults and 26 s of system time; with freed memory kept,
0.41-0.46 million and 4-6 s (three runs), the same weights to the byte. KSDiff's training (small tensors, already reused by
malloc) does not change; an evaluate job saved 2.4 s of 78, not worth a heap that keeps fragments of clips of
every length. The command line applies it to the expert only (ksdiff.cli.KEEP_FREED_MEMORY).

:func:`keep_freed_memory` asks glibc (``mallopt``) to serve large requests from the heap too
(``M_MMAP_MAX`` = 0) and to keep the heap's free top (``M_TRIM_THRESHOLD`` very high), so a freed buffer is
reused by the next step's request without the kernel. Why not transparent huge pages (torch's
``THP_MEM_ALLOC_ENABLE``): fewer faults, but the kernel still zeroes every page: 22 s of system time in the
same 60 steps. The cost: the process keeps its high-water mark, and the heap fragments (the expert's peak
resident memory 2.0 -> 2.4-2.6 GB in those runs): use it where the same sizes repeat. Numbers do not change: only
where memory comes from does, and torch aligns every tensor to 64 bytes either way.

Only glibc has ``mallopt``; elsewhere (macOS, musl) this does nothing and says so.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# mallopt takes an int, so the free top kept is at most 2 GiB: far above what one step frees at once.
KEEP_TOP_BYTES = 2**31 - 1


def _glibc():
    """glibc's handle, or None where the C library is another one."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc only
        libc.mallopt
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def keep_freed_memory() -> bool:
    """Keep memory freed by this process for its own reuse (see the module's docstring); True if applied."""
    libc = _glibc()
    if libc is None:
        log.debug("not glibc: freed memory is managed by the C library's own policy")
        return False
    ok = libc.mallopt(M_MMAP_MAX, 0) == 1  # the part that stops the faults
    ok = libc.mallopt(M_TRIM_THRESHOLD, KEEP_TOP_BYTES) == 1 and ok
    if not ok:
        log.warning("mallopt refused to keep freed memory: large buffers will be faulted in at every step")
    return ok
