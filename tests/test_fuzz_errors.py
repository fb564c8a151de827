"""Fuzzing with wrong argument types, the bugs fuzzing found pinned as regression tests (`FORMER_BUGS`) or strict
xfails (`KNOWN_BUGS`), and a check that the oracle of tests/_fuzz_common.py catches what it should.
"""
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import tinygrad_lite as tl
import tinygrad_lite.functional as F

from _fuzz_common import _report_case_count  # noqa: F401 - autouse: reports this part's cases
from _fuzz_common import CASES, examples, check_error, compare, run


# ---------------------------------------------------------------- wrong argument types
BAD_VALUES = {"None": None, "str": "a", "complex": 1j, "object": object(), "dict": {"a": 1}, "list_str": [1, "a"],
              "np_str": np.array(["x"]), "np_obj": np.array([1, None], dtype=object),
              "np_complex": np.ones(2, np.complex64), "func": len, "tuple_none": (1, None)}


def _x():
    return tl.tensor(np.ones((2, 3), np.float32))


WRONG_TYPE_OPS = {  # name: (call with the bad value, bad values that are fine to accept, bad values to skip)
    "add": (lambda b: _x() + b, set(), set()), "sub": (lambda b: b - _x(), set(), set()),
    "mul": (lambda b: _x() * b, set(), set()), "div": (lambda b: _x() / b, set(), set()),
    "pow": (lambda b: _x() ** b, set(), set()), "matmul": (lambda b: _x() @ b, set(), set()),
    "maximum": (lambda b: tl.maximum(_x(), b), set(), set()), "lt": (lambda b: _x() < b, set(), set()),
    "eq": (lambda b: _x().eq(b), {"None"}, set()), "tensor": (lambda b: tl.tensor(b), set(), set()),
    "reshape": (lambda b: _x().reshape(b), set(), set()), "permute": (lambda b: _x().permute(b), set(), set()),
    "transpose": (lambda b: _x().transpose(b, 0), set(), set()),
    "unsqueeze": (lambda b: _x().unsqueeze(b), set(), set()), "flatten": (lambda b: _x().flatten(b), set(), set()),
    "expand": (lambda b: _x().expand(b, 3), set(), set()),
    "sum": (lambda b: _x().sum(b), {"None"}, set()), "amax": (lambda b: _x().amax(b), {"None"}, set()),
    "logsumexp": (lambda b: _x().logsumexp(b), {"None"}, set()),
    "squeeze": (lambda b: _x().squeeze(b), {"None"}, set()),
    "flip": (lambda b: _x().flip(b), set(), set()), "repeat": (lambda b: _x().repeat(b), set(), set()),
    "split": (lambda b: _x().split(b), set(), set()), "chunk": (lambda b: _x().chunk(b), set(), set()),
    "cat": (lambda b: tl.cat(b), set(), set()), "stack": (lambda b: tl.stack([_x(), b]), set(), set()),
    "clamp": (lambda b: _x().clamp(b), set(), set()), "clamp ": (lambda b: _x().clamp(max=b), {"None"}, set()),
    "pad": (lambda b: F.pad(_x(), b), set(), set()), "pad ": (lambda b: F.pad(_x(), (1, 1), mode=b), set(), set()),
    "unfold": (lambda b: F.unfold(tl.ones(1, 1, 4, 4), b), set(), set()),
    "fold": (lambda b: F.fold(tl.ones(1, 4, 4), (3, 3), b), set(), set()),
    "zeros": (lambda b: tl.zeros(b), set(), set()), "zeros_like": (lambda b: tl.zeros_like(b), set(), set()),
    "full": (lambda b: tl.full((2,), b), set(), set()), "eye": (lambda b: tl.eye(b), set(), set()),
    "arange": (lambda b: tl.arange(b), set(), set()), "linspace": (lambda b: tl.linspace(0, 1, b), set(), set()),
    "randint": (lambda b: tl.randint(0, b, (2,)), set(), set()),
    "backward": (lambda b: (_x().requires_grad_() * 2).backward(b), set(), set()),
    "argmax": (lambda b: _x().argmax(b), {"None"}, set()), "max": (lambda b: _x().max(b), {"None"}, set()),
    "softmax": (lambda b: _x().softmax(b), {"None"}, set()),
    "log_softmax": (lambda b: F.log_softmax(_x(), b), {"None"}, set()),
    "gather": (lambda b: _x().gather(1, b), set(), set()),
    "index_select": (lambda b: _x().index_select(0, b), set(), set()),
    "masked_fill": (lambda b: _x().masked_fill(b, 0.0), set(), set()),
    "masked_fill ": (lambda b: _x().masked_fill(tl.tensor([True, False, True]), b), set(), set()),
    "getitem": (lambda b: _x()[b], {"None", "tuple_none"}, set()),
    "astype": (lambda b: _x().astype(b), set(), set()), "where": (lambda b: tl.where(b, _x(), _x()), set(), set()),
    "requires_grad_": (lambda b: tl.tensor([1.0]).requires_grad_(b), set(BAD_VALUES), {"np_str", "np_obj",
                                                                                        "np_complex"}),
}


