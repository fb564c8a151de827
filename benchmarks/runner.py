"""Runs one benchmark case in this (fresh) process and prints its result as one JSON line.

Invoked by the harness as ``python -m benchmarks.runner '<json spec>'`` with the thread environment
variables already set, so NumPy's BLAS picks them up at import. Never raises: failures are reported as
``{"error": "..."}`` so the harness can go on.

Compiled frameworks (an impl module with ``compile_step``) run an eager copy of the case first to get this
process's median eager step, then the compiled case: call 1 is the first step (checked as for the others), the
warm-up goes on until a call replays (the capture), and only replays are expected in the timed loop.
"""
import json
import sys
import time
import traceback

MARKER = "BENCH_RESULT "
IMPLS = {"tinygrad_lite": "impl_tl", "torch": "impl_torch", "numpy": "impl_numpy",
         "tinygrad_lite-compiled": "impl_tl_compiled", "torch-compile": "impl_torch_compile"}
MAX_CAPTURE = 10  # calls before giving up on a replay (tl.compile records at most 8 variants by default)


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


def _timed(case, w, samples):
    """Time steps until there are min_reps samples and min_time seconds (the given samples count)."""
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


class CompiledCase:
    """An eager case whose step() calls the compiled run(*args); check() reads the eager case's state."""

    def __init__(self, case, impl):
        self.case, self.args, self.impl = case, case.args, impl
        self.fn = impl.compile_step(case)

    def step(self):
        return self.fn(*self.args)

    def check(self):
        return self.case.check()

    def stats(self):
        return self.impl.stats(self.fn)


def _eager_step_s(impl, wid, data, params, w):
    """Median eager step of this process: a separate case of the same impl (the compiled one starts fresh)."""
    ref = impl.build(wid, data, params)
    ref.step()
    return _median(_timed(ref, dict(min_reps=3, min_time=min(w["min_time"], 0.1)), []))


def _capture(case, first_time, fixed_calls):
    """Calls the compiled step until one replays. tinygrad_lite: a replay is a call that raises
    stats['replays']; torch.compile counts none, so calls 1..fixed_calls are taken as the capture. Returns the
    wall times of the calls up to the first replay, that one included (it turns the plan into code), and whether
    one replayed."""
    times = [first_time]
    while len(times) < MAX_CAPTURE:
        before = case.stats()
        t0 = time.perf_counter()
        case.step()
        dt = time.perf_counter() - t0
        replayed = len(times) >= fixed_calls if before is None else case.stats()["replays"] > before["replays"]
        times.append(dt)
        if replayed:
            return times, True
    return times, False


def _delta(before, after, calls):
    """tl.compile's counts over a span of calls: a table must not show eager fallbacks as compiled times."""
    if before is None:
        return None
    d = {k: after[k] - before[k] for k in ("replays", "eager_calls", "traces")}
    return dict(d, calls=calls, last_reason=after["last_reason"])


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
    compiled = hasattr(impl, "compile_step")
    out = {"import_s": import_s}
    if compiled and wid != "W6":  # W6 measures memory: no second case there
        out["eager_step_s"] = _eager_step_s(impl, wid, data, params, w)
    base_rss = _status_kb("VmRSS")
    case = impl.build(wid, data, params)
    if compiled:
        case = CompiledCase(case, impl)
    out["base_rss_mb"] = _mb(base_rss)

    if wid == "W6":
        mark_rss = t_mark = before = None
        for s in range(1, params["steps"] + 1):
            case.step()
            if s == 1:
                loss, grad = case.check()
            if s == params["mark"]:
                mark_rss = _status_kb("VmRSS")
                t_mark = time.perf_counter()
                before = case.stats() if compiled else None
        end_rss, peak = _status_kb("VmRSS"), _status_kb("VmHWM")
        per_step = (time.perf_counter() - t_mark) / (params["steps"] - params["mark"])
        out["metrics"] = {"peak_rss_mb": _mb(peak),
                          "growth_mb": None if end_rss is None else (end_rss - mark_rss) / 1024.0}
        out["ms_per_step"] = per_step * 1e3
        out["rss_at_mark_mb"], out["rss_at_end_mb"] = _mb(mark_rss), _mb(end_rss)
        if compiled:
            out["timed_stats"] = _delta(before, case.stats(), params["steps"] - params["mark"])
    else:
        t0 = time.perf_counter()
        case.step()
        first_time = time.perf_counter() - t0
        loss, grad = case.check()
        warmed = 0
        if compiled:
            times, replayed = _capture(case, first_time, getattr(impl, "CAPTURE_CALLS", None))
            warmed = len(times) - 1  # calls after call 1, the first replay included
            out["capture"] = dict(calls=len(times), s=sum(times), replayed=replayed,
                                  eager_steps=sum(times) / out["eager_step_s"] if replayed else None)
            for _ in range(getattr(impl, "WARM_REPLAYS", 0)):  # past the interpreted replays: timing sees the
                case.step()                                      # steady state, as torch.compile's warm-up does
                warmed += 1
        for _ in range(w["warmup"] - warmed):
            case.step()
        before = case.stats() if compiled else None
        samples = _timed(case, w, [first_time] if w["warmup"] == 0 and not compiled else [])
        if compiled:
            out["timed_stats"] = _delta(before, case.stats(), len(samples))
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
