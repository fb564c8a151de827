"""Find the faulty primitive: replay each recorded tape entry alone, at float64 copies of its recorded inputs, and
check its backward against finite differences of its forward (order 1) or its double backward against finite
differences of its backward (order 2). The first entry in recording order that disagrees is the one named.

Each check is a random projection (vᵀJu against vᵀ(f(x+eps u) - f(x-eps u))/2eps, one input at a time), so a
large entry costs two forward calls per input and trial. Elements within a few steps of a declared kink are left
out of u, so relu at 0 or a max tie is not mistaken for a wrong backward."""
import numpy as np

from ..autograd.engine import grad as autograd_grad
from ..autograd.grad_mode import enable_grad, no_grad
from ..autograd.recorder import reachable
from ..tensor import Tensor

TRIALS = 2
ENTRY_EPS = {np.dtype("float64"): 1e-6, np.dtype("float32"): 1e-3}


class FaultyEntry:
    """The first tape entry whose backward (order 1) or double backward (order 2) disagrees with finite
    differences at its recorded inputs. `entry` is the tape entry itself."""

    def __init__(self, entry, order, input_index, analytical, numerical, tolerance):
        self.entry, self.order, self.input_index = entry, order, input_index
        self.analytical, self.numerical, self.tolerance = analytical, numerical, tolerance
        cls = getattr(entry.prim, "cls", None)
        self.function = cls
        self.kind = "custom Function" if cls is not None else "primitive"
        self.name = entry.name
        self.index = entry.index
        self.input_shapes = entry.input_shapes
        self.output_shape = entry.output_shape
        self.source = entry.source
        self.source_path = entry.source_path
        self.module = entry.module
        self.position = self.tape_length = None  # 1-based place among the searched entries, set by search()

    def headline(self):
        ins = ", ".join("x".join(map(str, s)) or "scalar" for s in self.input_shapes)
        out = "x".join(map(str, self.output_shape)) or "scalar"
        what = f"custom Function {self.name}" if self.function is not None else f"primitive '{self.name}'"
        where = f", recorded at {self.source_path}" if self.source_path else ""
        mod = f" in module '{self.module}'" if self.module else ""
        place = f", operation {self.position} of {self.tape_length} on the tape" if self.position else ""
        return f"{what} ({ins} -> {out}){place}{where}{mod}"

    def explanation(self):
        which = "input" if self.input_index is not None else "upstream gradient"
        idx = "" if self.input_index is None else f" {self.input_index}"
        shape = (self.input_shapes[self.input_index] if self.input_index is not None else self.output_shape)
        vals = (f"vᵀJu analytical {self.analytical:.6g} vs numerical {self.numerical:.6g} "
                f"(tolerance {self.tolerance:.2g}) for {which}{idx} of shape {tuple(shape)}")
        if self.order == 1:
            return ("its backward alone disagrees with finite differences of its forward at its recorded "
                    f"inputs: {vals}")
        return ("its backward is right, but the derivative of its backward (double backward, used by "
                "create_graph=True and gradgradcheck) disagrees with finite differences of the backward: "
                f"{vals}. A backward that uses .data, .detach(), NumPy or a constant where it should use Tensor "
                "operations gives a correct first derivative and a wrong second one")

    def __str__(self):
        return f"{self.headline()}: {self.explanation()}"

    def __repr__(self):
        return f"<FaultyEntry {self.headline()}>"


def search(entries, orders=(1,), atol=1e-5, rtol=1e-3, seed=0):
    """The first entry (in recording order) whose check fails at some order in `orders`, else None."""
    rng = np.random.default_rng(seed)
    entries = sorted(entries, key=lambda e: e.seq)
    for pos, e in enumerate(entries):
        if e.saved is None or e.released:
            continue
        for order in orders:
            found = check_entry(e, order, rng, atol, rtol)
            if found is not None:
                found.position, found.tape_length = pos + 1, len(entries)
                return found
    return None


def _forward(e, arrays):
    with no_grad():
        return np.asarray(e.prim.forward(*arrays, *e.attrs))


