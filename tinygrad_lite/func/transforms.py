"""grad, grad_and_value, vjp, jvp, jacrev, jacfwd, hessian: torch.func's transforms over the tape engine.

Reverse mode (vjp and what is built on it) runs the function on the transform's own variables and backward with
create_graph, so a result stays differentiable by an outer transform: an outer grad (the variable is an alias on
the outer graph) or an outer jvp (the variable carries the outer tangent). A result that depends on nothing
outside the transform is handed back off the tape, as torch.func returns it. Forward mode (jvp, jacfwd) opens a
dual level and reads the outputs' tangents: no double backward.
"""
import numpy as np

from ..autograd import engine, forward_ad, recorder
from ..autograd.grad_mode import enable_grad
from ..compile.hooks import constant, data
from ..ops.movement import reshape
from ..ops.registry import OpError  # shape mismatches: a RuntimeError (as PyTorch) that is also a ValueError
from ..shape import stack
from ..tensor import Tensor
from ._tree import flatten


# ---------------- arguments ----------------
def check_argnums(argnums, nargs, name):
    """(positions, single): argnums as a tuple of non-negative positions; errors name the transform."""
    single = isinstance(argnums, int)
    nums = (argnums,) if single else argnums
    if not isinstance(nums, tuple) or not nums or not all(isinstance(a, int) for a in nums):
        raise TypeError(f"{name}: argnums must be an int or a non-empty tuple of ints, got {argnums!r}")
    for a in nums:
        if not -nargs <= a < nargs:
            raise ValueError(f"{name}: argnums {a} is out of range for a function called with {nargs} positional "
                             f"argument(s)")
    nums = tuple(a % nargs for a in nums)
    if len(set(nums)) != len(nums):
        raise ValueError(f"{name}: argnums {argnums!r} repeats an argument")
    return nums, single


def _tensor_leaves(tree, name, what):
    leaves, rebuild = flatten(tree)
    for x in leaves:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: {what} must be Tensors (or tuples/lists/dicts of them), got "
                            f"{type(x).__name__}")
        if x._data.dtype.kind not in "fc":
            raise TypeError(f"{name}: {what} must be floating point to be differentiated, got {x._data.dtype} of "
                            f"shape {tuple(x._data.shape)}")
    return leaves, rebuild


def _variable(x):
    """The transform's own variable for x: an alias on x's graph when x is tracked (an outer transform
    differentiates through it), otherwise a new leaf on x's memory; either way with x's forward tangents."""
    if x.requires_grad:
        return recorder.apply(reshape, (x,), (x._data.shape,))
    v = Tensor._wrap(data(x))  # data(): under a capture (tl.compile, vmap) x's array is read live, not frozen
    fw = getattr(x, "_fw", None)
    if fw:
        v._fw = dict(fw)
    v.requires_grad = True
    return v


def _with_args(func, args, kwargs, nums):
    """func as a function of the arguments at positions `nums` (the others fixed)."""
    def f(*chosen):
        full = list(args)
        for i, c in zip(nums, chosen):
            full[i] = c
        return func(*full, **kwargs)
    return f


def _split_aux(out, has_aux, name):
    if not has_aux:
        return out, None
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(f"{name}(has_aux=True): the function must return a pair (output, aux), got "
                        f"{type(out).__name__}")
    return out[0], out[1]


# ---------------- results: off the tape unless an outer transform needs them ----------------
def _outside(results, inner):
    """True when a result's graph reaches a tensor that requires grad and is not one of `inner` (the
    transform's own leaves): an outer transform (or the user) differentiates through it."""
    tensors = [r for r in results if isinstance(r, Tensor) and r.requires_grad]
    for r in tensors:
        if r._entry is None and id(r) not in inner:
            return True
    for e in recorder.reachable(tensors):
        for p in e.parents:
            if p is not None and p.__class__ is not recorder.Entry and id(p) not in inner:
                return True
    return False


def _release(results, inner):
    """The results, detached from the tape when nothing outside the transform needs their graph; their forward
    tangents (an outer jvp's) likewise."""
    tangents = [t for r in results if isinstance(r, Tensor) for t in (getattr(r, "_fw", None) or {}).values()]
    if _outside(list(results) + tangents, inner):
        return results
    return [_detached(r) if isinstance(r, Tensor) else r for r in results]


def _detached(t):
    """t off the tape, with its forward tangents, themselves off the tape."""
    if not t.requires_grad and not getattr(t, "_fw", None):
        return t
    d = Tensor._wrap(t._data)
    fw = getattr(t, "_fw", None)
    if fw:
        d._fw = {level: _detached(tangent) for level, tangent in fw.items()}
    return d


def _filled(shape, dtype, value):
    """A Tensor of one value, declared a constant (made from Python values: tl.compile and vmap take it as it is)."""
    return Tensor._wrap(constant(np.full(shape, value, dtype=dtype)))


def _zeros_like(x):
    return _filled(x._data.shape, x._data.dtype, 0)