@examples(800)
@given(op=st.sampled_from(sorted(WRONG_TYPE_OPS)), bad=st.sampled_from(sorted(BAD_VALUES)))
def test_wrong_argument_types(op, bad):
    fn, may_accept, skip = WRONG_TYPE_OPS[op]
    assume(bad not in skip)
    name = op.strip()
    aliases = ("tensor",) if name in ("where", "add", "sub") else ()  # conversion of the operand names tensor()
    got = run(name, lambda: fn(BAD_VALUES[bad]), aliases=aliases)
    assert got is None or bad in may_accept, f"{op} accepted {bad}: {got!r}"


# ---------------------------------------------------------------- pinned bugs: fixed (regression) and open (xfail)
def named_error(opname, fn):
    """fn must raise an allowed exception whose message names `opname`."""
    def check():
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001
                check_error(exc, opname)
                return
        raise AssertionError(f"{opname} accepted it and returned {result!r}")
    return check


def result_or_named_error(opname, fn, check_result):
    def check():
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001
            check_error(exc, opname)
            return
        check_result(result)
    return check


def is_ndarray(fn):
    return lambda: np.testing.assert_(isinstance(fn().numpy(), np.ndarray), "0-d result's .numpy() is not an ndarray")


def has_dtype(fn, dt):
    return lambda: np.testing.assert_equal(fn().dtype, np.dtype(dt))


def equals(fn, want, dt=None):
    def check():
        got = fn()
        np.testing.assert_array_equal(got.numpy(), np.asarray(want))
        assert got.shape == np.shape(want) and (dt is None or got.dtype == np.dtype(dt)), (got.shape, got.dtype)
    return check


