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
LOSS_TOL = dict(rtol=1e-3, atol=1e-5)
GRAD_TOL = dict(rtol=5e-3, atol=1e-6)


def _median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def _ok(runs):
    return [r for r in runs if "error" not in r]


def summarize(runs, metric):
    vals = [r["metrics"][metric] for r in _ok(runs) if r["metrics"].get(metric) is not None]
    if not vals:
        return None
    return dict(median=_median(vals), min=min(vals), max=max(vals), n=len(vals))


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
    text = _num(s["median"]) if s["n"] == 1 else f"{_num(s['median'])} ({_num(s['min'])}..{_num(s['max'])})"
    return text + (f" [{failed}/{len(runs)} failed]" if failed else "")


def _ratio_cell(r):
    return "-" if r is None else f"{r:.2f}x"


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
                           ratios={}, runs=per_fw)
                for ref in ("torch", "numpy"):
                    if ratio_to == "all" or ratio_to == ref:
                        row["ratios"][ref] = paired_ratio(ours, per_fw.get(ref, []), metric)
                rows.append(row)
    return rows


def markdown(rows, frameworks, title):
    head = ["Workload", "Metric", "Threads"] + [LABELS[fw] for fw in frameworks]
    head += ["ours/PyTorch", "ours/NumPy", "first-step check"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["label"], row["unit"], row["threads"]] + [row["cells"][fw] for fw in frameworks]
        cells += [_ratio_cell(row["ratios"].get("torch")), _ratio_cell(row["ratios"].get("numpy")),
                  row["check"]["status"]]
        lines.append("| " + " | ".join(cells) + " |")
    notes = sorted({f"{row['label']} {LABELS[fw]}: {r['note']}" for row in rows for fw, runs in row["runs"].items()
                    for r in runs if r.get("note")})
    lines.append("")
    if notes:
        lines += ["Notes: " + "; ".join(notes) + ".", ""]
    lines.append("Cells: median over fresh-process repeats (min..max). Ratios: median of per-repeat ratios "
                 "(runs paired back to back); below 1.00x means tinygrad_lite is faster/smaller.")
    return "\n".join(lines) + "\n"


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
