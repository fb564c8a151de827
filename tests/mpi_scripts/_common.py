"""Shared by the rank scripts that tests/test_distributed_mpi.py launches with `mpiexec -n 2`.

Each script checks on every rank and prints `PASS <name>` lines from rank 0; a failed check raises, and the
excepthook that init_process_group installs aborts the whole job, so the test sees a non-zero exit status.
"""
import datetime
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import tinygrad_lite as tl  # noqa: E402

dist = tl.distributed


def init(timeout=20):
    """The process group with a short deadline: a test must never wait 30 minutes."""
    dist.init_process_group(backend="mpi", timeout=datetime.timedelta(seconds=timeout))
    return dist.get_rank(), dist.get_world_size()


def passed(name):
    """Report a check done on every rank (a barrier first, so rank 0 speaks for all)."""
    dist.barrier()
    if dist.get_rank() == 0:
        print(f"PASS {name}", flush=True)
