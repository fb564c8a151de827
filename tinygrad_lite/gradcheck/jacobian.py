"""Numerical Jacobians by central differences (each leaf element perturbed in place and restored exactly),
analytical Jacobians by one `autograd.grad` row per output element, and fast mode's projections vᵀJu.

Jacobians are stored per (output, leaf) pair as float64 arrays of shape (output numel, leaf numel). Alongside the
central difference we keep the one-sided asymmetry (right slope - left slope), which costs no extra evaluation and
lets the kink analysis ask whether the function is differentiable across the step."""
import contextlib

import numpy as np

from ..autograd.engine import grad as autograd_grad
from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor


class GradcheckError(RuntimeError):
    """Raised by gradcheck/gradgradcheck; `.faulty_entry` names the tape entry whose backward is wrong (or None)."""

    def __init__(self, message, *, mismatches=(), faulty_entry=None, kinks=()):
        super().__init__(message)
        self.mismatches = list(mismatches)
        self.faulty_entry = faulty_entry
        self.kinks = list(kinks)


@contextlib.contextmanager
def perturbed(arr, idx, delta):
    """Set arr[idx] += delta for the duration; yields the step actually taken (after rounding to arr's dtype)."""
    orig = arr[...].copy() if idx is Ellipsis else arr[idx]
    try:
        arr[idx] = orig + delta
        yield arr[idx] - orig
    finally:
        arr[idx] = orig


def evaluate(target, n_outputs=None):
    """Float64 copies of the float outputs' data (copies: an output may alias a leaf that is being perturbed)."""
    with enable_grad():
        outs = target.outputs()
    if n_outputs is not None and len(outs) != n_outputs:
        raise GradcheckError(f"gradcheck: the function returned {len(outs)} float outputs on a perturbed input but "
                             f"{n_outputs} on the original; its outputs must not depend on the input values' structure")
    return [np.array(o._data, dtype=np.float64) for _, o in outs]


def _check_shapes(base, new):
    for k, (b, n) in enumerate(zip(base, new)):
        if b.shape != n.shape:
            raise GradcheckError(f"gradcheck: output {k} changed shape from {b.shape} to {n.shape} when an input "
                                 f"was perturbed")


def numerical_jacobian(target, base):
    """(central, asymmetry): per output, per leaf, arrays (out numel, leaf numel)."""
    n_out = len(base)
    central = [[None] * len(target.leaves) for _ in range(n_out)]
    asym = [[None] * len(target.leaves) for _ in range(n_out)]
    for li, leaf in enumerate(target.leaves):
        arr = leaf.tensor._data
        for o in range(n_out):
            central[o][li] = np.zeros((base[o].size, arr.size))
            asym[o][li] = np.zeros((base[o].size, arr.size))
        for j, idx in enumerate(np.ndindex(arr.shape)):
            with perturbed(arr, idx, leaf.eps) as hp:
                plus = evaluate(target, n_out)
            with perturbed(arr, idx, -leaf.eps) as hm:
                minus = evaluate(target, n_out)
            _check_shapes(base, plus)
            _check_shapes(base, minus)
            hp, hm = float(hp), -float(hm)
            for o in range(n_out):
                right = (plus[o] - base[o]).ravel() / hp
                left = (base[o] - minus[o]).ravel() / hm
                central[o][li][:, j] = (plus[o] - minus[o]).ravel() / (hp + hm)
                asym[o][li][:, j] = right - left
    return central, asym


def analytical_jacobian(target, outs, *, nondet_tol=0.0, check_grad_dtypes=False):
    """Rows of d output / d leaf from autograd.grad with one-hot upstream gradients (graph retained)."""
    leaves = [leaf.tensor for leaf in target.leaves]
    jac = [[np.zeros((o._data.size, t._data.size)) for t in leaves] for _, o in outs]
    for o, (pos, out) in enumerate(outs):
        if not out.requires_grad:
            continue
        for k in range(out._data.size):
            seed = np.zeros(out._data.shape, dtype=out._data.dtype)
            seed.flat[k] = 1
            grads = _vjp(out, leaves, seed, target, check_grad_dtypes)
            if k == 0:
                _check_reentrant(out, leaves, seed, grads, nondet_tol, target, o)
            for li, g in enumerate(grads):
                if g is not None:
                    jac[o][li][k, :] = g.ravel()
    return jac


