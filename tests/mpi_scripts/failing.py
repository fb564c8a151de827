"""One rank fails while the other waits in a collective: the job must end (with an error), not hang.

    failing.py raise    rank 1 raises: its excepthook aborts the MPI job while rank 0 is inside all_reduce
    failing.py exit     rank 1 exits quietly: rank 0's wait passes the group's 2-second deadline and raises
    failing.py ddp      rank 1 raises during backward; rank 0 waits for the gradient all-reduce
"""
import sys

from _common import dist, init, tl

mode = sys.argv[1]
rank, world = init(timeout=2 if mode == "exit" else 20)
if rank == 1:
    if mode == "exit":
        sys.exit(0)
    if mode == "raise":
        raise ValueError("rank 1 fails on purpose")
if mode == "ddp":
    model = tl.nn.parallel.DistributedDataParallel(tl.nn.Linear(3, 1))
    loss = model(tl.randn(4, 3)).sum()
    if rank == 1:
        raise ValueError("rank 1 fails on purpose before backward")
    loss.backward()
else:
    dist.all_reduce(tl.ones(3))
print(f"rank {rank} was not stopped", flush=True)
