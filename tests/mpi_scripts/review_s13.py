"""Review s13 of tl.distributed / DistributedDataParallel on 2 ranks (run by tests/test_review_s13_ddp.py): bool
all_reduce, tensors of more than 12 dimensions, collectives inside tl.compile, a no_grad forward between a synced
forward and its backward, and DDP against one process on the concatenated batch (float64, 1e-10) for tied, frozen
and locally unused parameters, leaf hooks, no_sync accumulation and the packed optimizers."""
import contextlib

import numpy as np

from _common import dist, init, passed, tl

nn = tl.nn
DDP = nn.parallel.DistributedDataParallel
rank, world = init()


def gathered(t):
    every = [tl.zeros_like(t) for _ in range(world)]
    dist.all_gather(every, t.detach().clone())
    return [e.numpy() for e in every]


# bool all_reduce crashed inside MPI ("Invalid MPI_Op": MPI has no SUM/MAX on C_BOOL); PyTorch: SUM/MAX any, MIN/PRODUCT all
for op, want in [(dist.ReduceOp.SUM, [True, True, False]), (dist.ReduceOp.MAX, [True, True, False]),
                 (dist.ReduceOp.MIN, [True, False, False]), (dist.ReduceOp.PRODUCT, [True, False, False])]:
    t = tl.tensor([True, rank == 0, False])
    dist.all_reduce(t, op=op)
    assert t.dtype == tl.bool and t.numpy().tolist() == want, (op, t)
passed("bool_all_reduce")

# a tensor of 13 dimensions crashed in the shape comparison (_describe wrote 13 dimensions into 12 slots)
t = tl.ones(*([1] * 12 + [3])) * (rank + 1)
dist.all_reduce(t)
assert t.shape == tuple([1] * 12 + [3]) and (t.numpy() == 3).all()
try:
    dist.all_reduce(tl.ones(*([1] * 12 + [2 + rank])))
except ValueError as e:
    assert "differ across ranks" in str(e), e
else:
    raise AssertionError("13-d tensors of different shapes were reduced")
passed("many_dims")


# a collective inside tl.compile was left out of the record: replays returned the input unreduced
@tl.compile
def summed(t):
    t = t * 1
    dist.all_reduce(t)
    return t + 0


got = [summed(tl.tensor([float(rank + k)])).item() for k in range(4)]
assert got == [sum(r + k for r in range(world)) for k in range(4)], got
assert summed.stats["replays"] == 0 and "tl.distributed.all_reduce" in summed.stats["last_reason"], summed.stats


@tl.compile
def from_one(t):
    t = t + 0
    dist.broadcast(t, 1)
    return t * 2


got = [from_one(tl.tensor([float(rank + 10 * k)])).item() for k in range(3)]
assert got == [2.0 * (1 + 10 * k) for k in range(3)], got
passed("compiled_collectives")

# a forward under no_grad between a synced forward and its backward disarmed the averaging (PyTorch's leaves the
# reducer armed): the ranks kept different gradients
tl.manual_seed(0)
model = DDP(nn.Linear(4, 4).double())
x = tl.tensor(np.full((2, 4), rank + 1.0))
out = model(x).sum()
with tl.no_grad():
    model(x)
with model.no_sync():
    model(x)  # a no_sync forward without backward leaves it armed too
out.backward()
del out
every = gathered(model.module.weight.grad)
assert np.allclose(every[0], np.mean([2 * (r + 1) for r in range(world)])) and np.array_equal(every[0], every[1])
passed("nograd_forward_keeps_sync")


# against one process on the concatenated batch
class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Linear(4, 4, bias=False)
        self.frozen = nn.Linear(4, 4)
        self.frozen.weight.requires_grad_(False)
        self.out = nn.Linear(4, 4, bias=False)
        self.out.weight = self.emb.weight
        self.extra = nn.Linear(4, 4)
        self.b = nn.Parameter(tl.zeros(4))

    def forward(self, x, use_extra=True):
        h = self.out(tl.tanh(self.frozen(self.emb(x)))) + self.b
        return self.extra(h) if use_extra else h


def data(step, n=4 * world):
    rng = np.random.default_rng(step)
    return tl.tensor(rng.normal(size=(n, 4))), tl.tensor(rng.normal(size=(n, 4)))


def run(opt_fn, ddp, hook=False, accumulate=1, steps=3, **kw):
    tl.manual_seed(0)
    m = Tied().double()
    if hook:
        for p in m.parameters():
            if p.requires_grad:
                p.register_hook(lambda g: g * 2)
    model = DDP(m, **kw) if ddp else m
    opt = opt_fn(m.parameters())
    for step in range(steps):
        x, y = data(step)
        opt.zero_grad()
        for part in range(accumulate):
            for r in ([rank] if ddp else range(world)):  # rank r's share; on rank 1 the extra layer is unused
                xs, ys = x.chunk(world)[r][part::accumulate], y.chunk(world)[r][part::accumulate]
                sync = model.no_sync() if ddp and part < accumulate - 1 else contextlib.nullcontext()
                with sync:
                    loss = ((model(xs, use_extra=r == 0) - ys) ** 2).mean() / accumulate
                    (loss if ddp else loss / world).backward()
        opt.step()
    return m


for name, opt_fn in [("SGD_momentum", lambda ps: tl.optim.SGD(ps, lr=0.1, momentum=0.9)),
                     ("Adam", lambda ps: tl.optim.Adam(ps, lr=0.01))]:
    for kw in [{}, {"hook": True}, {"accumulate": 2}, {"bucket_cap_mb": 1e-5}]:
        ref = run(opt_fn, ddp=False, **{k: v for k, v in kw.items() if k != "bucket_cap_mb"})
        got = run(opt_fn, ddp=True, find_unused_parameters=True, **kw)
        for (n, a), b in zip(ref.named_parameters(), got.parameters()):
            assert np.allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-10), (name, kw, n)
        assert np.array_equal(got.frozen.weight.numpy(), ref.frozen.weight.numpy())
passed("equivalence_tied_frozen_unused")