def _replay(e, leaves):
    """Re-apply the entry's primitive (or Function) to fresh leaves; returns its recorded output Tensor."""
    with enable_grad():
        res = e.prim.call(*leaves, *e.attrs)
    if isinstance(res, Tensor) and res._entry is not None and res._entry.prim is e.prim:
        return res
    outs = [r for r in (res if isinstance(res, (tuple, list)) else (res,)) if isinstance(r, Tensor)]
    mine = [x for x in reachable(outs) if x.prim is e.prim]
    if not mine:
        raise RuntimeError("replay recorded no entry")
    return mine[-1].out_ref()  # a multi-output Function's packed output, kept alive by its slices


def _leaves(arrays, needs):
    return [Tensor(a, requires_grad=n) for a, n in zip(arrays, needs)]


def _kink_masks(e, arrays, needs, eps):
    """Per input: a mask of elements whose step of at most eps could reach the primitive's kink (or None)."""
    fn = getattr(e.prim, "kink", None)
    masks = [None] * len(arrays)
    if fn is None:
        return masks
    try:
        near = np.asarray(fn(arrays, e.attrs)) <= 4 * eps
    except Exception:
        return [np.ones(a.shape, bool) if n else None for a, n in zip(arrays, needs)]
    for i, (a, n) in enumerate(zip(arrays, needs)):
        if not n or not near.any():
            continue
        masks[i] = _any_to_shape(near, a.shape)
    return masks


def _any_to_shape(near, shape):
    """Reduce a (broadcast) mask to an input's shape: an element is marked if any position it feeds is."""
    lead = near.ndim - len(shape)
    if lead < 0:
        return np.ones(shape, bool)
    red = np.any(near, axis=tuple(range(lead))) if lead else near
    axes = tuple(k for k, s in enumerate(shape) if s == 1 and red.shape[k] != 1)
    if axes:
        red = np.any(red, axis=axes, keepdims=True)
    return red if red.shape == tuple(shape) else np.ones(shape, bool)


def _unit(rng, shape, mask=None):
    u = rng.standard_normal(shape)
    if mask is not None:
        u = np.where(mask, 0.0, u)
    n = np.linalg.norm(u)
    return None if n == 0 else u / n


def check_entry(e, order, rng, atol=1e-5, rtol=1e-3):
    """A FaultyEntry when this entry's (double) backward disagrees with finite differences, else None."""
    arrays = [np.array(t._data, dtype=np.float64) if t._data.dtype.kind == "f" else np.array(t._data)
              for t in e.saved]
    needs = [bool(t.requires_grad) and a.dtype.kind == "f" for t, a in zip(e.saved, arrays)]
    if not any(needs):
        return None
    try:
        base = _forward(e, arrays)
    except Exception:  # cannot be replayed out of context: nothing to say about it
        return None
    eps = ENTRY_EPS.get(base.dtype)
    if eps is None:
        return None
    if base.dtype != np.float64:
        rtol, atol = max(rtol, 1e-2), max(atol, 1e-3)
    masks = _kink_masks(e, arrays, needs, eps)
    check = _order1 if order == 1 else _order2
    targets = [i for i, n in enumerate(needs) if n] + ([None] if order == 2 else [])
    for i in targets:
        located = False
        for _ in range(TRIALS + 1):
            shape = arrays[i].shape if i is not None else base.shape
            u = _unit(rng, shape, masks[i] if i is not None else None)
            if u is None:
                break  # every element of this input sits at a kink
            try:
                a, n, noise, jump = check(e, arrays, needs, base, i, u, rng, eps)
            except Exception:
                return None
            tol = atol + rtol * max(abs(a), abs(n)) + noise
            if abs(a - n) <= tol:
                continue
            if not jump:
                return FaultyEntry(e, order, i, a, n, tol)
            # the direction crosses a kink the primitive does not declare (a custom Function's relu at 0):
            # find those elements, leave them out, and look again; inconclusive when too big to probe
            if located or arrays[i].size > MAX_PROBE:
                break
            near = _undeclared_kinks(e, arrays, i, rng.standard_normal(base.shape), eps)
            masks[i] = near if masks[i] is None else (masks[i] | near)
            located = True
    return None


MAX_PROBE = 256  # elements probed one by one for undeclared kinks


def _perturb(arrays, i, delta):
    out = list(arrays)
    out[i] = arrays[i] + delta
    return out


def _is_jump(s0, p1, m1, p2, m2, eps, scale):
    """One-sided differences that disagree by the same amount at steps eps and 2 eps: a slope jump (kink);
    smooth curvature would double the disagreement instead."""
    a1 = (p1 + m1 - 2 * s0) / eps
    a2 = (p2 + m2 - 2 * s0) / (2 * eps)
    return abs(a1) > 1e-7 * (1 + scale) and 0.4 <= a2 / a1 <= 1.6