# ---------------- reverse mode ----------------
def vjp(func, *primals, has_aux=False):
    """(output, vjp_fn[, aux]): vjp_fn(cotangents) returns one gradient per primal, <cotangents, J>."""
    leaves, rebuilds = [], []
    for p in primals:
        ls, rb = _tensor_leaves(p, "vjp", "primals")
        leaves.append(ls)
        rebuilds.append(rb)
    with enable_grad():
        variables = [[_variable(x) for x in ls] for ls in leaves]
        out = func(*[rb(vs) for rb, vs in zip(rebuilds, variables)])
    out, aux = _split_aux(out, has_aux, "vjp")
    out_leaves, out_rebuild = flatten(out)
    for o in out_leaves:
        if not isinstance(o, Tensor):
            raise TypeError(f"vjp: the function must return Tensors (or tuples/lists/dicts of them), got "
                            f"{type(o).__name__}")
    flat_vars = [v for vs in variables for v in vs]
    inner = {id(v) for v in flat_vars}

    def vjp_fn(cotangents):
        cts, _ = flatten(cotangents)
        if len(cts) != len(out_leaves):
            raise ValueError(f"vjp_fn: expected cotangents with the structure of the output ({len(out_leaves)} "
                             f"tensor(s)), got {len(cts)}")
        for i, (c, o) in enumerate(zip(cts, out_leaves)):
            if not isinstance(c, Tensor) or c._data.shape != o._data.shape:
                got = tuple(c._data.shape) if isinstance(c, Tensor) else type(c).__name__
                raise (OpError if isinstance(c, Tensor) else TypeError)(
                    f"vjp_fn: cotangent {i} must be a Tensor of the output's shape {tuple(o._data.shape)}, got {got}")
        pairs = [(o, c) for o, c in zip(out_leaves, cts) if o.requires_grad]
        grads = [None] * len(flat_vars)
        if pairs:
            with enable_grad():
                grads = engine.grad([o for o, _ in pairs], flat_vars, grad_outputs=[c for _, c in pairs],
                                    retain_graph=True, create_graph=True, allow_unused=True)
        grads = _release([_zeros_like(v) if g is None else g for v, g in zip(flat_vars, grads)], inner)
        it = iter(grads)
        return tuple(rb([next(it) for _ in vs]) for rb, vs in zip(rebuilds, variables))

    result = out_rebuild(_release(out_leaves, inner))
    if has_aux:  # off the tape like the output (torch.func's aux is plain): it stayed on the graph of the
        aux_leaves, aux_rebuild = flatten(aux)  # transform's own variable, and vmap(grad(has_aux)) refused it
        aux = aux_rebuild(_release(aux_leaves, inner))
    return (result, vjp_fn, aux) if has_aux else (result, vjp_fn)


def grad_and_value(func, argnums=0, has_aux=False):
    """A function returning (gradient of func's scalar output w.r.t. args[argnums], value); with has_aux,
    (gradient, (value, aux))."""
    def wrapper(*args, **kwargs):
        nums, single = check_argnums(argnums, len(args), "grad")
        res = vjp(_with_args(func, args, kwargs, nums), *[args[i] for i in nums], has_aux=has_aux)
        out, vjp_fn = res[0], res[1]
        if not isinstance(out, Tensor) or out._data.size != 1:
            got = f"shape {tuple(out._data.shape)}" if isinstance(out, Tensor) else type(out).__name__
            raise RuntimeError(f"grad: the function must return a scalar Tensor (one element), got {got}; use "
                               f"vjp or jacrev for other outputs")
        g = vjp_fn(_filled(out._data.shape, out._data.dtype, 1))
        g = g[0] if single else g
        return (g, (out, res[2])) if has_aux else (g, out)
    return wrapper


def grad(func, argnums=0, has_aux=False):
    """A function returning the gradient of func's scalar output w.r.t. args[argnums] (a tuple for a tuple of
    argnums); with has_aux, (gradient, aux)."""
    gv = grad_and_value(func, argnums, has_aux)

    def wrapper(*args, **kwargs):
        g, value = gv(*args, **kwargs)
        return (g, value[1]) if has_aux else g
    return wrapper


# ---------------- forward mode ----------------
def jvp(func, primals, tangents, *, strict=False, has_aux=False):
    """(output, J(primals) @ tangents[, aux]) by forward mode. primals and tangents: tuples of one structure."""
    if not isinstance(primals, tuple) or not isinstance(tangents, tuple):
        raise TypeError(f"jvp: primals and tangents must be tuples, got {type(primals).__name__} and "
                        f"{type(tangents).__name__}")
    ps, rebuild = _tensor_leaves(primals, "jvp", "primals")
    ts, _ = flatten(tangents)
    if len(ts) != len(ps):
        raise ValueError(f"jvp: expected one tangent per primal ({len(ps)}), got {len(ts)}")
    for i, (p, t) in enumerate(zip(ps, ts)):
        if not isinstance(t, Tensor) or t._data.shape != p._data.shape or t._data.dtype != p._data.dtype:
            got = f"{tuple(t._data.shape)} {t._data.dtype}" if isinstance(t, Tensor) else type(t).__name__
            raise (OpError if isinstance(t, Tensor) else TypeError)(
                f"jvp: tangent {i} must be a Tensor of the primal's shape and dtype ({tuple(p._data.shape)} "
                f"{p._data.dtype}), got {got}")
    with forward_ad.dual_level() as level:
        duals = [forward_ad.make_dual(p, t, level=level) for p, t in zip(ps, ts)]
        out = func(*rebuild(duals))
        out, aux = _split_aux(out, has_aux, "jvp")
        leaves, out_rebuild = flatten(out)
        primal_out, tangent_out = [], []
        for o in leaves:
            if not isinstance(o, Tensor):
                raise TypeError(f"jvp: the function must return Tensors, got {type(o).__name__}")
            p, t = forward_ad.unpack_dual(o, level=level)
            if t is None and strict:
                raise RuntimeError("jvp(strict=True): an output does not depend on the inputs")
            primal_out.append(p)
            tangent_out.append(_zeros_like(o) if t is None else t)
    result = (out_rebuild(primal_out), out_rebuild(tangent_out))
    return result + (aux,) if has_aux else result


