"""python -m benchmarks.ddp [--steps N] [--repeats R] [--write]: data-parallel W2 over MPI (issue 17) and the
all-reduce bandwidth.

W2 (MLP 784-256-256-10 ReLU, CE, SGD; the harness's data and impl_tl's model) at a fixed global batch of 128:
one process on all 128 samples, and DistributedDataParallel on 2 ranks with 64 samples each (rank r takes rows
64r..64r+63 of the same batch, so both runs compute the same averaged gradient; checked after the first step).
Scaling efficiency = (1-rank step) / (N x N-rank step); 100% is perfect strong scaling. The 2-rank run also times
the same step under `no_sync()` (no gradient averaging: the compute alone on 2 busy cores) and all-reduces a 10 MB
float32 gradient (2,500,000 elements) with tl.distributed.all_reduce and with mpi4py's Allreduce directly.

Each measurement is a fresh `mpiexec -n N python -m benchmarks.ddp --worker ...` (the mpiexec beside
sys.executable, from the `mpich` wheel of the `distributed` extra); BLAS runs one thread per rank, as in the
harness's threads=1 mode, so 1 rank uses one core and 2 ranks use two. The runs alternate 1, 2, 1, 2, ... and each
cell is the median over the repeats of each run's median step (min..max). Prints a markdown table; --write also
saves it to benchmarks/results/ddp.md. Needs mpi4py and an MPI: pip install -e '.[distributed]'.
"""
import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
import time

from .harness import process_env, run_process
from .runner import MARKER, _median

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
GLOBAL_BATCH = 128
ALLREDUCE_ELEMENTS = 2_500_000  # float32: 10 MB (10^7 bytes)


# ---------------------------------------------------------------------------------------------------- worker side

def _w2_case(rank, world, ddp):
    """impl_tl's W2 case on this rank's share of the global batch; wrapped in DDP when `ddp`."""
    import tinygrad_lite as tl

    from . import impl_tl
    from .workloads import WORKLOADS, make_data

    params = dict(WORKLOADS["W2"].params, batch=GLOBAL_BATCH)
    data = make_data("W2", params)
    per = GLOBAL_BATCH // world
    data["x"], data["y"] = data["x"][rank * per:(rank + 1) * per], data["y"][rank * per:(rank + 1) * per]
    case = impl_tl.build("W2", data, params)
    if ddp:
        case.model = tl.nn.parallel.DistributedDataParallel(case.model)  # same parameter tensors: opt unchanged
    return case


def _time_steps(case, steps, warmup, barrier, context=None):
    """Per-step wall times (s) after `warmup` steps; a barrier first so the ranks start together."""
    import contextlib

    context = context or contextlib.nullcontext
    with context():
        for _ in range(warmup):
            case.step()
        barrier()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            case.step()
            times.append(time.perf_counter() - t0)
    return times


def _allreduce_times(reps, comm, MPI, elements=ALLREDUCE_ELEMENTS):
    """Median seconds of a float32 all-reduce (10 MB by default): tl.distributed.all_reduce and mpi4py's
    Allreduce."""
    import numpy as np

    import tinygrad_lite as tl

    t = tl.ones(elements, dtype=tl.float32)
    arr = np.ones(elements, dtype=np.float32)
    out = {}
    for name, fn in (("tl", lambda: tl.distributed.all_reduce(t)),
                     ("mpi4py", lambda: comm.Allreduce(MPI.IN_PLACE, arr, op=MPI.SUM))):
        samples = []
        for i in range(reps + 3):
            comm.Barrier()
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            if i >= 3:
                samples.append(comm.allreduce(dt, op=MPI.MAX))  # the slower rank's time
        out[name] = _median(samples)
    return out


