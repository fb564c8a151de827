"""DistributedDataParallel on every rank, checked against one process on the concatenated batch (float64, 1e-10):
SGD and Adam, small buckets started during the walk, no_sync accumulation, unused parameters, BatchNorm's per-rank
statistics, wrap broadcast."""
import numpy as np

from _common import init, passed, tl

nn = tl.nn
DDP = nn.parallel.DistributedDataParallel
rank, world = init()
PER_RANK, STEPS = 4, 3


def make_model(seed):
    tl.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def batches(step, n):
    """The global batch of a step (the same on every rank), n samples."""
    rng = np.random.default_rng(100 + step)
    return tl.tensor(rng.normal(size=(n, 5))), tl.tensor(rng.integers(0, 3, size=n))


def mine(t):
    """This rank's equal share of a batch."""
    k = len(t) // world
    return t[rank * k:(rank + 1) * k]


def gathered(t):
    """Every rank's copy of `t`, as arrays."""
    every = [tl.zeros_like(t) for _ in range(world)]
    tl.distributed.all_gather(every, t.detach().clone())
    return [e.numpy() for e in every]


def train(model, opt, step_fn, steps=STEPS):
    loss_fn = nn.CrossEntropyLoss()
    for step in range(steps):
        x, y = batches(step, PER_RANK * world)
        opt.zero_grad()
        step_fn(model, loss_fn, x, y)
        opt.step()


def reference(opt_cls, accumulate=1, **opt_kw):
    """One process, no DDP, on the concatenated batches."""
    model = make_model(seed=0)
    opt = opt_cls(model.parameters(), **opt_kw)

    def step(m, loss_fn, x, y):
        for part in range(accumulate):
            xs, ys = x[part::accumulate], y[part::accumulate]
            (loss_fn(m(xs), ys) / accumulate).backward()
    train(model, opt, step)
    return model


def distributed(opt_cls, accumulate=1, bucket_cap_mb=25, **opt_kw):
    """Every rank its slice; with `accumulate` > 1, the micro-batches before the last run under no_sync()."""
    model = DDP(make_model(seed=rank), bucket_cap_mb=bucket_cap_mb)  # different seeds: the wrap broadcasts rank 0's
    opt = opt_cls(model.parameters(), **opt_kw)

    def step(m, loss_fn, x, y):
        for part in range(accumulate):
            xs, ys = mine(x[part::accumulate]), mine(y[part::accumulate])
            if part < accumulate - 1:
                with m.no_sync():
                    (loss_fn(m(xs), ys) / accumulate).backward()
            else:
                (loss_fn(m(xs), ys) / accumulate).backward()
    train(model, opt, step)
    return model


def assert_same(ddp_model, ref, what):
    for (name, a), b in zip(ddp_model.module.named_parameters(), ref.parameters()):
        err = np.abs(a.numpy() - b.numpy()).max()
        assert err < 1e-10, f"{what}: {name} differs from the single-process run by {err:.3g} on rank {rank}"


for opt_cls, kw in ((tl.optim.SGD, dict(lr=0.1, momentum=0.9)), (tl.optim.Adam, dict(lr=0.01))):
    assert_same(distributed(opt_cls, **kw), reference(opt_cls, **kw), opt_cls.__name__)
    passed(f"equivalence_{opt_cls.__name__}")

small = distributed(tl.optim.SGD, bucket_cap_mb=100 / 2**20, lr=0.1)  # 100-byte buckets: one per parameter
assert len(small.reducer.buckets) == 4, small.reducer.buckets
assert small.reducer.launched_early >= 3, f"only {small.reducer.launched_early} buckets started during the walk"
assert_same(small, reference(tl.optim.SGD, lr=0.1), "small buckets")
passed("buckets")

assert_same(distributed(tl.optim.SGD, accumulate=2, lr=0.1), reference(tl.optim.SGD, accumulate=2, lr=0.1),
            "no_sync")
passed("no_sync")

# inside no_sync the gradients stay local: they differ across ranks
model = DDP(make_model(seed=0))
x, y = batches(0, PER_RANK * world)
with model.no_sync():
    nn.CrossEntropyLoss()(model(mine(x)), mine(y)).backward()
every = gathered(model.module[0].weight.grad)
assert not np.allclose(every[0], every[1]), "no_sync() averaged the gradients"
passed("no_sync_local")


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 1), nn.Linear(3, 1)

    def forward(self, x, use_b):
        return self.a(x) + (self.b(x) if use_b else 0)


tl.manual_seed(0)
model = DDP(TwoHeads())
try:
    model(tl.randn(2, 3), use_b=False).sum().backward()
except RuntimeError as e:
    assert "find_unused_parameters=True" in str(e) and "b.weight, b.bias" in str(e), e
else:
    raise AssertionError("an unused parameter did not raise")
model = DDP(TwoHeads(), find_unused_parameters=True)
x = tl.tensor(np.full((2, 3), float(rank + 1)))
model(x, use_b=rank == 0).sum().backward()  # b used on rank 0 only: averaged with rank 1's zeros
expected_b = 2 * (1 / world)  # rank 0's gradient of sum(b(x)) w.r.t. b.weight is sum of x rows = 2
assert np.allclose(model.module.b.weight.grad.numpy(), expected_b), model.module.b.weight.grad
assert np.allclose(model.module.a.weight.grad.numpy(), np.mean([2 * (r + 1) for r in range(world)]))
passed("find_unused_parameters")

# BatchNorm as under PyTorch's DDP: each rank normalises with (and updates running stats from) its own batch; the
# buffers are rank 0's again at the start of every forward (broadcast_buffers=True)
model = DDP(nn.BatchNorm1d(2).double())
seen = []
model.module.register_forward_pre_hook(lambda m, args: seen.append(gathered(m.running_mean)))
x = tl.tensor(np.random.default_rng(rank).normal(size=(6, 2)) + rank)
out = model(x)
assert np.allclose(out.numpy().mean(axis=0), 0), "BatchNorm did not use this rank's batch statistics"
after_one = gathered(model.module.running_mean)
assert not np.allclose(after_one[0], after_one[1]), "the running statistics are not per rank"
model(x)
assert np.array_equal(seen[1][1], after_one[0]), "the forward did not start from rank 0's buffers"
passed("batchnorm_per_rank")

model = DDP(make_model(seed=rank))
assert list(model.state_dict())[0] == "module.0.weight"
weights = gathered(model.module[0].weight)
assert all(np.array_equal(w, weights[0]) for w in weights), "the wrap did not broadcast"
passed("wrap_broadcast")

tl.distributed.destroy_process_group()
