"""gradcheck and gradgradcheck with PyTorch's semantics, plus the faulty-entry search on failure."""
import warnings

import numpy as np

from ..autograd.engine import grad as autograd_grad
from ..autograd.grad_mode import enable_grad
from ..autograd.recorder import reachable
from ..tensor import Tensor
from . import report
from .compare import attribute_kinks, compare_fast, compare_full
from .entries import search
from .jacobian import (GradcheckError, analytical_jacobian, check_undefined_grad as _check_undefined,
                       fast_projections, numerical_jacobian)
from .target import Leaf, Target, _leaf_eps, as_tuple, make_target


class GradcheckKinkWarning(UserWarning):
    """Some elements were near a non-differentiable point and were not counted as errors."""


def _unsupported(**flags):
    for name, value in flags.items():
        if value:
            raise NotImplementedError(f"gradcheck: {name}=True is not supported by tinygrad_lite (no forward-mode "
                                      f"AD or vmap); leave it False")


def gradcheck(func, inputs, *, eps=None, atol=1e-5, rtol=1e-3, raise_exception=True, nondet_tol=0.0,
              check_undefined_grad=True, check_grad_dtypes=False, check_batched_grad=False,
              check_backward_ad=True, check_forward_ad=False, fast_mode=False, params=None, seed=0,
              find_faulty=True):
    """Check the gradients of `func(*inputs)` w.r.t. every input that requires grad (and, for a Module, every
    parameter) against central finite differences: |analytical - numerical| <= atol + rtol * |numerical|.

    Returns True, or raises `GradcheckError` naming the output, the input, the worst elements and the first tape
    entry whose backward is wrong (`err.faulty_entry`); returns False instead with raise_exception=False.
    eps defaults from the dtype (1e-6 for float64). A Module is checked on a float64 copy, with the package RNG
    reseeded to `seed` before every call so dropout is deterministic. `params` (dict or list) adds tensors the
    function closes over. Elements near a kink (relu at 0, max ties, clamp edges) warn instead of failing."""
    _unsupported(check_forward_ad=check_forward_ad, check_batched_grad=check_batched_grad)
    target = make_target(func, inputs, eps=eps, params=params, seed=seed)
    try:
        return _check(target, "gradcheck", atol, rtol, nondet_tol, check_undefined_grad, check_grad_dtypes,
                      check_backward_ad, fast_mode, seed, find_faulty, orders=(1,))
    except GradcheckError:
        if raise_exception:
            raise
        return False
    finally:
        target.close()


def _check(target, kind, atol, rtol, nondet_tol, check_undefined_grad, check_grad_dtypes, check_backward_ad,
           fast_mode, seed, find_faulty, orders, entries_for_search=None):
    with enable_grad():
        outs = target.outputs()
    if not check_backward_ad:
        return True
    base = [np.array(o._data, dtype=np.float64) for _, o in outs]
    out_tensors = [o for _, o in outs]
    if fast_mode:
        ana, num, asym, sums = fast_projections(target, base, outs, np.random.default_rng(seed))
        results = compare_fast(target, outs, ana, num, asym, sums, atol, rtol)
    else:
        num, asym = numerical_jacobian(target, base)
        ana = analytical_jacobian(target, outs, nondet_tol=nondet_tol, check_grad_dtypes=check_grad_dtypes)
        results = compare_full(target, outs, ana, num, asym, atol, rtol)
    if results:
        attribute_kinks(target, results, out_tensors, base)
    kinks = [pr for pr in results if pr.kinks]
    faulty = None
    searched = False
    if find_faulty and (kinks or any(pr.n_errors for pr in results)):
        entries = entries_for_search() if entries_for_search is not None else reachable(out_tensors)
        faulty = search(entries, orders=orders, atol=atol, rtol=rtol, seed=seed)
        searched = True
    if faulty is not None and kinks:  # a wrong backward: near-kink mismatches are no excuse
        for pr in kinks:
            pr.errors += pr.kinks
            pr.kinks = []
        kinks = []
    errors = [pr for pr in results if pr.n_errors]
    if errors:
        msg = report.failure(kind, errors, kinks, faulty, atol, rtol, fast_mode, searched=searched)
        raise GradcheckError(msg, mismatches=errors, faulty_entry=faulty, kinks=kinks)
    if kinks:
        warnings.warn(report.kink_warning(kind, kinks), GradcheckKinkWarning, stacklevel=3)
    if check_undefined_grad:
        _check_undefined(target, outs)
    return True