T, X = tl.tensor, _x
# Bugs the fuzzing found, fixed since: each case stays as a regression test.
FORMER_BUGS = {
    # 0-d results are ndarrays, never NumPy scalars
    "0d-compare-data": is_ndarray(lambda: T(1.0) == 1.0),
    "0d-argmax-dim-data": is_ndarray(lambda: T(1.0).argmax(0)),
    "0d-max-dim-indices-data": is_ndarray(lambda: T(1.0).max(0).indices),
    "0d-int-clamp-data": is_ndarray(lambda: T(3).clamp(0)),
    "pow-of-bools": named_error("pow", lambda: T([True]) ** T([True])),  # NumPy gives int8; PyTorch rejects
    "std-error-names-var": named_error("std", lambda: X().std(5)),
    "empty-error-names-zeros": named_error("empty", lambda: tl.empty(-1)),
    "repeat-error-names-reshape": named_error("repeat", lambda: X().repeat(-1, 1)),
    "index_select-error-names-getitem": named_error("index_select", lambda: X().index_select(1, T([0, 5]))),
    "split-0d": named_error("split", lambda: T(1.0).split(1)),
    "chunk-0d": named_error("chunk", lambda: T(1.0).chunk(1)),
    "transpose-0d-dim-range": named_error("transpose", lambda: T(1.0).transpose(0, 1)),
    "flatten-0d-dim-range": named_error("flatten", lambda: T(1.0).flatten(0, 1)),
    "mT-0d": named_error("transpose", lambda: T(1.0).mT),
    "flip-repeated-dims": named_error("flip", lambda: X().flip((0, 0))),
    "sum-repeated-dims": named_error("sum", lambda: X().sum((0, 0))),
    "fold-kernel-too-big-silent": named_error("fold", lambda: F.fold(T(np.ones((1, 4, 0), np.float32)), (1, 1), 2)),
    "fold-kernel-too-big-names-reshape": named_error("fold", lambda: F.fold(T(np.ones((1, 9, 1), np.float32)),
                                                                          (1, 1), 3)),
    "fold-2d-input-is-unbatched": equals(lambda: F.fold(T(np.ones((4, 4), np.float32)), (3, 3), 2),  # PyTorch's
                                         [[[1, 2, 1], [2, 4, 2], [1, 2, 1]]], "float32"),
    "unfold-3d-input-is-unbatched": equals(lambda: F.unfold(T(np.arange(8.0).reshape(2, 2, 2)), 2),
                                           np.arange(8.0).reshape(8, 1)),
    "unfold-stride-0": named_error("unfold", lambda: F.unfold(T(np.ones((1, 1, 4, 4))), 2, stride=0)),
    "unfold-kernel-0": named_error("unfold", lambda: F.unfold(T(np.ones((1, 1, 4, 4))), 0)),
    "unfold-kernel-str": named_error("unfold", lambda: F.unfold(T(np.ones((1, 1, 4, 4))), "a")),
    "unfold-kernel-None": named_error("unfold", lambda: F.unfold(T(np.ones((1, 1, 4, 4))), None)),
    "sum-dim-float": named_error("sum", lambda: X().sum(1.5)),
    "amax-dim-complex": named_error("amax", lambda: X().amax(1j)),
    "squeeze-dim-float": named_error("squeeze", lambda: X().squeeze(1.5)),
    "flip-dims-None": named_error("flip", lambda: X().flip(None)),
    "cat-of-a-tensor": named_error("cat", lambda: tl.cat(X())),  # silently concatenates the rows
    "cat-of-None": named_error("cat", lambda: tl.cat(None)),
    "stack-non-tensor": named_error("stack", lambda: tl.stack([X(), None])),
    "stack-lists": named_error("stack", lambda: tl.stack([[1.0], [2.0]])),
    "chunk-str": named_error("chunk", lambda: X().chunk("a")),
    "split-None": named_error("split", lambda: X().split(None)),
    "clamp-str": named_error("clamp", lambda: X().clamp("a")),
    "clamp-max-list": named_error("clamp", lambda: X().clamp(max=[1, "a"])),
    "pad-None": named_error("pad", lambda: F.pad(X(), None)),
    "pad-mode-dict": named_error("pad", lambda: F.pad(X(), (1, 1), mode={})),
    "pad-replicate-empty-dim": named_error("pad", lambda: F.pad(T(np.zeros((2, 0))), (1, 1), mode="replicate")),
    "eye-negative": named_error("eye", lambda: tl.eye(-1)),
    "eye-str": named_error("eye", lambda: tl.eye("a")),
    "arange-step-0": named_error("arange", lambda: tl.arange(0, 5, 0)),
    "arange-None": named_error("arange", lambda: tl.arange(None)),
    "linspace-negative": named_error("linspace", lambda: tl.linspace(0, 1, -1)),
    "randint-low-ge-high": named_error("randint", lambda: tl.randint(5, 2, (3,))),
    "full-str-value": named_error("full", lambda: tl.full((2,), "a")),
    "zeros-huge": named_error("zeros", lambda: tl.zeros(2 ** 70)),
    "zeros_like-None": named_error("zeros_like", lambda: tl.zeros_like(None)),
    "astype-None": named_error("astype", lambda: X().astype(None)),
    "backward-gradient-str": named_error("backward", lambda: (X().requires_grad_() * 2).backward("a")),
    "masked_fill-mask-shape": named_error("masked_fill", lambda: X().masked_fill(T([True, False]), 0.0)),
    "requires_grad_-array": named_error("requires_grad_", lambda: X().requires_grad_(np.ones(2))),
    "index_select-negative": named_error("index_select", lambda: X().index_select(1, T([-1]))),  # PyTorch rejects
    "int32-times-huge-int": result_or_named_error("mul", lambda: T(np.ones(2, np.int32)) * 2 ** 40,
                                                  lambda r: np.testing.assert_equal(r.dtype, np.int32)),
    "gather-0d": result_or_named_error("gather", lambda: T(5.0).gather(0, T(0)),
                                       lambda r: np.testing.assert_equal(r.item(), 5.0)),
    "flip-0d": result_or_named_error("flip", lambda: T(5.0).flip(0), lambda r: np.testing.assert_equal(r.item(), 5.0)),
    "relu-keeps-int-dtype": has_dtype(lambda: T([-1, 2]).relu(), "int64"),  # PyTorch: int64 in, int64 out
    "clamp-int-float-bound-dtype": has_dtype(lambda: T([1, 5]).clamp(2.5), "float32"),  # NumPy gives float64
    # neighbours of the cases above, with PyTorch's answers
    "clamp-int-int-bound-keeps-dtype": equals(lambda: T(np.array([1, 5], np.int32)).clamp(2, 4), [2, 4], "int32"),
    "clamp-bool-int-bound": equals(lambda: T([True, False]).clamp(0, 1), [1, 0], "int64"),
    "relu-of-bools": named_error("relu", lambda: T([True]).relu()),
    "bool-tensor-pow-python-bool": equals(lambda: T([True, False]) ** False, [True, True], "bool"),
    "python-bool-pow-bool-tensor": named_error("pow", lambda: False ** T([True])),
    "int32-times-int-wraps-as-pytorch": equals(lambda: T(np.array([1], np.int32)) * (2 ** 32 + 3), [3], "int32"),
    "int-beyond-int64": named_error("mul", lambda: T([1]) * 2 ** 70),
    "index_select-0d-index": equals(lambda: T([5.0, 6.0]).index_select(0, T(1)), [6.0]),
    "index_select-of-0d": equals(lambda: T(5.0).index_select(0, T([0])), 5.0),
    "gather-0d-out-of-range": named_error("gather", lambda: T(5.0).gather(0, T(1))),
    "sum-repeated-dims-of-0d": named_error("sum", lambda: T(1.0).sum((0, -1))),
    "squeeze-repeated-dims": named_error("squeeze", lambda: X().squeeze((0, 0))),
    "mT-1d": named_error("mT", lambda: T([1.0]).mT),
    "tensor-of-strings-with-dtype": named_error("tensor", lambda: tl.tensor(["1.5"], dtype=tl.float32)),
    "requires_grad_-int": named_error("requires_grad_", lambda: X().requires_grad_(1)),
}
# Open bugs, pinned as strict xfails: a fix flips one into a failure; then move it to FORMER_BUGS.
KNOWN_BUGS = {}


@pytest.mark.parametrize("case", sorted(FORMER_BUGS))
def test_former_bugs(case):
    CASES["former_bugs"] += 1
    FORMER_BUGS[case]()


if KNOWN_BUGS:
    @pytest.mark.parametrize("case", [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=f"known bug {k}"))
                                      for k in KNOWN_BUGS])
    def test_known_bugs(case):
        CASES["known_bugs"] += 1
        KNOWN_BUGS[case]()


def test_fuzz_helpers_catch_what_they_should():
    """The oracle itself: a bare NumPy message, a wrong type and a wrong shape are all caught."""
    with pytest.raises(AssertionError, match="does not name"):
        check_error(ValueError("operands could not be broadcast"), "add")
    with pytest.raises(AssertionError, match="not an allowed type"):
        check_error(AttributeError("add: x"), "add")
    with pytest.raises(AssertionError, match="shape"):
        compare(tl.tensor(np.zeros((2, 1))), np.zeros((2,)))
    with pytest.raises(AssertionError):
        compare(tl.tensor([np.nan, 1.0]), np.array([1.0, np.nan]))
    compare(tl.tensor([np.nan, np.inf]), np.array([np.nan, np.inf]))
