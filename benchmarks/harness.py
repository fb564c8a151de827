"""Plans and runs the benchmark cases: each in a fresh subprocess, frameworks interleaved, several repeats."""
import importlib.util
import json
import os
import subprocess
import sys
import time

from .runner import MARKER
from .workloads import SCALING, SCALING_QUICK, WORKLOADS

FRAMEWORKS = ("tinygrad_lite", "torch", "numpy", "tinygrad_lite-compiled", "torch-compile")
LABELS = {"tinygrad_lite": "tinygrad_lite", "torch": "PyTorch", "numpy": "NumPy",
          "tinygrad_lite-compiled": "tinygrad_lite compiled", "torch-compile": "torch.compile"}
MODULES = {"tinygrad_lite": "tinygrad_lite", "torch": "torch", "numpy": "numpy",
           "tinygrad_lite-compiled": "tinygrad_lite", "torch-compile": "torch"}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS")
# glibc returns freed multi-MB blocks to the kernel, so every step page-faults its temporaries afresh;
# --malloc-keep sets these for every framework alike to measure without that cost.
MALLOC_KEEP = {"MALLOC_MMAP_THRESHOLD_": str(1 << 28), "MALLOC_TRIM_THRESHOLD_": str(1 << 28),
               "MALLOC_TOP_PAD_": str(1 << 26)}
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def available(fw):
    """None when the framework can be imported by the runner, else a short reason."""
    try:
        found = importlib.util.find_spec(MODULES[fw]) is not None
    except (ImportError, ValueError):
        found = False
    return None if found else "not installed"


def case_key(wid, params, threads):
    return f"{wid}|{json.dumps(params, sort_keys=True)}|{threads}"


def build_plan(args):
    """The ordered list of runs: repeat-major, so each framework's samples spread over the whole run, and
    within a case the frameworks run back to back (A B C A B C ...), their order rotated per repeat."""
    if args.scaling:
        cases = SCALING_QUICK if args.quick else SCALING
    else:
        cases = [(wid, dict(WORKLOADS[wid].quick if args.quick else WORKLOADS[wid].params))
                 for wid in args.workloads]
    threads = {"both": ["1", "default"], "1": ["1"], "default": ["default"]}[args.threads]
    fws = [fw for fw in args.frameworks if available(fw) is None]
    unique = list({case_key(wid, params, ""): (wid, params) for wid, params in cases}.values())
    plan = []
    for r in range(args.repeats):
        order = fws[r % len(fws):] + fws[:r % len(fws)] if fws else []
        for wid, params in unique:  # a case listed in two sweeps runs once and shows in both
            for th in threads:
                for fw in order:
                    if not skipped(fw, params, args):
                        plan.append(dict(repeat=r, workload=wid, params=params, threads=th, framework=fw))
    return cases, threads, plan


SLOW_COMPILE_OPS = 10_000


def skipped(fw, params, args):
    """torch.compile of a chain longer than SLOW_COMPILE_OPS operations (W5's 100,000) is left out unless
    --slow-compile: on this machine it compiled for 15 minutes a process and then crashed (a segmentation fault), so
    a `make bench` would have spent hours there; its cells show '-'."""
    return fw == "torch-compile" and params.get("n_ops", 0) > SLOW_COMPILE_OPS and not args.slow_compile


def _timing(wid, args):
    w = WORKLOADS[wid]
    t = dict(min_time=w.min_time, min_reps=w.min_reps, warmup=w.warmup)
    if args.quick:
        t = dict(min_time=min(w.min_time, 0.03), min_reps=min(w.min_reps, 2), warmup=min(w.warmup, 1))
    if args.min_time is not None and w.min_time > 0:
        t["min_time"] = args.min_time
    return t


def process_env(threads, extra=None):
    """The environment of a benchmark process: the thread variables set to 1 (threads "1") or left to the
    libraries' defaults, the repository on PYTHONPATH."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env.pop(var, None)
    if threads == "1":
        env.update({var: "1" for var in THREAD_VARS})
    env.update(extra or {})
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_process(cmd, env, timeout, what, verbose=False):
    """Run a benchmark process that prints its result as MARKER + JSON; returns that dict, or {"error": ...}
    naming `what` (a timeout, or the exit status and the last line of stderr)."""
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"{what}timeout after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            if verbose and proc.stderr.strip():
                sys.stderr.write(proc.stderr)
            return json.loads(line[len(MARKER):])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"{what}process exited with {proc.returncode}: {tail}"[:300]}


def run_one(run, args):
    """Run one case in a fresh interpreter; returns the runner's dict (with "error" on any failure)."""
    env = process_env(run["threads"], MALLOC_KEEP if args.malloc_keep else None)
    spec = dict(run, timing=_timing(run["workload"], args), verbose=args.verbose)
    cmd = [sys.executable, "-m", "benchmarks.runner", json.dumps(spec)]
    return run_process(cmd, env, args.timeout, "", args.verbose)


def _describe(result):
    if "error" in result:
        return "error: " + result["error"]
    text = ", ".join(f"{k}={v:.4g}" for k, v in result["metrics"].items() if v is not None)
    cap, timed = result.get("capture"), result.get("timed_stats")
    if cap:
        text += f", capture {cap['s']:.3g} s in {cap['calls']} calls" + ("" if cap["replayed"] else " (no replay)")
    if timed:
        text += f", timed calls replayed {timed['replays']}/{timed['calls']}"
    return text


def execute(args):
    cases, threads, plan = build_plan(args)
    results = {}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5 and not args.silent:
        sys.stderr.write(f"warning: load average {load:.2f} before start; other processes will distort the "
                         "timings (default-thread cases most)\n")
    t_start = time.perf_counter()
    for n, run in enumerate(plan, 1):
        result = run_one(run, args)
        key = case_key(run["workload"], run["params"], run["threads"])
        results.setdefault(key, {}).setdefault(run["framework"], []).append(dict(result, repeat=run["repeat"]))
        if not args.silent:
            sys.stderr.write(f"[{n}/{len(plan)} {time.perf_counter() - t_start:5.0f}s] r{run['repeat']} "
                             f"{run['workload']} {_short(run['params'])} threads={run['threads']} "
                             f"{run['framework']}: {_describe(result)}\n")
            sys.stderr.flush()
    missing = {fw: available(fw) for fw in args.frameworks if available(fw) is not None}
    return dict(cases=cases, threads=threads, results=results, missing=missing, loadavg_start=load,
                wall_s=time.perf_counter() - t_start)


def _short(params):
    return ",".join(f"{k}={v}" for k, v in params.items())
