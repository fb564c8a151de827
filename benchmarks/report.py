"""Summaries (medians, min..max, medians of paired ratios), the first-step check, markdown and JSON."""
import json
import os
import platform
import subprocess
import sys
import time

from .harness import LABELS, REPO_ROOT, case_key
from .workloads import WORKLOADS

OURS = "tinygrad_lite"
COMPILED = "tinygrad_lite-compiled"
TORCH_COMPILE = "torch-compile"
LOSS_TOL = dict(rtol=1e-3, atol=1e-5)
GRAD_TOL = dict(rtol=5e-3, atol=1e-6)


def _median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def _ok(runs):
    return [r for r in runs if "error" not in r]


def _spread(vals):
    return dict(median=_median(vals), min=min(vals), max=max(vals), n=len(vals)) if vals else None


def summarize(runs, metric):
    return _spread([r["metrics"][metric] for r in _ok(runs) if r["metrics"].get(metric) is not None])


def capture_summary(runs):
    """A compiled framework's capture cost in eager steps of the same process (over the runs that replayed)."""
    caps = [r["capture"] for r in _ok(runs) if r.get("capture")]
    if not caps:
        return None
    return dict(eager_steps=_spread([c["eager_steps"] for c in caps if c["replayed"]]),
                calls=sorted({c["calls"] for c in caps}), replayed=sum(c["replayed"] for c in caps), runs=len(caps))


def timed_summary(runs):
    """tl.compile's counts over the timed calls of all runs, with the last reason a timed call did not replay."""
    ts = [r["timed_stats"] for r in _ok(runs) if r.get("timed_stats")]
    if not ts:
        return None
    out = {k: sum(t[k] for t in ts) for k in ("calls", "replays", "eager_calls", "traces")}
    out["last_reason"] = next((t["last_reason"] for t in reversed(ts) if t["replays"] < t["calls"]), None)
    return out


def paired_ratio(ours, ref, metric):
    """Median over repeats of ours/ref, pairing the runs of the same repeat (they ran back to back)."""
    by_rep = {r["repeat"]: r["metrics"].get(metric) for r in _ok(ref)}
    ratios = [r["metrics"][metric] / by_rep[r["repeat"]] for r in _ok(ours)
              if r["metrics"].get(metric) is not None and by_rep.get(r["repeat"])]
    return _median(ratios) if ratios else None


def _close(a, b, rtol, atol):
    return abs(a - b) <= atol + rtol * abs(b)


def first_step_check(per_fw):
    """Compare every framework's first-step loss and gradient checksum with NumPy's (else PyTorch's)."""
    firsts = {fw: _ok(runs)[0]["check"] for fw, runs in per_fw.items() if _ok(runs)}
    ref = "numpy" if "numpy" in firsts else ("torch" if "torch" in firsts else None)
    if ref is None or len(firsts) < 2:
        return dict(status="n/a", reference=ref, values=firsts)
    bad = []
    for fw, chk in firsts.items():
        if fw == ref:
            continue
        if not _close(chk["loss"], firsts[ref]["loss"], **LOSS_TOL):
            bad.append(f"{LABELS[fw]} loss {chk['loss']:.6g} vs {LABELS[ref]} {firsts[ref]['loss']:.6g}")
        if not _close(chk["grad_abs_sum"], firsts[ref]["grad_abs_sum"], **GRAD_TOL):
            bad.append(f"{LABELS[fw]} grad {chk['grad_abs_sum']:.6g} vs {LABELS[ref]} "
                       f"{firsts[ref]['grad_abs_sum']:.6g}")
    return dict(status="ok" if not bad else "MISMATCH: " + "; ".join(bad), reference=ref, values=firsts)