def worker(args):
    """One MPI run: prints MARKER + JSON from rank 0."""
    import tinygrad_lite as tl

    tl.distributed.init_process_group(backend="mpi")
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, world = tl.distributed.get_rank(), tl.distributed.get_world_size()
    out = dict(world=world)

    def report(times):  # per step, the slower rank's time; then the median
        return _median([max(ts) for ts in zip(*comm.allgather(times))])

    if world == 1:
        plain = _w2_case(0, 1, ddp=False)
        plain.step()
        out["first_grad_abs_sum"] = plain.check()[1]
        out["plain_step_s"] = report(_time_steps(plain, args.steps, args.warmup, comm.Barrier))
    ddp = _w2_case(rank, world, ddp=True)
    ddp.step()
    grads = comm.allgather(ddp.check()[1])
    out["ddp_first_grad_abs_sum"] = grads[0]
    out["replicas_agree"] = all(g == grads[0] for g in grads)
    out["ddp_step_s"] = report(_time_steps(ddp, args.steps, args.warmup, comm.Barrier))
    if world > 1:
        out["no_sync_step_s"] = report(_time_steps(ddp, args.steps, args.warmup, comm.Barrier,
                                                   context=ddp.model.no_sync))
        out["allreduce_10mb_s"] = _allreduce_times(args.allreduce_reps, comm, MPI)
        n_grad = sum(q.numel() for q in ddp.model.parameters())
        out["grad_elements"] = n_grad
        out["allreduce_grad_s"] = _allreduce_times(5 * args.allreduce_reps, comm, MPI, n_grad)
    if rank == 0:
        sys.stdout.write(MARKER + json.dumps(out) + "\n")
        sys.stdout.flush()
    tl.distributed.destroy_process_group()


# ---------------------------------------------------------------------------------------------------- launcher side

def find_mpiexec():
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else shutil.which("mpiexec")


def launch(mpiexec, n, args, threads="1"):
    """Run the worker on n ranks; returns its JSON dict (or {"error": ...})."""
    cmd = [mpiexec, "-n", str(n), sys.executable, "-m", "benchmarks.ddp", "--worker", "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--allreduce-reps", str(args.allreduce_reps)]
    return run_process(cmd, process_env(threads), args.timeout, f"{n} ranks: ")


def _cell(values, scale=1e3, fmt="{:.2f}"):
    if not values:
        return "-"
    med = _median(values)
    text = fmt.format(med * scale)
    low, high = fmt.format(min(values) * scale), fmt.format(max(values) * scale)
    return text if len(values) == 1 else f"{text} ({low}..{high})"


def summarise(runs1, runs2):
    """The markdown table (and a dict of the headline figures) from the runs' dicts."""
    t1 = [r["plain_step_s"] for r in runs1]
    d1 = [r["ddp_step_s"] for r in runs1]
    t2 = [r["ddp_step_s"] for r in runs2]
    ns = [r["no_sync_step_s"] for r in runs2]
    eff = [a / (2 * b) for a, b in zip(t1, t2)]  # paired by repeat: run i of 1 rank right before run i of 2
    bw_tl = [ALLREDUCE_ELEMENTS * 4 / r["allreduce_10mb_s"]["tl"] for r in runs2]
    bw_mpi = [ALLREDUCE_ELEMENTS * 4 / r["allreduce_10mb_s"]["mpi4py"] for r in runs2]
    at_tl = [r["allreduce_10mb_s"]["tl"] for r in runs2]
    at_mpi = [r["allreduce_10mb_s"]["mpi4py"] for r in runs2]
    g_tl = [r["allreduce_grad_s"]["tl"] for r in runs2]
    g_mpi = [r["allreduce_grad_s"]["mpi4py"] for r in runs2]
    n_grad = runs2[0]["grad_elements"]
    ref = runs1[0]["first_grad_abs_sum"]
    worst = max(abs(r["ddp_first_grad_abs_sum"] - ref) / ref for r in runs1 + runs2)
    agree = all(r["replicas_agree"] for r in runs2)
    check = "ok" if worst < 1e-5 and agree else f"MISMATCH (rel. {worst:.1e}, replicas agree: {agree})"
    rows = [
        ("W2 step, 1 process, batch 128 (no DDP)", "ms/step", _cell(t1), "baseline"),
        ("W2 step, DDP on 1 rank, batch 128", "ms/step", _cell(d1), f"{_median(d1) / _median(t1):.2f}x baseline"),
        ("W2 step, DDP on 2 ranks, batch 64 each", "ms/step", _cell(t2),
         f"speed-up {_median(t1) / _median(t2):.2f}x, efficiency {_median(eff):.0%}"),
        ("W2 step, 2 ranks under no_sync() (compute only)", "ms/step", _cell(ns),
         f"gradient averaging adds {(_median(t2) - _median(ns)) * 1e3:.2f} ms/step"),
        ("all-reduce 10 MB float32, tl.distributed.all_reduce, 2 ranks", "MB/s", _cell(bw_tl, 1e-6, "{:.0f}"),
         f"{_median(at_tl) * 1e3:.2f} ms"),
        ("all-reduce 10 MB float32, mpi4py Allreduce, 2 ranks", "MB/s", _cell(bw_mpi, 1e-6, "{:.0f}"),
         f"{_median(at_mpi) * 1e3:.2f} ms"),
        (f"all-reduce of W2's gradient ({n_grad:,} float32, {n_grad * 4 / 1e6:.2f} MB), tl.distributed.all_reduce",
         "ms", _cell(g_tl), f"{n_grad * 4 / _median(g_tl) / 1e6:.0f} MB/s"),
        (f"all-reduce of W2's gradient ({n_grad:,} float32, {n_grad * 4 / 1e6:.2f} MB), mpi4py Allreduce", "ms",
         _cell(g_mpi), f"{n_grad * 4 / _median(g_mpi) / 1e6:.0f} MB/s"),
    ]
    lines = ["| Measurement | Unit | Median (min..max) | Note |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    figures = dict(step_1_ms=_median(t1) * 1e3, step_ddp1_ms=_median(d1) * 1e3, step_2_ms=_median(t2) * 1e3,
                   no_sync_2_ms=_median(ns) * 1e3, efficiency=_median(eff), bandwidth_tl_mb_s=_median(bw_tl) / 1e6,
                   bandwidth_mpi4py_mb_s=_median(bw_mpi) / 1e6, grad_allreduce_tl_ms=_median(g_tl) * 1e3,
                   grad_allreduce_mpi4py_ms=_median(g_mpi) * 1e3, check=check)
    return "\n".join(lines), figures


