"""Review s13 of tl.distributed / DistributedDataParallel: a world of one in this process (when mpi4py is
installed) and the 2-rank checks of tests/mpi_scripts/review_s13.py, launched as test_distributed_mpi.py does."""
import numpy as np
import pytest

import tinygrad_lite as tl
from test_distributed import world1  # noqa: F401 (the fixture: a world of one, skipped without mpi4py)
from test_distributed_mpi import _passes, mpiexec  # noqa: F401 (the fixture: skipped without mpi4py/mpiexec)

dist = tl.distributed


# bool all_reduce raised MPI's "Invalid MPI_Op" (MPI has no SUM/MAX on C_BOOL); PyTorch's bool SUM/MAX is any, MIN/PRODUCT all
def test_bool_all_reduce_world_of_one(world1):
    for op in (dist.ReduceOp.SUM, dist.ReduceOp.MAX, dist.ReduceOp.MIN, dist.ReduceOp.PRODUCT):
        t = tl.tensor([True, False])
        dist.all_reduce(t, op=op)
        assert t.dtype == tl.bool and t.numpy().tolist() == [True, False]
    with pytest.raises(TypeError, match="AVG needs a floating tensor"):
        dist.all_reduce(tl.tensor([True]), op=dist.ReduceOp.AVG)


# a collective inside tl.compile was not recorded: replays skipped it (wrong numbers on several ranks)
def test_compiled_collective_runs_eagerly_with_the_reason(world1):
    @tl.compile
    def f(t):
        t = t * 2
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
        return t + 1

    for k in range(3):
        assert f(tl.tensor([float(k)])).item() == 2 * k + 1
    assert f.stats["replays"] == 0 and "tl.distributed.all_reduce" in f.stats["last_reason"]
    with pytest.raises(tl.CompileError, match="tl.distributed.all_reduce"):
        tl.compile(f.fn, fullgraph=True)(tl.ones(1))


def test_descriptor_of_many_dimensions():
    from tinygrad_lite.distributed.collectives import _describe, _show
    d = _describe(np.zeros([1] * 12 + [3, 2]))
    assert d[0] == 14 and d[3 + 11] == 6 and _show(d) == str(tuple([1] * 11 + [6])) + " float64"


@pytest.fixture(scope="module")
def review_run(mpiexec):  # noqa: F811
    return _passes(mpiexec, "review_s13.py")


@pytest.mark.mpi
@pytest.mark.parametrize("check", ["bool_all_reduce", "many_dims", "compiled_collectives", "nograd_forward_keeps_sync",
                                   "equivalence_tied_frozen_unused"])
def test_review_s13_on_two_ranks(review_run, check):
    assert check in review_run
