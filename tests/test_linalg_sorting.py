"""mm / mv / bmm / dot / outer / ger / t / addmm (tinygrad_lite/linalg.py) against PyTorch: forward values and
dtypes, gradients (from the graph: matmul, mul, where), float64 gradchecks, and every error case. The sorting
half of the feature is in test_linalg_sorting_order.py."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygrad_lite as tl
import tinygrad_lite.linalg as L

pytestmark = pytest.mark.oracle

SIDE = st.integers(0, 4)


def arrays(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-2, 2, s) for s in shapes]


def check_against_torch(torch, ours, theirs, inputs, rtol=1e-10, atol=1e-12):
    """Same float64 inputs: same forward (values, shape, dtype) and the same gradient for every input."""
    xs = [tl.tensor(a.copy(), requires_grad=True) for a in inputs]
    ts = [torch.tensor(a.copy(), requires_grad=True) for a in inputs]
    out, tout = ours(*xs), theirs(*ts)
    assert out.shape == tuple(tout.shape) and f"torch.{out.dtype}" == str(tout.dtype)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward")
    up = np.random.default_rng(1).standard_normal(tuple(tout.shape))
    (out * tl.tensor(up)).sum().backward()
    (tout * torch.tensor(up)).sum().backward()
    for i, (x, t) in enumerate(zip(xs, ts)):
        assert x.grad is not None and x.grad.shape == tuple(t.grad.shape), i
        np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"grad {i}")


# ---------------- oracle: forward and gradients ----------------
@given(n=SIDE, k=SIDE, m=SIDE, form=st.sampled_from(["function", "method"]))
def test_mm_matches_pytorch(n, k, m, form, torch):
    ours = L.mm if form == "function" else (lambda a, b: a.mm(b))
    check_against_torch(torch, ours, torch.mm, arrays((n, k), (k, m)))


@given(n=SIDE, m=SIDE, form=st.sampled_from(["function", "method"]))
def test_mv_matches_pytorch(n, m, form, torch):
    ours = L.mv if form == "function" else (lambda a, v: a.mv(v))
    check_against_torch(torch, ours, torch.mv, arrays((n, m), (m,)))


@given(b=SIDE, n=SIDE, k=SIDE, m=SIDE, form=st.sampled_from(["function", "method"]))
def test_bmm_matches_pytorch(b, n, k, m, form, torch):
    ours = L.bmm if form == "function" else (lambda x, y: x.bmm(y))
    check_against_torch(torch, ours, torch.bmm, arrays((b, n, k), (b, k, m)))


@given(n=SIDE, form=st.sampled_from(["function", "method"]))
def test_dot_matches_pytorch(n, form, torch):
    ours = L.dot if form == "function" else (lambda a, b: a.dot(b))
    check_against_torch(torch, ours, torch.dot, arrays((n,), (n,)))


@given(n=SIDE, m=SIDE, name=st.sampled_from(["outer", "ger"]), form=st.sampled_from(["function", "method"]))
def test_outer_and_ger_match_pytorch(n, m, name, form, torch):
    ours = getattr(L, name) if form == "function" else (lambda a, b: getattr(a, name)(b))
    check_against_torch(torch, ours, getattr(torch, name), arrays((n,), (m,)))


@given(shape=st.sampled_from([(), (3,), (0,), (2, 3), (1, 4), (3, 0)]), form=st.sampled_from(["function", "method"]))
def test_t_matches_pytorch(shape, form, torch):
    ours = L.t if form == "function" else (lambda a: a.t())
    check_against_torch(torch, lambda a: ours(a) * 1.0, lambda a: torch.t(a) * 1.0, arrays(shape))


@st.composite
def addmm_case(draw):
    n, k, m = draw(SIDE), draw(SIDE), draw(SIDE)
    ishape = draw(st.sampled_from([(n, m), (m,), (1, m), (n, 1), (1, 1), (1,), ()]))
    beta = draw(st.sampled_from([1, 0, 0.5, -2, 0.0, True]))
    alpha = draw(st.sampled_from([1, 0, 1.5, -1, 2]))
    return (n, k, m), ishape, beta, alpha


@given(case=addmm_case(), form=st.sampled_from(["function", "method"]))
def test_addmm_matches_pytorch(case, form, torch):
    (n, k, m), ishape, beta, alpha = case
    if form == "function":
        ours = lambda i, a, b: L.addmm(i, a, b, beta=beta, alpha=alpha)  # noqa: E731
    else:
        ours = lambda i, a, b: i.addmm(a, b, beta=beta, alpha=alpha)  # noqa: E731
    check_against_torch(torch, ours, lambda i, a, b: torch.addmm(i, a, b, beta=beta, alpha=alpha),
                        arrays(ishape, (n, k), (k, m)))


def test_addmm_beta_zero_ignores_nan_input_and_gives_it_a_zero_gradient(torch):
    inp = np.full((2, 1), np.nan)
    a, b = arrays((2, 3), (3, 4))
    x = tl.tensor(inp, requires_grad=True)
    out = L.addmm(x, tl.tensor(a), tl.tensor(b), beta=0, alpha=2)
    tout = torch.addmm(torch.from_numpy(inp), torch.from_numpy(a), torch.from_numpy(b), beta=0, alpha=2)
    np.testing.assert_allclose(out.numpy(), tout.numpy(), rtol=1e-12)
    assert np.isfinite(out.numpy()).all()
    out.sum().backward()
    assert x.grad.shape == (2, 1) and (x.grad.numpy() == 0).all()
    assert np.isfinite(L.addmm(tl.tensor(inp), tl.tensor(a), tl.tensor(b), beta=0.0).numpy()).all()


def test_addmm_alpha_zero_ignores_the_product_as_pytorch(torch):
    inp, a, b = arrays((4,), (2, 3), (3, 4))
    a[0, 1] = np.nan
    T = torch.from_numpy
    for beta in (1, 0, 2.0):
        x, m1 = tl.tensor(inp, requires_grad=True), tl.tensor(a, requires_grad=True)
        out = L.addmm(x, m1, tl.tensor(b), beta=beta, alpha=0)
        tx, tm1 = T(inp.copy()).requires_grad_(), T(a.copy()).requires_grad_()
        tout = torch.addmm(tx, tm1, T(b), beta=beta, alpha=0)
        assert out.shape == (2, 4) and np.isfinite(out.numpy()).all()
        np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
        out.sum().backward()
        tout.sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
        np.testing.assert_array_equal(m1.grad.numpy(), tm1.grad.numpy())
    out = L.addmm(tl.tensor(inp), tl.tensor(a), tl.tensor(b), beta=0, alpha=0)  # nothing requires grad
    assert out.shape == (2, 4) and out.dtype == tl.float64 and (out.numpy() == 0).all()


def test_integer_products_match_pytorch(torch):
    rng = np.random.default_rng(4)
    a, b, c = rng.integers(-5, 5, (2, 3)), rng.integers(-5, 5, (3, 4)), rng.integers(-5, 5, (2, 4))
    v, w = rng.integers(-5, 5, 3), rng.integers(-5, 5, 4)
    T = torch.from_numpy
    pairs = [
        (L.mm(tl.tensor(a), tl.tensor(b)), torch.mm(T(a), T(b))),
        (L.mv(tl.tensor(a), tl.tensor(v)), torch.mv(T(a), T(v))),
        (L.dot(tl.tensor(v), tl.tensor(v)), torch.dot(T(v), T(v))),
        (L.outer(tl.tensor(v), tl.tensor(w)), torch.outer(T(v), T(w))),
        (L.bmm(tl.tensor(a[None]), tl.tensor(b[None])), torch.bmm(T(a[None]), T(b[None]))),
        # integer tensors truncate float factors (beta 0.5 -> 0, alpha 2.7 -> 2), as PyTorch
        (L.addmm(tl.tensor(c), tl.tensor(a), tl.tensor(b), beta=0.5, alpha=2.7),
         torch.addmm(T(c), T(a), T(b), beta=0.5, alpha=2.7)),
        (L.addmm(tl.tensor(c), tl.tensor(a), tl.tensor(b), beta=-3, alpha=True),
         torch.addmm(T(c), T(a), T(b), beta=-3, alpha=True)),
    ]
    for i, (ours, theirs) in enumerate(pairs):
        assert f"torch.{ours.dtype}" == str(theirs.dtype), i
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=str(i))


def test_outer_promotes_dtypes_as_pytorch(torch):
    for da, db in [("float32", "float64"), ("int64", "float32"), ("bool", "bool"), ("int32", "int64")]:
        a, b = np.arange(3).astype(da), np.arange(1, 3).astype(db)
        ours, theirs = L.outer(tl.tensor(a), tl.tensor(b)), torch.outer(torch.from_numpy(a), torch.from_numpy(b))
        assert f"torch.{ours.dtype}" == str(theirs.dtype), (da, db)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_float32_products_match_pytorch(torch):
    a, b, v = (x.astype(np.float32) for x in arrays((3, 5), (5, 2), (5,)))
    T = torch.from_numpy
    for ours, theirs in [(L.mm(tl.tensor(a), tl.tensor(b)), torch.mm(T(a), T(b))),
                         (L.mv(tl.tensor(a), tl.tensor(v)), torch.mv(T(a), T(v))),
                         (L.dot(tl.tensor(v), tl.tensor(v)), torch.dot(T(v), T(v)))]:
        assert ours.dtype == tl.float32
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_t_is_a_transpose_view_for_matrices_and_identity_below():
    x = tl.tensor(np.arange(6.0).reshape(2, 3))
    assert L.t(x).tolist() == [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    v = tl.tensor([1.0, 2.0])
    assert L.t(v).tolist() == [1.0, 2.0] and tl.tensor(3.0).t().item() == 3.0
    assert x.T.shape == (3, 2) and tl.zeros(2, 3, 4).mT.shape == (2, 4, 3)  # existing properties kept


# ---------------- gradients come from the graph: gradcheck and second order ----------------
def test_gradcheck_float64():
    a, b, c, v, w, i = (tl.tensor(x, requires_grad=True)
                        for x in arrays((3, 4), (4, 2), (2, 3, 4), (4,), (3,), (3, 1), seed=9))
    d = tl.tensor(arrays((2, 4, 2), seed=10)[0], requires_grad=True)
    assert tl.gradcheck(L.mm, (a, b))
    assert tl.gradcheck(L.mv, (a, v))
    assert tl.gradcheck(L.bmm, (c, d))
    assert tl.gradcheck(L.dot, (v, v))
    assert tl.gradcheck(L.outer, (w, v))
    assert tl.gradcheck(lambda x: L.t(x) * 2, (a,))
    assert tl.gradcheck(lambda i_, x, y: L.addmm(i_, x, y, beta=0.5, alpha=-2), (i, a, b))
    assert tl.gradcheck(lambda i_, x, y: L.addmm(i_, x, y, beta=0), (i, a, b))
    assert tl.gradgradcheck(lambda x, y: L.mm(x, y).tanh(), (a, b))
    assert tl.gradgradcheck(lambda i_, x, y: L.addmm(i_, x, y, alpha=3).sin(), (i, a, b))


def test_gradients_are_recorded_matmul_entries():
    a, b = (tl.tensor(x, requires_grad=True) for x in arrays((2, 3), (3, 2)))
    names = [e.name for e in tl.autograd.tape(L.mm(a, b))]
    assert names == ["matmul"]
    names = [e.name for e in tl.autograd.tape(L.addmm(tl.zeros(2, 2, dtype=tl.float64), a, b, beta=2, alpha=3))]
    assert "matmul" in names and "mul" in names


# ---------------- errors: PyTorch's exception types; ours name the op, the shapes/dtypes, the user's line ----
def _raises(ours, theirs, exc, *fragments):
    with pytest.raises(exc) as info:
        ours()
    with pytest.raises(exc):
        theirs()
    msg = str(info.value)
    for f in fragments:
        assert f in msg, (f, msg)
    return msg


def _pair(torch, *shapes, dtypes=None):
    dtypes = dtypes or ["float32"] * len(shapes)
    ours = [tl.zeros(s, dtype=d) for s, d in zip(shapes, dtypes)]
    theirs = [torch.zeros(s, dtype=getattr(torch, d)) for s, d in zip(shapes, dtypes)]
    return ours, theirs


SHAPE_ERRORS = [  # (op, shapes, fragments of our message)
    ("mm", [(3,), (3, 4)], ["mm", "input", "1-D", "(3,)"]),
    ("mm", [(2, 3), (3,)], ["mm", "mat2", "(3,)"]),
    ("mm", [(2, 3, 4), (4, 2)], ["mm", "3-D", "(2, 3, 4)"]),
    ("mm", [(2, 3), (2, 3)], ["mm", "2x3 and 2x3", "cannot be multiplied"]),
    ("mv", [(2, 3), (4,)], ["mv", "(2, 3)", "4"]),
    ("mv", [(3,), (3,)], ["mv", "(3,)"]),
    ("mv", [(2, 3), (3, 1)], ["mv", "(3, 1)"]),
    ("bmm", [(2, 3), (3, 4)], ["bmm", "input", "(2, 3)"]),
    ("bmm", [(2, 2, 3), (3, 4)], ["bmm", "mat2", "(3, 4)"]),
    ("bmm", [(2, 2, 3), (3, 3, 4)], ["bmm", "(2, 2, 3)", "(3, 3, 4)"]),
    ("bmm", [(2, 2, 3), (2, 4, 4)], ["bmm", "(2, 4, 4)"]),
    ("bmm", [(1, 2, 3), (2, 3, 4)], ["bmm", "(1, 2, 3)", "(2, 3, 4)"]),
    ("dot", [(2, 3), (3,)], ["dot", "2D and 1D", "(2, 3)"]),
    ("dot", [(), ()], ["dot", "0D and 0D"]),
    ("dot", [(3,), (4,)], ["dot", "3 and 4"]),
    ("outer", [(2, 3), (3,)], ["outer", "input", "(2, 3)"]),
    ("outer", [(3,), ()], ["outer", "vec2", "0-D"]),
    ("ger", [(3,), (3, 1)], ["outer", "vec2", "(3, 1)"]),
    ("t", [(2, 3, 4)], ["t()", "3D", "(2, 3, 4)"]),
    ("addmm", [(3,), (2, 3), (3, 4)], ["addmm", "(3,)", "(2, 4)"]),
    ("addmm", [(1, 2, 4), (2, 3), (3, 4)], ["addmm", "(1, 2, 4)"]),
    ("addmm", [(2, 4), (3,), (3, 4)], ["addmm", "mat1", "(3,)"]),
    ("addmm", [(2, 4), (2, 3), (2, 3)], ["addmm", "2x3 and 2x3"]),
]


@pytest.mark.parametrize("op, shapes, fragments", SHAPE_ERRORS)
def test_shape_errors_match_pytorch(op, shapes, fragments, torch):
    ours, theirs = _pair(torch, *shapes)
    msg = _raises(lambda: getattr(L, op)(*ours), lambda: getattr(torch, op)(*theirs), RuntimeError, *fragments)
    assert "test_linalg_sorting.py" in msg  # the user's line
    if op != "t" and shapes[0] != ():  # the method form raises the same
        with pytest.raises(RuntimeError):
            getattr(ours[0], op)(*ours[1:])


DTYPE_ERRORS = [
    ("mm", [(2, 3), (3, 4)], ["float32", "float64"]),
    ("mm", [(2, 3), (3, 4)], ["float32", "float16"]),
    ("mv", [(2, 3), (3,)], ["float64", "float32"]),
    ("bmm", [(1, 2, 3), (1, 3, 4)], ["float32", "float64"]),
    ("dot", [(3,), (3,)], ["float32", "float64"]),
    ("dot", [(3,), (3,)], ["int64", "float32"]),
    ("addmm", [(2, 4), (2, 3), (3, 4)], ["float64", "float32", "float32"]),
    ("addmm", [(2, 4), (2, 3), (3, 4)], ["float32", "float32", "float64"]),
    ("addmm", [(2, 4), (2, 3), (3, 4)], ["int64", "float32", "float32"]),
]


@pytest.mark.parametrize("op, shapes, dtypes", DTYPE_ERRORS)
def test_dtype_mismatch_raises_as_pytorch(op, shapes, dtypes, torch):
    ours, theirs = _pair(torch, *shapes, dtypes=dtypes)
    _raises(lambda: getattr(L, op)(*ours), lambda: getattr(torch, op)(*theirs), RuntimeError,
            op, "same dtype", *sorted(set(dtypes)), "test_linalg_sorting.py")


@pytest.mark.parametrize("op, shapes", [("mm", [(2, 3), (3, 2)]), ("mv", [(2, 3), (3,)]),
                                        ("bmm", [(1, 2, 3), (1, 3, 2)]), ("dot", [(3,), (3,)]),
                                        ("addmm", [(2, 2), (2, 3), (3, 2)])])
def test_bool_operands_are_not_implemented_as_pytorch(op, shapes, torch):
    ours, theirs = _pair(torch, *shapes, dtypes=["bool"] * len(shapes))
    if op == "addmm":  # PyTorch fails on bool addmm, though with a different (reshape) message
        with pytest.raises(NotImplementedError, match="addmm.*bool"):
            L.addmm(*ours)
        with pytest.raises(RuntimeError):
            torch.addmm(*theirs)
        return
    _raises(lambda: getattr(L, op)(*ours), lambda: getattr(torch, op)(*theirs), NotImplementedError, op, "bool")


@pytest.mark.parametrize("op, args", [("mm", ["M", [[1.0]]]), ("mm", [np.zeros((1, 1)), "M"]), ("mv", ["M", 1.0]),
                                      ("bmm", [None, "B"]), ("dot", ["V", [1.0]]), ("outer", [(1.0,), "V"]),
                                      ("t", [[[1.0]]]), ("addmm", [1.0, "M", "M"])])
def test_non_tensor_arguments_raise_type_error_as_pytorch(op, args, torch):
    shapes = {"M": (1, 1), "B": (1, 1, 1), "V": (1,)}
    ours = [tl.zeros(shapes[a]) if isinstance(a, str) else a for a in args]
    theirs = [torch.zeros(shapes[a]) if isinstance(a, str) else a for a in args]
    _raises(lambda: getattr(L, op)(*ours), lambda: getattr(torch, op)(*theirs), TypeError, op, "must be Tensor",
            "test_linalg_sorting.py")


def test_addmm_beta_and_alpha_are_keyword_only_numbers(torch):
    i, a, b = tl.zeros(2, 2), tl.zeros(2, 3), tl.zeros(3, 2)
    ti, ta, tb = torch.zeros(2, 2), torch.zeros(2, 3), torch.zeros(3, 2)
    _raises(lambda: L.addmm(i, a, b, 0.5, 0.5), lambda: torch.addmm(ti, ta, tb, 0.5, 0.5), TypeError)
    _raises(lambda: i.addmm(a, b, 0.5), lambda: ti.addmm(ta, tb, 0.5), TypeError)
    with pytest.raises(TypeError, match="addmm.*beta"):
        L.addmm(i, a, b, beta="1")
    with pytest.raises(TypeError, match="addmm.*alpha"):
        L.addmm(i, a, b, alpha=tl.ones(2))
    out = L.addmm(tl.ones(2, 2), a + 1, b + 1, beta=tl.tensor(2.0), alpha=tl.tensor(0.5))  # 0-d Tensors as numbers
    np.testing.assert_array_equal(out.numpy(), torch.addmm(torch.ones(2, 2), ta + 1, tb + 1, beta=2.0,
                                                           alpha=0.5).numpy())


def test_exports():
    assert L.__all__ == ["mm", "mv", "bmm", "dot", "outer", "ger", "t", "trace", "addmm", "vector_norm"]
    for name in L.__all__:  # (torch.linalg.vector_norm has no Tensor method)
        assert callable(getattr(L, name)) and (name == "vector_norm" or callable(getattr(tl.Tensor, name)))
