"""tl.distributed, DistributedDataParallel and DistributedSampler in one process: the sampler's arithmetic (against
PyTorch's in the oracle group), DataLoader(sampler=...), the errors without a process group, and a world of size 1
(plain `python`, no launcher) when mpi4py is installed. Several ranks: tests/test_distributed_mpi.py."""
import gc
import importlib.util
import sys

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.autograd import engine
from conftest import skip_or_fail

dist = tl.distributed
DDP = nn.parallel.DistributedDataParallel
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
NOT_INITIALIZED = "Default process group has not been initialized"


# ---------------- DistributedSampler ----------------
@pytest.mark.parametrize("drop_last, expected", [
    (False, [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]),  # 10 samples padded to 12 with the first ones
    (True, [[0, 3, 6], [1, 4, 7], [2, 5, 8]]),           # cut to 9
])
def test_sampler_partition_without_shuffle(drop_last, expected):
    got = [list(tl.data.DistributedSampler(range(10), 3, r, shuffle=False, drop_last=drop_last)) for r in range(3)]
    assert got == expected
    assert all(len(tl.data.DistributedSampler(range(10), 3, r, drop_last=drop_last)) == len(expected[0])
               for r in range(3))


def test_sampler_pads_a_dataset_smaller_than_the_ranks():
    got = [list(tl.data.DistributedSampler(range(2), 5, r, shuffle=False)) for r in range(5)]
    assert got == [[0], [1], [0], [1], [0]]


def test_sampler_shuffle_is_seeded_by_seed_plus_epoch_and_shared_by_ranks():
    def order(seed, epoch):
        samplers = [tl.data.DistributedSampler(range(20), 2, r, seed=seed) for r in range(2)]
        for s in samplers:
            s.set_epoch(epoch)
        return [list(s) for s in samplers]
    first = order(0, 0)
    assert sorted(first[0] + first[1]) == list(range(20))  # the ranks share one permutation
    assert order(0, 0) == first and order(0, 1) != first and order(1, 0) != first
    assert order(1, 0) == order(0, 1)  # PyTorch's seeding: seed + epoch


def test_sampler_errors():
    with pytest.raises(ValueError, match=r"Invalid rank 2, rank should be in the interval \[0, 1\]"):
        tl.data.DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(ValueError, match=NOT_INITIALIZED):
        tl.data.DistributedSampler(range(4))


@pytest.mark.oracle
def test_sampler_matches_pytorch_index_arithmetic(torch):
    """Same padding, cutting and striding as torch.utils.data.DistributedSampler, given PyTorch's permutation."""
    class WithTorchPermutation(tl.data.DistributedSampler):
        def _permutation(self, n):
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            return torch.randperm(n, generator=g).tolist()

    for n in (0, 1, 2, 5, 10, 11, 17):
        for replicas in (1, 2, 3, 4, 7):
            for rank in range(replicas):
                for shuffle in (False, True):
                    for drop_last in (False, True):
                        kw = dict(num_replicas=replicas, rank=rank, shuffle=shuffle, seed=5, drop_last=drop_last)
                        ours, theirs = WithTorchPermutation(range(n), **kw), \
                            torch.utils.data.DistributedSampler(range(n), **kw)
                        for epoch in (0, 3):
                            ours.set_epoch(epoch)
                            theirs.set_epoch(epoch)
                            assert list(ours) == list(theirs), (n, kw, epoch)
                            assert len(ours) == len(theirs)


def test_dataloader_with_sampler():
    ds = tl.data.TensorDataset(tl.tensor(np.arange(10.0)))
    sampler = tl.data.DistributedSampler(ds, num_replicas=3, rank=1, shuffle=False)
    loader = tl.data.DataLoader(ds, batch_size=3, sampler=sampler)
    assert len(loader) == 2
    assert [b[0].numpy().tolist() for b in loader] == [[1.0, 4.0, 7.0], [0.0]]
    assert tl.utils.data.DistributedSampler is tl.data.DistributedSampler
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        tl.data.DataLoader(ds, sampler=sampler, shuffle=True)


