"""Runs one benchmark case in this (fresh) process and prints its result as one JSON line.

Invoked by the harness as ``python -m benchmarks.runner '<json spec>'`` with the thread environment
variables already set, so NumPy's BLAS picks them up at import. Never raises: failures are reported as
``{"error": "..."}`` so the harness can go on.
"""
import json
import sys
import time
import traceback

MARKER = "BENCH_RESULT "
IMPLS = {"tinygrad_lite": "impl_tl", "torch": "impl_torch", "numpy": "impl_numpy"}


def _status_kb(field):
    """A field of /proc/self/status in kB (VmRSS: current resident set, VmHWM: its peak), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _mb(kb):
    return None if kb is None else kb / 1024.0


def _median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def _time_steps(case, w, first_time):
    samples = [first_time] if w["warmup"] == 0 else []
    for _ in range(w["warmup"]):
        case.step()
    spent = sum(samples)
    while len(samples) < w["min_reps"] or spent < w["min_time"]:
        t0 = time.perf_counter()
        case.step()
        dt = time.perf_counter() - t0
        samples.append(dt)
        spent += dt
        if len(samples) >= 100_000:
            break
    return samples


def run(spec):
    import importlib

    from . import workloads

    fw, wid, params, threads = spec["framework"], spec["workload"], spec["params"], spec["threads"]
    w = spec["timing"]
    t_import = time.perf_counter()
    impl = importlib.import_module(f"benchmarks.{IMPLS[fw]}")
    import_s = time.perf_counter() - t_import
    impl.set_threads(1 if threads == "1" else None)
    data = workloads.make_data(wid, params)
    base_rss = _status_kb("VmRSS")
    case = impl.build(wid, data, params)
    out = {"import_s": import_s, "base_rss_mb": _mb(base_rss)}

    if wid == "W6":
        mark_rss = t_mark = None
        for s in range(1, params["steps"] + 1):
            case.step()
            if s == 1:
                loss, grad = case.check()
            if s == params["mark"]:
                mark_rss = _status_kb("VmRSS")
                t_mark = time.perf_counter()
        end_rss, peak = _status_kb("VmRSS"), _status_kb("VmHWM")
        per_step = (time.perf_counter() - t_mark) / (params["steps"] - params["mark"])
        out["metrics"] = {"peak_rss_mb": _mb(peak),
                          "growth_mb": None if end_rss is None else (end_rss - mark_rss) / 1024.0}
        out["ms_per_step"] = per_step * 1e3
        out["rss_at_mark_mb"], out["rss_at_end_mb"] = _mb(mark_rss), _mb(end_rss)
    else:
        t0 = time.perf_counter()
        case.step()
        first_time = time.perf_counter() - t0
        loss, grad = case.check()
        samples = _time_steps(case, w, first_time)
        med = _median(samples)
        if wid in ("W1", "W5"):
            out["metrics"] = {"us_per_op": med / params["n_ops"] * 1e6}
        elif wid == "W4":
            out["metrics"] = {"ms_per_iter": med * 1e3}
        else:
            out["metrics"] = {"ms_per_step": med * 1e3}
        out["reps"] = len(samples)
        out["first_step_s"] = first_time
        out["peak_rss_mb"] = _mb(_status_kb("VmHWM"))
    out["check"] = {"loss": loss, "grad_abs_sum": grad}
    note = getattr(impl, "NOTE", None)
    if note:
        out["note"] = note
    return out


def main():
    spec = json.loads(sys.argv[1])
    try:
        result = run(spec)
    except BaseException as e:  # report, never crash the harness
        tb = traceback.extract_tb(e.__traceback__)
        where = f" at {tb[-1].filename.split('/')[-1]}:{tb[-1].lineno}" if tb else ""
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        result = {"error": f"{type(e).__name__}: {msg}{where}"[:300]}
        if spec.get("verbose"):
            traceback.print_exc()
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