def _fd(fn, arrays, i, u, eps):
    """Central difference along u with step eps, an error estimate from the same with step 2 eps, and whether
    the one-sided differences show a slope jump."""
    s0 = fn(arrays)
    p1, m1 = fn(_perturb(arrays, i, eps * u)), fn(_perturb(arrays, i, -eps * u))
    p2, m2 = fn(_perturb(arrays, i, 2 * eps * u)), fn(_perturb(arrays, i, -2 * eps * u))
    d1, d2 = (p1 - m1) / (2 * eps), (p2 - m2) / (4 * eps)
    return d1, abs(d1 - d2), _is_jump(s0, p1, m1, p2, m2, eps, abs(d1))


def _undeclared_kinks(e, arrays, i, v, eps):
    """Elements of input i whose own step shows a slope jump of v·forward."""
    s = lambda arrs: float(np.vdot(v, _forward(e, arrs)))  # noqa: E731
    s0 = s(arrays)
    near = np.zeros(arrays[i].shape, bool)
    for idx in np.ndindex(arrays[i].shape):
        basis = np.zeros(arrays[i].shape)
        basis[idx] = 1.0
        p1, m1 = s(_perturb(arrays, i, eps * basis)), s(_perturb(arrays, i, -eps * basis))
        p2, m2 = s(_perturb(arrays, i, 2 * eps * basis)), s(_perturb(arrays, i, -2 * eps * basis))
        near[idx] = _is_jump(s0, p1, m1, p2, m2, eps, abs(p1 - m1) / (2 * eps))
    return near


def _order1(e, arrays, needs, base, i, u, rng, eps):
    v = _unit(rng, base.shape)
    leaves = _leaves(arrays, needs)
    out = _replay(e, leaves)
    with enable_grad():
        g, = autograd_grad(out, [leaves[i]], grad_outputs=Tensor._wrap(v.astype(out._data.dtype)), allow_unused=True)
    a = 0.0 if g is None else float(np.vdot(g._data, u))
    n, trunc, jump = _fd(lambda arrs: float(np.vdot(v, _forward(e, arrs))), arrays, i, u, eps)
    roundoff = 16 * np.finfo(base.dtype).eps * float(np.vdot(np.abs(v), np.abs(base))) / eps
    return a, n, 10 * trunc + roundoff, jump


def _order2(e, arrays, needs, base, i, u, rng, eps):
    """Perturb input i (or, for i None, the upstream gradient) of s(x, g) = Σ w · vjp(x, g)."""
    diff = [k for k, n in enumerate(needs) if n]
    gv = rng.standard_normal(base.shape)
    ws = [_unit(rng, arrays[k].shape) for k in diff]

    def s_at(arrs, g_arr):
        leaves = _leaves(arrs, needs)
        out = _replay(e, leaves)
        with enable_grad():
            gs = autograd_grad(out, [leaves[k] for k in diff], grad_outputs=Tensor._wrap(g_arr.astype(out._data.dtype)),
                               allow_unused=True)
        return sum(float(np.vdot(g._data, w)) for g, w in zip(gs, ws) if g is not None)

    leaves = _leaves(arrays, needs)
    g_leaf = Tensor(gv, requires_grad=True)
    with enable_grad():
        out = _replay(e, leaves)
        gs = autograd_grad(out, [leaves[k] for k in diff], grad_outputs=g_leaf.astype(out._data.dtype),
                           create_graph=True, allow_unused=True)
        terms = [(g * Tensor._wrap(w)).sum() for g, w in zip(gs, ws) if g is not None and g.requires_grad]
        wrt = leaves[i] if i is not None else g_leaf
        a = 0.0
        if terms:
            s = terms[0]
            for t in terms[1:]:
                s = s + t
            d, = autograd_grad(s, [wrt], allow_unused=True)
            a = 0.0 if d is None else float(np.vdot(d._data, u))
    if i is None:
        n, trunc, _ = _fd(lambda gl: s_at(arrays, gl[0]), [gv], 0, u, eps)
    else:
        n, trunc, _ = _fd(lambda arrs: s_at(arrs, gv), arrays, i, u, eps)
    return a, n, 10 * trunc + 1e-9 * (1 + abs(n)), False