# ---------------- without a process group ----------------
@pytest.mark.parametrize("call", [dist.get_rank, dist.get_world_size, dist.barrier,
                                  lambda: dist.all_reduce(tl.ones(2)), lambda: DDP(nn.Linear(2, 1))])
def test_not_initialized(call):
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match=NOT_INITIALIZED):
        call()


def test_only_the_mpi_backend():
    with pytest.raises(ValueError, match="backend 'nccl' is not supported.*backend='mpi'"):
        dist.init_process_group("nccl")
    assert not dist.is_initialized()


def test_missing_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"pip install 'tinygrad_lite\[distributed\]'"):
        dist.init_process_group("mpi")
    assert not dist.is_available()


# ---------------- a world of size 1 ----------------
@pytest.fixture
def world1():
    if not HAVE_MPI4PY:
        skip_or_fail("TL_REQUIRE_MPI", "mpi4py is not installed (pip install -e '.[distributed]')")
    hook = sys.excepthook
    dist.init_process_group(backend="mpi")
    yield
    dist.destroy_process_group()
    assert sys.excepthook is hook  # no abort hook for a single process


def test_world_of_one_collectives(world1):
    assert (dist.is_initialized(), dist.get_rank(), dist.get_world_size(), dist.get_backend()) == (True, 0, 1, "mpi")
    t = tl.tensor([1.0, -2.0])
    for op in dist.ReduceOp:
        dist.all_reduce(t, op=op)
    dist.broadcast(t, src=0)
    out = [tl.zeros(2)]
    dist.all_gather(out, t)
    assert dist.barrier() is None and dist.all_reduce(t, async_op=True).wait()  # done before returning
    assert t.numpy().tolist() == [1.0, -2.0] and out[0].numpy().tolist() == [1.0, -2.0]


def test_world_of_one_argument_errors(world1):
    with pytest.raises(RuntimeError, match="initialize the default process group twice"):
        dist.init_process_group("mpi")
    with pytest.raises(TypeError, match="all_reduce: tensor must be a tl.Tensor, got ndarray"):
        dist.all_reduce(np.ones(2))
    with pytest.raises(TypeError, match="op must be a tl.distributed.ReduceOp"):
        dist.all_reduce(tl.ones(2), op="sum")
    with pytest.raises(TypeError, match="ReduceOp.AVG needs a floating tensor, got dtype int64"):
        dist.all_reduce(tl.tensor([1, 2]), op=dist.ReduceOp.AVG)
    with pytest.raises(ValueError, match=r"broadcast: src must be a rank in \[0, 0\], got 1"):
        dist.broadcast(tl.ones(2), src=1)
    with pytest.raises(ValueError, match="tensor_list must hold world_size=1 tensors, got 2 tensors"):
        dist.all_gather([tl.ones(2), tl.ones(2)], tl.ones(2))
    with pytest.raises(ValueError, match=r"tensor_list\[0\] is \(3,\) float32 but tensor is \(2,\) float32"):
        dist.all_gather([tl.ones(3)], tl.ones(2))


def test_world_size_that_the_launch_does_not_give():
    if not HAVE_MPI4PY:
        skip_or_fail("TL_REQUIRE_MPI", "mpi4py is not installed (pip install -e '.[distributed]')")
    with pytest.raises(RuntimeError, match=r"world_size=2 was asked for but MPI started 1 process.*mpiexec -n 2"):
        dist.init_process_group("mpi", world_size=2)
    assert not dist.is_initialized()


def _model():
    tl.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()