def _vjp(out, leaves, seed, target, check_grad_dtypes=False):
    with enable_grad():
        grads = autograd_grad(out, leaves, grad_outputs=Tensor._wrap(seed), retain_graph=True, allow_unused=True)
    result = []
    for leaf, t, g in zip(target.leaves, leaves, grads):
        if g is None:
            result.append(None)
            continue
        if g._data.shape != t._data.shape:
            raise GradcheckError(f"gradcheck: the gradient for {leaf.label} has shape {g._data.shape}, but the "
                                 f"tensor has shape {t._data.shape}")
        if check_grad_dtypes and g._data.dtype != t._data.dtype:
            raise GradcheckError(f"gradcheck: the gradient for {leaf.label} has dtype {g._data.dtype}, but the "
                                 f"tensor has dtype {t._data.dtype}")
        result.append(np.array(g._data, dtype=np.float64))
    return result


def _check_reentrant(out, leaves, seed, grads, nondet_tol, target, o):
    again = _vjp(out, leaves, seed, target)
    for leaf, a, b in zip(target.leaves, grads, again):
        a = np.zeros(leaf.tensor.shape) if a is None else a
        b = np.zeros(leaf.tensor.shape) if b is None else b
        with np.errstate(invalid="ignore"):  # NaN (or inf) at the same place twice is reentrant: the Jacobian
            same = (a == b) | (np.isnan(a) & np.isnan(b))  # comparison reports it, not this check
            diff = np.max(np.where(same, 0.0, np.abs(a - b))) if a.size else 0.0
        if not diff <= nondet_tol:
            raise GradcheckError(
                f"gradcheck: backward is not reentrant: two backward passes for output {o} with respect to "
                f"{leaf.label} differ by {diff:.3g}, more than nondet_tol={nondet_tol:g}. The backward is "
                f"nondeterministic (or depends on state it changes); pass nondet_tol= if that is intended.")


def check_undefined_grad(target, outs):
    """A zero upstream gradient must give zero (or no) gradients: how backward treats an output nobody used."""
    leaves = [leaf.tensor for leaf in target.leaves]
    for o, (pos, out) in enumerate(outs):
        if not out.requires_grad:
            continue
        grads = _vjp(out, leaves, np.zeros(out._data.shape, dtype=out._data.dtype), target)
        for leaf, g in zip(target.leaves, grads):
            if g is not None and np.any(g != 0):
                raise GradcheckError(
                    f"gradcheck: a zero gradient for output {o} gave a nonzero gradient for {leaf.label} (max "
                    f"|value| {np.max(np.abs(g)):.3g}): backward must treat a zero (undefined) upstream gradient "
                    f"as zeros")


def unit_vector(rng, shape):
    """PyTorch fast mode's direction: uniform [0, 1) entries scaled to unit norm."""
    v = rng.random(shape)
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def fast_projections(target, base, outs, rng):
    """Fast mode: per (output, leaf) pair, analytical vᵀJu, numerical vᵀ(f(x+eps u) - f(x-eps u))/2eps, the
    one-sided asymmetry, and the u and v sums that scale atol (as PyTorch)."""
    n_out = len(base)
    us = [unit_vector(rng, leaf.tensor.shape) for leaf in target.leaves]
    vs = [unit_vector(rng, b.shape) for b in base]
    num = np.zeros((n_out, len(us)))
    asym = np.zeros((n_out, len(us)))
    for li, leaf in enumerate(target.leaves):
        arr = leaf.tensor._data
        with perturbed(arr, ..., leaf.eps * us[li].astype(arr.dtype)):
            plus = evaluate(target, n_out)
        with perturbed(arr, ..., -leaf.eps * us[li].astype(arr.dtype)):
            minus = evaluate(target, n_out)
        for o in range(n_out):
            num[o, li] = np.vdot(vs[o], (plus[o] - minus[o])) / (2 * leaf.eps)
            asym[o, li] = np.vdot(vs[o], plus[o] + minus[o] - 2 * base[o]) / leaf.eps
    ana = np.zeros((n_out, len(us)))
    leaves = [leaf.tensor for leaf in target.leaves]
    for o, (pos, out) in enumerate(outs):
        if not out.requires_grad:
            continue
        grads = _vjp(out, leaves, vs[o].astype(out._data.dtype), target)
        for li, g in enumerate(grads):
            if g is not None:
                ana[o, li] = np.vdot(g, us[li])
    sums = (np.array([u.sum() for u in us]), np.array([v.sum() for v in vs]))
    return ana, num, asym, sums
