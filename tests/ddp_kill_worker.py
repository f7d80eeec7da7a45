"""`ksdiff train` for torchrun, with one rank killed for real (SIGKILL) when a given step begins.

    python -m torch.distributed.run --nproc_per_node 2 tests/ddp_kill_worker.py RANK STEP train --results ...

Run by tests/test_train_ddp.py: the kill lands at a known step, so the test knows which checkpoint
survived; everything after the two numbers is `ksdiff`'s command line.
"""
import os
import signal
import sys

from ksdiff import numerics

numerics.pin()  # before torch loads, as the CLI does (the config of the test uses the default mode)

from ksdiff import cli  # noqa: E402
from ksdiff.training import loop  # noqa: E402

KILL_RANK, KILL_STEP = int(sys.argv[1]), int(sys.argv[2])
real_lr_at = loop.lr_at


def dying_lr_at(step, tcfg):
    """The loop asks for each step's learning rate first thing: the victim dies there."""
    if step == KILL_STEP and int(os.environ["RANK"]) == KILL_RANK:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_lr_at(step, tcfg)


loop.lr_at = dying_lr_at
sys.exit(cli.main(sys.argv[3:]))