def test_world_of_one_ddp_matches_the_plain_model(world1):
    x, y = tl.randn(5, 4, dtype=tl.float64), tl.tensor([0, 1, 1, 0, 1])
    plain, ddp = _model(), DDP(_model(), bucket_cap_mb=1e-5)  # 10-byte buckets: one per parameter
    for m in (plain, ddp):
        nn.CrossEntropyLoss()(m(x), y).backward()
    for a, b in zip(plain.parameters(), ddp.parameters()):
        assert np.allclose(a.grad.numpy(), b.grad.numpy(), rtol=0, atol=1e-14)
    assert len(ddp.reducer.buckets) == 4
    with ddp.no_sync():  # accumulates locally; the next synced backward reduces the total
        nn.CrossEntropyLoss()(ddp(x), y).backward()
    assert np.allclose(ddp.module[0].weight.grad.numpy(), 2 * plain[0].weight.grad.numpy())


def test_world_of_one_compiled_ddp_step_runs_eagerly_with_the_reason(world1):
    """tl.compile cannot record the all-reduce: the step runs eagerly (the same numbers as without tl.compile) and
    says why, instead of raising from inside backward."""
    x, y = tl.randn(5, 4, dtype=tl.float64), tl.tensor([0, 1, 1, 0, 1])
    runs = []
    for compiled in (False, True):
        tl.manual_seed(0)
        ddp = DDP(_model())
        opt = tl.optim.SGD(ddp.parameters(), lr=0.1)

        def step(x, y):
            opt.zero_grad()
            loss = nn.CrossEntropyLoss()(ddp(x), y)
            loss.backward()
            opt.step()
            return loss.item()
        f = tl.compile(step) if compiled else step
        runs.append(([f(x, y) for _ in range(3)], [p.numpy().copy() for p in ddp.parameters()], f))
    (want, want_p, _), (got, got_p, f) = runs
    assert got == want and all(np.array_equal(a, b) for a, b in zip(got_p, want_p))
    assert f.stats["replays"] == 0 and f.stats["eager_calls"] == 2
    assert "DistributedDataParallel: the gradient all-reduce" in f.stats["last_reason"]
    with pytest.raises(tl.CompileError, match="gradient all-reduce"):
        tl.compile(runs[1][2].fn, fullgraph=True)(x, y)


def test_world_of_one_state_dict_as_pytorch(world1):
    single = _model().state_dict()
    ddp = DDP(_model())
    sd = ddp.state_dict()
    assert list(sd) == ["module." + k for k in single]
    ddp.module.load_state_dict(single)  # a single-process checkpoint loads into .module
    nn.parallel.consume_prefix_in_state_dict_if_present(sd, "module.")
    assert list(sd) == list(single)
    _model().load_state_dict(sd)


def test_world_of_one_unused_parameter_error(world1):
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(2, 1), nn.Linear(2, 1)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(RuntimeError, match=r"find_unused_parameters=True.*rank 0: unused.weight, unused.bias"):
        DDP(TwoHeads())(tl.ones(1, 2)).sum().backward()
    ddp = DDP(TwoHeads(), find_unused_parameters=True)
    ddp(tl.ones(1, 2)).sum().backward()
    assert ddp.module.unused.weight.grad is None and ddp.module.used.weight.grad is not None


def test_the_engine_forgets_a_freed_ddp(world1):
    gc.collect()  # wrappers of earlier tests that only a collection frees (a compiled step's cycles) go first
    before = len(engine.backward_watchers)
    ddp = DDP(_model())
    assert len(engine.backward_watchers) == before + 1
    del ddp
    gc.collect()
    assert len(engine.backward_watchers) == before


def test_world_of_one_ddp_with_a_parameter_read_in_slices(world1):
    """A GRU reads weight_hh in slices: its gradient is still sparse when DDP's bucket hook reads it mid-walk."""
    def gru():
        tl.manual_seed(1)
        return nn.GRU(3, 4).double()

    x = tl.randn(6, 2, 3, dtype=tl.float64)
    plain, ddp = gru(), DDP(gru(), bucket_cap_mb=1e-5)
    for m in (plain, ddp):
        m(x)[0].pow(2).sum().backward()
    for (name, a), b in zip(plain.named_parameters(), ddp.parameters()):
        assert np.allclose(a.grad.numpy(), b.grad.numpy(), rtol=0, atol=1e-14), name
