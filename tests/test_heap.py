"""ksdiff.heap: a stage that allocates the same large buffers every step stops paying page faults for them."""
import subprocess
import sys

import pytest

from ksdiff import heap

# One process per case: mallopt changes the whole process. A "step" allocates, writes and frees five large
# float32 buffers (MiB sizes like the expert's column buffers and activations); after a few steps for the heap
# to settle, ten steps are counted.
STEP_MIB = (35, 36, 9, 48, 12)
PROBE = f"""
import resource, sys
from ksdiff import heap
if sys.argv[1] == "keep":
    assert heap.keep_freed_memory()
import torch
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():
    xs = [torch.empty(mib * 2**18).fill_(1.0) for mib in {STEP_MIB}]
    del xs
for _ in range(20):
    step()
f0 = faults()
for _ in range(10):
    step()
print(faults() - f0)
"""
PAGES_PER_STEP = sum(STEP_MIB) * 2**20 // 4096


def minor_faults(case: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, case], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(heap._glibc() is None, reason="mallopt is glibc's; other C libraries keep their own policy")
def test_kept_memory_is_reused_without_faulting_its_pages_in_again():
    kept = minor_faults("keep")
    # Ten steps write 358,400 pages; reused memory faults (almost) none of them in again.
    assert kept < 0.05 * 10 * PAGES_PER_STEP, kept
    # Measured here without it: about 30,000 pages a step are faulted in again (unless the kernel backs
    # anonymous memory with huge pages on its own, THP "always", which hides the contrast: so it is printed,
    # not asserted).
    print("minor faults in 10 steps: kept", kept, "default", minor_faults("default"))
