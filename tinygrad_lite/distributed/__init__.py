"""`tl.distributed`: data-parallel training over MPI, with `torch.distributed`'s names.

Ranks are the processes of an MPI launch (`mpiexec -n 4 python train.py`, on one machine or many); they talk
through mpi4py on the tensors' NumPy buffers. mpi4py is imported by `init_process_group`, so this module imports
without it (`pip install 'tinygrad_lite[distributed]'` brings mpi4py and the `mpich` wheel, an MPI from PyPI).

    tl.distributed.init_process_group(backend="mpi")
    model = tl.nn.parallel.DistributedDataParallel(model)
    sampler = tl.data.DistributedSampler(dataset)          # each rank its share of the samples
    loader = tl.data.DataLoader(dataset, batch_size=32, sampler=sampler)

An uncaught exception on any rank aborts the whole job, and every collective waits at most `timeout` (see
`group`), so a failing rank never leaves the others hanging.
"""
from .group import (init_process_group, destroy_process_group, is_initialized, is_available, get_rank,
                    get_world_size, get_backend)
from .collectives import ReduceOp, all_reduce, broadcast, all_gather, barrier

__all__ = ["init_process_group", "destroy_process_group", "is_initialized", "is_available", "get_rank",
           "get_world_size", "get_backend", "ReduceOp", "all_reduce", "broadcast", "all_gather", "barrier"]