def _num(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 0.1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _spread_text(s):
    return _num(s["median"]) if s["n"] == 1 else f"{_num(s['median'])} ({_num(s['min'])}..{_num(s['max'])})"


def _cell(runs, metric, missing):
    if missing:
        return missing
    if not runs:
        return "-"
    s = summarize(runs, metric)
    failed = len(runs) - len(_ok(runs))
    if s is None:
        err = next((r["error"] for r in runs if "error" in r), "no value")
        err = err.replace("|", "/").replace("\n", " ")
        return "error: " + (err if len(err) <= 90 else err[:87] + "...")
    return _spread_text(s) + (f" [{failed}/{len(runs)} failed]" if failed else "")


def _ratio_cell(r):
    return "-" if r is None else f"{r:.2f}x"


def _capture_cell(c):
    if c is None:
        return "-"
    calls = "/".join(map(str, c["calls"])) + (" call" if c["calls"] == [1] else " calls")
    if not c["replayed"]:
        return f"no replay in {calls}"
    return _spread_text(c["eager_steps"]) + f" ({calls})" + (f" [{c['runs'] - c['replayed']} no replay]"
                                                              if c["replayed"] < c["runs"] else "")


def _ratios(ours, per_fw, refs, ratio_to, metric):
    return {ref: paired_ratio(ours, per_fw.get(ref, []), metric) for ref in refs if ratio_to in ("all", ref)}


def _case_label(wid, params, scaling):
    if not scaling:
        return wid
    if wid == "W5":
        return f"W5 n_ops={params['n_ops']:,}"
    return f"W2 batch={params['batch']} width={params['width']}"


def build_rows(run_out, frameworks, scaling):
    """One entry per (case, metric, threads) with cells, ratios and the first-step check."""
    rows = []
    for wid, params in run_out["cases"]:
        for metric, unit, ratio_to in WORKLOADS[wid].metrics:
            for th in run_out["threads"]:
                per_fw = run_out["results"].get(case_key(wid, params, th), {})
                ours = per_fw.get(OURS, [])
                row = dict(workload=wid, label=_case_label(wid, params, scaling), params=params, threads=th,
                           metric=metric, unit=unit, check=first_step_check(per_fw),
                           cells={fw: _cell(per_fw.get(fw, []), metric, run_out["missing"].get(fw))
                                  for fw in frameworks},
                           summary={fw: summarize(per_fw.get(fw, []), metric) for fw in frameworks},
                           ratios=_ratios(ours, per_fw, ("torch", "numpy"), ratio_to, metric),
                           compiled_ratios=_ratios(per_fw.get(COMPILED, []), per_fw, ("numpy", "torch", TORCH_COMPILE),
                                                   ratio_to, metric),
                           capture={fw: capture_summary(per_fw.get(fw, [])) for fw in (COMPILED, TORCH_COMPILE)},
                           compiled_timed=timed_summary(per_fw.get(COMPILED, [])), runs=per_fw)
                rows.append(row)
    return rows


def _footnote(row, footnotes):
    """Marks a compiled cell whose timed calls did not all replay (an eager fallback is no compiled time)."""
    t = row["compiled_timed"]
    if not t or t["replays"] == t["calls"]:
        return ""
    text = (f"{row['label']} threads={row['threads']}: {t['calls'] - t['replays']} of {t['calls']} timed calls of "
            f"tinygrad_lite compiled did not replay ({t['eager_calls']} ran eagerly, {t['traces']} traced); "
            f"last_reason: {t['last_reason']}")
    footnotes.setdefault(text, len(footnotes) + 1)
    return f" [{footnotes[text]}]"


def markdown(rows, frameworks, title):
    comp, tc = COMPILED in frameworks, TORCH_COMPILE in frameworks
    head = ["Workload", "Metric", "Threads"] + [LABELS[fw] for fw in frameworks] + ["ours/PyTorch", "ours/NumPy"]
    if comp:
        head += ["compiled/NumPy", "compiled/PyTorch", "compiled/torch.compile", "capture (eager steps)",
                 "timed calls replayed"]
    if tc:
        head += ["torch.compile capture (eager steps)"]
    lines = [f"### {title}", "", "| " + " | ".join(head + ["first-step check"]) + " |", "|" + "---|" * (len(head) + 1)]
    footnotes = {}
    for row in rows:
        marked = dict(row["cells"])
        if comp and not marked[COMPILED].startswith("error"):
            marked[COMPILED] += _footnote(row, footnotes)
        cells = [row["label"], row["unit"], row["threads"]] + [marked[fw] for fw in frameworks]
        cells += [_ratio_cell(row["ratios"].get("torch")), _ratio_cell(row["ratios"].get("numpy"))]
        if comp:
            t = row["compiled_timed"]
            cells += [_ratio_cell(row["compiled_ratios"].get(ref)) for ref in ("numpy", "torch", TORCH_COMPILE)]
            cells += [_capture_cell(row["capture"][COMPILED]), f"{t['replays']}/{t['calls']}" if t else "-"]
        if tc:
            cells.append(_capture_cell(row["capture"][TORCH_COMPILE]))
        lines.append("| " + " | ".join(cells + [row["check"]["status"]]) + " |")
    notes = sorted({f"{row['label']} {LABELS[fw]}: {r['note']}" for row in rows for fw, runs in row["runs"].items()
                    for r in runs if r.get("note")})
    lines.append("")
    if notes:
        lines += ["Notes: " + "; ".join(notes) + ".", ""]
    lines += [f"[{n}] {text}" for text, n in footnotes.items()] + ([""] if footnotes else [])
    lines.append("Cells: median over fresh-process repeats (min..max). Ratios: median of per-repeat ratios "
                 "(runs paired back to back); below 1.00x means tinygrad_lite is faster/smaller.")
    if comp or tc:
        lines.append(COMPILED_LEGEND)
    return "\n".join(lines) + "\n"


COMPILED_LEGEND = (
    "Compiled: tinygrad_lite compiled is impl_tl's step in tl.compile, torch.compile impl_torch's step in "
    "torch.compile (default backend); both compile in warm-up, and compiled/X is tinygrad_lite compiled over X. "
    "Capture (eager steps): wall time of the compiled step's calls up to and including its first replay (tl.compile: "
    "counted by stats['replays']: call 1 is recorded, the first replays run the plan step by step, and the 9th "
    "replay turns it into straight-line code, a one-off cost outside this column; torch.compile: calls 1-3), "
    "divided by the median eager step of the same process (the same framework's eager "
    "step, timed just before on a separate copy of the case); no replay in N calls: none of the first N did. "
    "Timed calls replayed: tl.compile's stats['replays'] over the timed calls of all repeats (W6: steps after the "
    "mark); a compiled cell marked [n] includes calls that did not replay.")


def _loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def _versions():
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("numpy", "torch", "tinygrad_lite"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    try:
        out["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                                           capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    return out


def write_outputs(run_out, rows, md, args, json_path):
    meta = dict(date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), argv=sys.argv[1:],
                platform=platform.platform(), cpu_count=os.cpu_count(), repeats=args.repeats,
                quick=args.quick, scaling=args.scaling, malloc_keep=args.malloc_keep, wall_s=run_out["wall_s"],
                missing=run_out["missing"], loadavg_start=run_out.get("loadavg_start"),
                loadavg_end=_loadavg(), **_versions())
    rows = [{k: v for k, v in row.items() if k != "runs"} for row in rows]  # the runs are in "raw"
    doc = dict(meta=meta, rows=rows, raw=run_out["results"], markdown=md)
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(doc, f, indent=1, default=str)
    with open(os.path.splitext(json_path)[0] + ".md", "w") as f:
        f.write(f"<!-- {meta['date']}, python {meta['python']}, numpy {meta['numpy']}, torch {meta['torch']}, "
                f"commit {meta['git_commit']}, {meta['cpu_count']} CPUs -->\n" + md)