# ---------------- Jacobians ----------------
def _basis(x, k):
    """The k-th unit vector in x's shape and dtype."""
    e = np.zeros(x._data.size, dtype=x._data.dtype)
    e[k] = 1
    return Tensor._wrap(constant(e.reshape(x._data.shape)))


def _stacked(parts, dim, shape, dtype):
    """Tensors of one shape stacked along a new axis `dim` and reshaped to `shape` (zeros when there are none:
    an empty input or output)."""
    if not parts:
        return _filled(shape, dtype, 0)
    return stack(parts, dim).reshape(shape)


def jacrev(func, argnums=0, *, has_aux=False):
    """The Jacobian by reverse mode: one vjp per output element. For each output tensor, a Tensor of shape
    out.shape + input.shape (a tuple over argnums when argnums is a tuple; the input's structure when it is a
    tuple/list/dict of Tensors)."""
    def wrapper(*args, **kwargs):
        nums, single = check_argnums(argnums, len(args), "jacrev")
        res = vjp(_with_args(func, args, kwargs, nums), *[args[i] for i in nums], has_aux=has_aux)
        out, vjp_fn = res[0], res[1]
        outs, out_rebuild = flatten(out)
        inputs = [flatten(args[i]) for i in nums]  # an argument may be a structure (a dict of parameters)
        per_out = []
        for j, o in enumerate(outs):
            rows = [vjp_fn(out_rebuild([_basis(o, k) if i == j else _zeros_like(q) for i, q in enumerate(outs)]))
                    for k in range(o._data.size)]
            jac = []
            for a, (leaves, rebuild) in enumerate(inputs):
                row_leaves = [flatten(r[a])[0] for r in rows]
                jac.append(rebuild([_stacked([r[m] for r in row_leaves], 0, o._data.shape + x._data.shape,
                                             o._data.dtype) for m, x in enumerate(leaves)]))
            per_out.append(jac[0] if single else tuple(jac))
        result = out_rebuild(per_out)
        return (result, res[2]) if has_aux else result
    return wrapper


def jacfwd(func, argnums=0, has_aux=False, *, randomness="error"):
    """The Jacobian by forward mode: one jvp per input element. Same layout as jacrev."""
    def wrapper(*args, **kwargs):
        nums, single = check_argnums(argnums, len(args), "jacfwd")
        primals = tuple(args[i] for i in nums)
        inputs = [_tensor_leaves(p, "jacfwd", "the differentiated arguments") for p in primals]  # structures too
        f = _with_args(func, args, kwargs, nums)
        zeros = [rebuild([_zeros_like(x) for x in leaves]) for leaves, rebuild in inputs]
        cols, outs, out_rebuild, aux = [], None, None, None
        for a, (leaves, rebuild) in enumerate(inputs):
            cols_a = []
            for m, x in enumerate(leaves):
                cols_m = []
                for k in range(x._data.size):
                    basis = rebuild([_basis(x, k) if n == m else _zeros_like(q) for n, q in enumerate(leaves)])
                    tangents = tuple(basis if b == a else z for b, z in enumerate(zeros))
                    res = jvp(f, primals, tangents, has_aux=has_aux)
                    outs, out_rebuild = flatten(res[0])
                    aux = res[2] if has_aux else None
                    cols_m.append(flatten(res[1])[0])
                cols_a.append(cols_m)
            cols.append(cols_a)
        if outs is None:  # no input elements: evaluate once for the output structure
            out = f(*primals)
            out, aux = _split_aux(out, has_aux, "jacfwd")
            outs, out_rebuild = flatten(out)
        per_out = []
        for j, o in enumerate(outs):
            jac = [rebuild([_stacked([c[j] for c in cols[a][m]], -1, o._data.shape + x._data.shape, o._data.dtype)
                            for m, x in enumerate(leaves)]) for a, (leaves, rebuild) in enumerate(inputs)]
            per_out.append(jac[0] if single else tuple(jac))
        result = out_rebuild(per_out)
        return (result, aux) if has_aux else result
    return wrapper


def hessian(func, argnums=0):
    """The Hessian, forward over reverse: jacfwd(jacrev(func, argnums), argnums)."""
    return jacfwd(jacrev(func, argnums), argnums)