def _header(args, load):
    import numpy as np

    try:
        from mpi4py import MPI
        mpi = MPI.Get_library_version().strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001 - only for the header line
        mpi = f"MPI unknown ({type(e).__name__})"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return (f"<!-- {stamp}, python {platform.python_version()}, numpy {np.__version__}, {mpi}, {os.cpu_count()} "
            f"CPUs, load average {load:.2f} at start -->\n"
            f"### DDP: W2 at global batch {GLOBAL_BATCH}, 1 vs 2 MPI ranks ({args.repeats} repeats of "
            f"{args.steps} timed steps)\n\n")


FOOTNOTE = ("\nStep: the median over the timed steps of the slower rank's step time (forward, backward with the "
            "bucketed gradient all-reduce, SGD step), one BLAS thread per rank; cells are medians over the fresh "
            "`mpiexec` runs (min..max). Efficiency = 1-process step / (2 x 2-rank step), paired by repeat. no_sync(): "
            "the same 2-rank step without gradient averaging. All-reduce: 2,500,000 float32 (10^7 bytes) summed in "
            "place, bandwidth = bytes / time of the slower rank (for 2 ranks, algorithm and bus bandwidth are equal). "
            "First-step check: the averaged gradient of the first layer on 2 ranks matches 1 process.\n")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.ddp", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200, help="timed steps per run (default 200)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps before timing (default 10)")
    p.add_argument("--repeats", type=int, default=3, help="fresh mpiexec runs per rank count (default 3)")
    p.add_argument("--allreduce-reps", type=int, default=20, help="timed 10 MB all-reduces per run (default 20)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before a run counts as failed")
    p.add_argument("--write", action="store_true", help="also write the table to benchmarks/results/ddp.md")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        worker(args)
        return 0

    mpiexec = find_mpiexec() if importlib.util.find_spec("mpi4py") is not None else None
    if mpiexec is None:
        sys.stderr.write("benchmarks.ddp needs mpi4py and mpiexec: pip install -e '.[distributed]'\n")
        return 2
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:
        sys.stderr.write(f"warning: load average {load:.2f} before start; other processes will distort the "
                         "timings (the 2-rank run most, as it needs both cores)\n")
    runs = {1: [], 2: []}
    t_start = time.perf_counter()
    for r in range(args.repeats):
        for n in (1, 2):
            result = launch(mpiexec, n, args)
            if "error" in result:
                sys.stderr.write(f"error: {result['error']}\n")
                return 1
            runs[n].append(result)
            sys.stderr.write(f"[{time.perf_counter() - t_start:5.0f}s] r{r} {n} rank{'s' if n > 1 else ''}: "
                             f"DDP step {result['ddp_step_s'] * 1e3:.2f} ms\n")
    table, figures = summarise(runs[1], runs[2])
    md = _header(args, load) + table + "\n" + FOOTNOTE + f"\nFirst-step check: {figures['check']}.\n"
    sys.stdout.write(md)
    if args.write:
        os.makedirs(RESULTS, exist_ok=True)
        path = os.path.join(RESULTS, "ddp.md")
        with open(path, "w") as f:
            f.write(md)
        sys.stdout.write(f"\nwrote {os.path.relpath(path)} ({time.perf_counter() - t_start:.0f} s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
