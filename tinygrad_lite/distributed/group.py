"""The default process group: the processes of one MPI launch (`mpiexec -n 4 python train.py`), through mpi4py.

mpi4py is imported by `init_process_group`, never at import time: `import tinygrad_lite.distributed` stays cheap
and works without MPI installed (the data sampler reads the rank from here). The group talks on a duplicate of
`MPI.COMM_WORLD`, so a user's own mpi4py messages cannot be matched with the library's.

Failure handling, so that no rank hangs forever when another one fails:
- with more than one rank, `init_process_group` installs a `sys.excepthook` that prints the traceback and calls
  `MPI.COMM_WORLD.Abort`: mpiexec then ends every rank;
- every collective of this package waits with a deadline (`timeout`, 30 minutes by default as PyTorch's) and
  raises when it passes, which the excepthook turns into an abort. This covers a rank that exits without an
  exception (`sys.exit`, a return from `main`) while the others are inside a collective.
"""
import datetime
import sys
import time

EXTRA_HINT = "pip install 'tinygrad_lite[distributed]' (mpi4py and an MPI library, e.g. the `mpich` wheel)"
DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)
_ABORT_GRACE = 0.25  # seconds
_NOT_INITIALIZED = "Default process group has not been initialized, please make sure to call init_process_group."


class _Group:
    """What `init_process_group` set up: the communicator, this rank, the size and the wait deadline."""

    def __init__(self, mpi, comm, timeout):
        self.mpi, self.comm, self.timeout = mpi, comm, timeout
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.previous_excepthook = None


_group = None


def mpi_module():
    """`mpi4py.MPI`, or an ImportError naming the `distributed` extra."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"tl.distributed needs mpi4py and an MPI library: {EXTRA_HINT} ({e})") from None
    return MPI


def is_available():
    """True when mpi4py can be imported (torch.distributed.is_available)."""
    try:
        mpi_module()
    except ImportError:
        return False
    return True


def init_process_group(backend="mpi", init_method=None, timeout=None, world_size=-1, rank=-1, **kwargs):
    """Join the ranks of the MPI launch. Only the 'mpi' backend exists; `world_size`/`rank`, when given, must match
    the launch (MPI decides both), which catches a script started without `mpiexec -n N`. A plain `python
    script.py` is a world of size 1."""
    global _group
    if _group is not None:
        raise RuntimeError("trying to initialize the default process group twice!")
    if backend is None or str(backend).lower() != "mpi":
        raise ValueError(f"init_process_group: backend {backend!r} is not supported; tinygrad_lite runs on MPI "
                         f"only: init_process_group(backend='mpi') under `mpiexec -n N python script.py`")
    if init_method is not None or kwargs.get("store") is not None:
        raise ValueError("init_process_group: init_method and store are not used by the 'mpi' backend (the MPI "
                         "launcher connects the ranks); leave them out")
    timeout = _seconds(DEFAULT_TIMEOUT if timeout is None else timeout)
    MPI = mpi_module()
    group = _Group(MPI, MPI.COMM_WORLD.Dup(), timeout)
    _check_launch(group, world_size, rank)
    if group.size > 1:
        group.previous_excepthook = sys.excepthook
        sys.excepthook = _abort_on_uncaught
    _group = group


def _seconds(timeout):
    seconds = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else float(timeout)
    if not seconds > 0:
        raise ValueError(f"init_process_group: timeout must be positive, got {timeout!r}")
    return seconds


def _check_launch(group, world_size, rank):
    """Refuse a world size or rank that differs from the MPI launch, naming the command that would give it."""
    problem = None
    if world_size not in (-1, None) and world_size != group.size:
        problem = f"world_size={world_size} was asked for but MPI started {group.size} process(es)"
    elif rank not in (-1, None) and rank != group.rank:
        problem = f"rank={rank} was asked for but MPI gave this process rank {group.rank}"
    if problem:
        group.comm.Free()
        raise RuntimeError(f"init_process_group: {problem}. Ranks are the processes of an MPI launch: start the "
                           f"script with `mpiexec -n {world_size if world_size not in (-1, None) else 'N'} python "
                           f"script.py` (mpiexec from the `distributed` extra is next to the venv's python).")


def _abort_on_uncaught(exc_type, exc, tb):
    """sys.excepthook with several ranks: report, then abort the whole MPI job so no other rank waits forever."""
    group = _group
    previous = group.previous_excepthook if group is not None else None
    (previous or sys.__excepthook__)(exc_type, exc, tb)
    if group is None:
        return
    sys.stderr.write(f"[tinygrad_lite.distributed] uncaught {exc_type.__name__} on rank {group.rank} of "
                     f"{group.size}: aborting the MPI job so that the other ranks do not hang\n")
    sys.stderr.flush()
    sys.stdout.flush()
    time.sleep(_ABORT_GRACE)  # mpiexec forwards output asynchronously: an immediate abort can lose the traceback
    group.mpi.COMM_WORLD.Abort(1)


def destroy_process_group(group=None):
    """Leave the process group (MPI itself stays up until exit, as mpi4py finalizes it then)."""
    global _group
    g = current()
    if g.previous_excepthook is not None and sys.excepthook is _abort_on_uncaught:
        sys.excepthook = g.previous_excepthook
    g.comm.Free()
    _group = None


def is_initialized():
    return _group is not None


def current():
    """The default group; PyTorch's ValueError when `init_process_group` was not called."""
    if _group is None:
        raise ValueError(_NOT_INITIALIZED)
    return _group


def get_rank(group=None):
    """This process's rank in [0, world size)."""
    return current().rank


def get_world_size(group=None):
    """The number of ranks."""
    return current().size


def get_backend(group=None):
    current()
    return "mpi"


SPIN_SECONDS = 0.01


def wait(requests, what):
    """Wait for MPI requests, polling until the group's deadline; past it raise (the excepthook then aborts the
    job). Polling also drives MPI's progress for requests started earlier."""
    g = current()
    MPI = g.mpi
    start = time.monotonic()
    deadline = start + g.timeout
    pause = 0.0
    while not MPI.Request.Testall(requests):
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(
                f"{what} timed out after {g.timeout:g} s on rank {g.rank} of {g.size}: another rank failed, exited "
                f"or did not reach the same collective (every rank must call the collectives in the same order)")
        if now - start > SPIN_SECONDS:  # a collective of one step completes within milliseconds: spin first (a
            time.sleep(pause)           # sleep costs ~0.1 ms of wake-up latency), then back off to 1 ms polls
            pause = min(pause * 2 or 1e-5, 1e-3)