def _random_grad_output(rng, out, noncontig):
    shape = out._data.shape
    if noncontig and len(shape):
        arr = np.zeros(shape[:-1] + (2 * shape[-1],), dtype=out._data.dtype)[..., ::2]
        arr[...] = rng.uniform(-1, 1, shape)
    else:
        arr = rng.uniform(-1, 1, shape).astype(out._data.dtype)
    return Tensor._wrap(arr).requires_grad_()


def gradgradcheck(func, inputs, grad_outputs=None, *, eps=None, atol=1e-5, rtol=1e-3,
                  gen_non_contig_grad_outputs=False, raise_exception=True, nondet_tol=0.0,
                  check_undefined_grad=True, check_grad_dtypes=False, check_batched_grad=False,
                  check_fwd_over_rev=False, check_rev_over_rev=True, fast_mode=False, params=None, seed=0,
                  find_faulty=True):
    """Check second derivatives: gradcheck of (inputs, grad_outputs) -> autograd.grad(func(*inputs), inputs,
    grad_outputs, create_graph=True). grad_outputs default to seeded uniform(-1, 1) tensors that require grad.
    On failure `err.faulty_entry` names the first entry of func's tape whose backward or double backward is
    wrong (e.g. a custom Function whose backward uses a detached value)."""
    _unsupported(check_fwd_over_rev=check_fwd_over_rev, check_batched_grad=check_batched_grad)
    inner = make_target(func, inputs, eps=eps, params=params, seed=seed)
    outer = None
    try:
        with enable_grad():
            diff = [o for _, o in inner.outputs() if o.requires_grad]
        if grad_outputs is None:
            rng = np.random.default_rng(seed)
            gos = [_random_grad_output(rng, o, gen_non_contig_grad_outputs) for o in diff]
        else:
            gos = [g if isinstance(g, Tensor) else Tensor(np.asarray(g)) for g in as_tuple(grad_outputs)]
            if len(gos) != len(diff):
                raise ValueError(f"gradgradcheck: got {len(gos)} grad_outputs for {len(diff)} differentiable "
                                 f"outputs")
        xs = [leaf.tensor for leaf in inner.leaves]

        def grad_fn():
            with enable_grad():
                outs = [o for _, o in inner.outputs() if o.requires_grad]
                if not outs:
                    return ()
                gs = autograd_grad(outs, xs, grad_outputs=gos, create_graph=True, allow_unused=True)
            return tuple(g for g in gs if g is not None)

        with enable_grad():
            first = autograd_grad(diff, xs, grad_outputs=gos, create_graph=True, allow_unused=True) if diff else ()
        names = [f"grad of {leaf.label}" for leaf, g in zip(inner.leaves, first) if g is not None]
        leaves = list(inner.leaves) + [Leaf(f"grad_outputs[{i}]", g, "grad_output", i, _leaf_eps(eps, g))
                                       for i, g in enumerate(gos) if g.requires_grad]
        outer = Target(grad_fn, (), leaves, None, output_names=names)

        def first_order_tape():
            with enable_grad():
                return reachable([o for _, o in inner.outputs()])

        return _check(outer, "gradgradcheck", atol, rtol, nondet_tol, check_undefined_grad, check_grad_dtypes,
                      check_rev_over_rev, fast_mode, seed, find_faulty, orders=(1, 2),
                      entries_for_search=first_order_tape)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    finally:
        if outer is not None:
            outer.close()
        inner.close()


def find_faulty_entry(func, inputs, *, order=1, atol=1e-5, rtol=1e-3, params=None, seed=0):
    """Run `func(*inputs)` (a Module runs as a float64 copy), then replay each recorded tape entry alone and
    return a `FaultyEntry` for the first whose backward (order=1) or double backward (order=2) disagrees with
    finite differences at its recorded inputs, or None when every entry agrees."""
    target = make_target(func, inputs, params=params, seed=seed, warn_float32=False)
    try:
        with enable_grad():
            outs = [o for _, o in target.outputs()]
        orders = (1,) if order == 1 else (1, 2)
        return search(reachable(outs), orders=orders, atol=atol, rtol=rtol, seed=seed)
    finally:
        target.close()
