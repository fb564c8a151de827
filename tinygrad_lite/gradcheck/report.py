"""The text of a gradcheck failure: which output and input, a table of the worst elements, which tolerance
failed and what would make it pass, elements near a kink, and the faulty tape entry."""
from .target import fmt_index

MAX_ROWS = 5


def _g(x):
    return f"{x:.6g}"


def _e(x):
    return f"{x:.1e}"


def _where(entry):
    if entry is None:
        return ""
    if entry.source is None and entry.name == "undeclared kink":
        return "an undeclared kink (one-sided slopes differ; no recorded primitive declares one here)"
    loc = entry.source if entry.source else "unknown line"
    mod = f" in module '{entry.module}'" if entry.module else ""
    return f"'{entry.name}' recorded at {loc}{mod}"


def _pair_title(pr, detail=False):
    if not detail:
        return f"{pr.out_name} with respect to {pr.leaf.label}"
    t = pr.leaf.tensor
    return (f"{pr.out_name} (shape {tuple(pr.out_shape)}) with respect to {pr.leaf.label} (shape {tuple(t.shape)}, "
            f"{t.dtype}, eps={pr.leaf.eps:g})")


def _table(pr, rows, show_kink=False, atol=0.0, rtol=0.0):
    head = ["element", "output", "analytical", "numerical", "abs err", "rel err",
            "allowed", "failed"]
    if show_kink:
        head = ["element", "output", "analytical", "left slope", "right slope", "kink"]
    body = []
    for el in rows:
        out_idx = fmt_index(el.out_idx) if pr.out_shape else ""
        name = pr.leaf.element(el.in_idx) if pr.leaf.tensor.ndim else pr.leaf.name
        if show_kink:
            body.append([name, out_idx, _g(el.analytical), _g(el.left), _g(el.right), _where(el.kink)])
        else:
            dominant = "rtol" if abs(el.numerical) * rtol > atol else "atol"
            body.append([name, out_idx, _g(el.analytical), _g(el.numerical), _e(el.abs_err), _e(el.rel_err),
                         _e(el.allowed), dominant])
    if not pr.out_shape:
        head.pop(1)
        for b in body:
            b.pop(1)
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    fmt = lambda r: "    " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [fmt(head)] + [fmt(b) for b in body]



def failure(kind, errors, kinks, faulty, atol, rtol, fast, searched=True):
    """The GradcheckError message."""
    first = errors[0]
    lines = [f"{kind} failed: Jacobian mismatch for {_pair_title(first, True)}."]
    if fast:
        el = first.errors[0]
        lines += [
            f"  Fast mode compares one random projection vᵀJu (u, v uniform in [0, 1), unit norm): analytical "
            f"{_g(el.analytical)} vs numerical {_g(el.numerical)}; |difference| {_e(el.abs_err)} > allowed "
            f"{_e(el.allowed)} (= atol * sum(u) * sum(v) + rtol * |numerical|, atol={atol:g}, rtol={rtol:g}).",
            "  Rerun with fast_mode=False to see the failing elements."]
    else:
        worst = sorted(first.errors, key=lambda el: -el.excess)
        lines.append(f"  {first.n_errors} of {first.total} Jacobian elements fail |analytical - numerical| <= "
                     f"atol + rtol * |numerical| (atol={atol:g}, rtol={rtol:g}); worst "
                     f"{min(MAX_ROWS, len(worst))}:")
        lines += _table(first, worst[:MAX_ROWS], atol=atol, rtol=rtol)
        lines.append("  " + _tolerance_advice(first.errors, atol, rtol))
        if not first.out_requires_grad:
            lines.append(f"  {first.out_name} does not require grad (it was detached, or computed under no_grad or "
                         f"in NumPy), so its analytical gradient is 0, yet it changes with {first.leaf.label}.")
    for pr in errors[1:1 + MAX_ROWS]:
        lines.append(f"  Also failing: {_pair_title(pr)} ({pr.n_errors} of {pr.total} "
                     f"{'projection' if pr.fast else 'elements'}).")
    if len(errors) > 1 + MAX_ROWS:
        lines.append(f"  ... and {len(errors) - 1 - MAX_ROWS} more (output, input) pairs fail.")
    n_kink = sum(len(pr.kinks) for pr in kinks)
    if n_kink:
        ex = next(pr for pr in kinks if pr.kinks)
        lines.append(f"  Near a kink, not counted as errors: {n_kink} element(s), e.g. "
                     f"{ex.leaf.element(ex.kinks[0].in_idx) if not ex.fast else ex.leaf.name} "
                     f"(near {_where(ex.kinks[0].kink)}).")
    if faulty is not None:
        lines.append(f"  Faulty entry: {faulty.headline()}:")
        lines.append(f"    {faulty.explanation()}.")
    elif searched:
        lines.append("  Faulty entry: none found. Every recorded primitive's backward agrees with finite differences "
                     "at its recorded inputs, so the mismatch comes from something the tape does not see: a value "
                     "taken through .data, .numpy() or .detach(), computed under no_grad or in NumPy, or randomness "
                     "that differs between calls.")
    return "\n".join(lines)


def _tolerance_advice(errs, atol, rtol):
    need_atol = max(el.abs_err - rtol * abs(el.numerical) for el in errs)
    finite = [(el.abs_err - atol) / abs(el.numerical) for el in errs if el.numerical != 0]
    need_rtol = max(finite) if len(finite) == len(errs) else float("inf")
    if need_atol != need_atol:
        return "Some values are NaN or infinite: the function or its backward is not finite at these inputs."
    rtol_txt = (f"rtol >= {need_rtol:.2g}" if need_rtol != float("inf")
                else "no rtol (the numerical value is 0 for some, so only atol applies)")
    verdict = ("well above rounding noise: the backward is wrong here" if need_atol > 1e3 * atol
               else "close to the tolerance: possibly rounding or curvature (use float64 and a smaller eps)")
    return f"To pass they would need atol >= {need_atol:.2g} (at rtol={rtol:g}) or {rtol_txt} (at atol={atol:g}): " \
           f"{verdict}."


def kink_warning(kind, kinks):
    """Text of the warning for elements that are near a kink but otherwise fine."""
    n = sum(len(pr.kinks) for pr in kinks)
    lines = [f"{kind}: {n} element(s) are near a kink (a point where the function is not differentiable) and "
             f"were not counted as errors: autodiff's value there is a convention (relu'(0) = 0, ties share the "
             f"gradient), and every recorded primitive's backward, checked alone, agrees with finite differences."]
    for pr in kinks[:3]:
        if pr.fast:
            lines.append(f"  {_pair_title(pr)}: projection near {_where(pr.kinks[0].kink)}")
            continue
        lines.append(f"  {_pair_title(pr)}:")
        lines += _table(pr, pr.kinks[:MAX_ROWS], show_kink=True)
    return "\n".join(lines)
