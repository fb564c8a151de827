"""digits_ddp: digits_cnn's CNN trained data-parallel over MPI ranks with tl.nn.parallel.DistributedDataParallel.

    mpiexec -n 2 python examples/digits_ddp.py [--epochs N] [--smoke]     (mpiexec from the `distributed` extra)
    python examples/digits_ddp.py                                         (a world of one rank works too)

Same data, model, optimizer, schedule and global batch (32) as examples/digits_cnn.py: each of the N ranks trains
on its DistributedSampler share with a per-rank batch of 32/N, and DDP averages the gradients during backward, so
the accuracy is the single-process demo's (BatchNorm normalises with each rank's batch, as in PyTorch). Rank 0
prints; the test accuracy is measured on rank 0's replica (all replicas hold the same parameters).

Needs mpi4py and an MPI (pip install -e '.[distributed]') and scikit-learn (pip install -e '.[examples]').
"""
import time

import numpy as np

import tinygrad_lite as tl
from tinygrad_lite import nn

from _common import Timer, parse, parser, plural
from digits_cnn import EPOCHS, build_model, load_data, predict

GLOBAL_BATCH = 32


def main(argv=None):
    p = parser(__doc__, epochs=EPOCHS)
    p.add_argument("--lr", type=float, default=3e-3)
    args = parse(p, argv, epochs=EPOCHS)
    tl.distributed.init_process_group(backend="mpi")
    rank, world = tl.distributed.get_rank(), tl.distributed.get_world_size()
    say = print if rank == 0 else (lambda *a, **k: None)
    start = time.perf_counter()

    x_tr, x_te, y_tr, y_te = load_data()
    if GLOBAL_BATCH % world:
        raise SystemExit(f"digits_ddp: the global batch {GLOBAL_BATCH} must divide among the {world} ranks")
    tl.manual_seed(args.seed)
    model = nn.parallel.DistributedDataParallel(build_model())  # rank 0's initial weights on every rank
    tl.manual_seed(args.seed + rank)  # then each rank its own dropout masks
    optimizer = tl.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = tl.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    dataset = tl.data.TensorDataset(tl.tensor(x_tr), tl.tensor(y_tr))
    sampler = tl.data.DistributedSampler(dataset, shuffle=True, seed=args.seed)
    loader = tl.data.DataLoader(dataset, batch_size=GLOBAL_BATCH // world, sampler=sampler)
    loss_fn = nn.CrossEntropyLoss()
    say(f"ddp: {plural(world, 'rank')}, {len(sampler)} training images and batch {GLOBAL_BATCH // world} per rank "
        f"(global batch {GLOBAL_BATCH}), {len(model.reducer.buckets)} gradient bucket(s)")

    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        total = tl.zeros(2, dtype=tl.float64)  # summed loss and samples of this rank, all-reduced for the report
        with Timer() as t:
            for xb, yb in loader:
                loss = loss_fn(model(xb), yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += tl.tensor([loss.item() * len(yb), len(yb)], dtype=tl.float64)
            scheduler.step()
        tl.distributed.all_reduce(total)
        acc = (predict(model.module, x_te) == y_te).mean()
        say(f"epoch {epoch + 1:2d}/{args.epochs}: train loss {total[0].item() / total[1].item():.4f}, test "
            f"accuracy {acc:.1%}, {t.seconds:.2f} s")

    check = model.module[0].weight.detach().clone()
    replicas = [tl.zeros_like(check) for _ in range(world)]
    tl.distributed.all_gather(replicas, check)
    same = all(np.array_equal(r.numpy(), replicas[0].numpy()) for r in replicas)
    acc = (predict(model.module, x_te) == y_te).mean()
    say(f"digits_ddp: test accuracy {acc:.1%} ({plural(world, 'rank')}, {plural(args.epochs, 'epoch')}, replicas "
        f"{'identical' if same else 'DIFFER'}, {time.perf_counter() - start:.1f} s in all)")
    tl.distributed.destroy_process_group()
    return acc


if __name__ == "__main__":
    main()
