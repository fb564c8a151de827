"""tl.distributed's collectives on every rank: values, in-place results, errors reported on every rank, and the
DistributedSampler's partition across the ranks."""
import numpy as np

from _common import dist, init, passed, tl

rank, world = init()
ranks = np.arange(world, dtype=np.float64)

t = tl.tensor([1.0, 2.0]) * (rank + 1)
dist.all_reduce(t)
assert np.allclose(t.numpy(), np.array([1.0, 2.0]) * sum(ranks + 1)), t
for op, expect in ((dist.ReduceOp.AVG, np.mean(ranks + 1)), (dist.ReduceOp.MAX, world), (dist.ReduceOp.MIN, 1.0)):
    t = tl.full((2, 3), float(rank + 1))
    before = t._version
    dist.all_reduce(t, op=op)
    assert np.allclose(t.numpy(), expect) and t._version == before + 1, (op, t)
i = tl.tensor([rank + 1, 10], dtype=tl.int64)
dist.all_reduce(i, op=dist.ReduceOp.SUM)
assert i.numpy().tolist() == [int(sum(ranks + 1)), 10 * world]
view = tl.arange(6, dtype=tl.float64).reshape(2, 3).t()  # not contiguous: reduced through a copy, written back
dist.all_reduce(view)
assert np.allclose(view.numpy(), world * np.arange(6.0).reshape(2, 3).T)
passed("all_reduce")

t = tl.tensor(np.full(4, float(rank)))
dist.broadcast(t, src=world - 1)
assert np.allclose(t.numpy(), world - 1)
passed("broadcast")

out = [tl.zeros(2, 2) for _ in range(world)]
dist.all_gather(out, tl.full((2, 2), float(rank)))
assert [o.numpy()[0, 0] for o in out] == list(ranks)
passed("all_gather")

dist.barrier()
passed("barrier")

for opname, call in (("all_reduce", lambda x: dist.all_reduce(x)), ("broadcast", lambda x: dist.broadcast(x, 0)),
                     ("all_gather", lambda x: dist.all_gather([tl.zeros_like(x) for _ in range(world)], x))):
    bad = tl.zeros(2, 3 + rank)  # a different shape on every rank: detected on every rank, no silent result
    try:
        call(bad)
    except ValueError as e:
        assert f"{opname}: the tensors differ across ranks (rank 0: (2, 3) float32, rank 1: (2, 4) float32" in str(e), e
    else:
        raise AssertionError(f"{opname} accepted shapes that differ across ranks")
passed("shape_mismatch")

dataset = list(range(11))
for drop_last in (False, True):
    sampler = tl.data.DistributedSampler(dataset, shuffle=True, seed=3, drop_last=drop_last)
    assert (sampler.num_replicas, sampler.rank) == (world, rank)
    orders = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        idx = tl.tensor(list(sampler), dtype=tl.int64)
        every = [tl.zeros_like(idx) for _ in range(world)]
        dist.all_gather(every, idx)
        got = np.concatenate([e.numpy() for e in every])
        orders.append(got)
        if drop_last:
            assert len(set(got.tolist())) == len(got) == 10, got  # disjoint shares, one sample left out
        else:
            assert set(got.tolist()) == set(dataset) and len(got) == 12, got  # all covered, one repeated as padding
    assert not np.array_equal(orders[0], orders[1]), "set_epoch did not change the order"
passed("sampler")

dist.destroy_process_group()
