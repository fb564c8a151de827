"""tl.onnx.export of argmax/argmin, max/min with a dim, sort/argsort and topk: their indices are computed on the host
(NumPy), so each needs an ONNX rule (ops/reduce_onnx.py). Every model is exported once and run in onnxruntime at
fresh inputs full of ties, -0.0, infinities and NaN (so a frozen or NaN-blind index would show), at other batch
sizes under dynamic_axes, and through the gradient. Indices must match exactly, values to float32 rounding.
Skipped without onnx/onnxruntime, failing instead when TL_REQUIRE_ONNX=1."""
import io
import zlib

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn

from _onnx_common import flat as _flat, session as _session

pytestmark = pytest.mark.onnx


def _agrees(sess, fn, feeds):
    """onnxruntime's outputs on `feeds` equal fn's (eager) on the same arrays: shapes and dtypes, integers exactly,
    floats to float32 rounding (NaN where ours has NaN)."""
    expected = [e.detach().numpy() for e in _flat(fn(*[tl.tensor(f) for f in feeds]))]
    got = sess.run(None, {i.name: f for i, f in zip(sess.get_inputs(), feeds)})
    assert len(got) == len(expected)
    for k, (g, e) in enumerate(zip(got, expected)):
        assert g.shape == e.shape and g.dtype == e.dtype, (k, g.shape, e.shape, g.dtype, e.dtype)
        if e.dtype.kind == "f":
            np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6, equal_nan=True, err_msg=f"output {k}")
        else:
            np.testing.assert_array_equal(g, e, err_msg=f"output {k}")
    return got


def _data(rng, shape, dtype=np.float32, special=True):
    """Small integers (many ties); floats also get -0.0, +-inf and NaN at random places when `special`."""
    a = rng.integers(-2, 3, shape)
    if np.dtype(dtype) == np.bool_:
        return a > 0
    a = a.astype(dtype)
    if special and a.dtype.kind == "f":
        a[rng.random(shape) < 0.1] = -0.0
        a[rng.random(shape) < 0.1] = np.inf
        a[rng.random(shape) < 0.1] = -np.inf
        a[rng.random(shape) < 0.15] = np.nan
    return a


def _feeds(rng, shape, dtype=np.float32):
    """The recorded-size inputs: one without specials, then several with them (and rows all NaN or all tied)."""
    out = [_data(rng, shape, dtype, special=False)] + [_data(rng, shape, dtype) for _ in range(6)]
    if np.dtype(dtype).kind == "f":
        for value in (np.nan, 1.0, np.inf):
            a = _data(rng, shape, dtype)
            a[0] = value
            out.append(a)
    return out


FORWARDS = {
    "argmax dim=None": lambda x: x.argmax(),
    "argmin dim=None": lambda x: x.argmin(),
    "argmax 1": lambda x: x.argmax(1),
    "argmax -1 keepdim": lambda x: x.argmax(-1, keepdim=True),
    "argmin 0": lambda x: x.argmin(0),
    "argmin -2 keepdim": lambda x: x.argmin(-2, keepdim=True),
    "tl.argmax axis=": lambda x: tl.argmax(x, axis=1),
    "max 1": lambda x: tuple(x.max(1)),
    "max -2 keepdim": lambda x: tuple(x.max(-2, keepdim=True)),
    "min 0": lambda x: tuple(x.min(0)),
    "min -1 keepdim": lambda x: tuple(x.min(-1, keepdim=True)),
    "sort": lambda x: tuple(x.sort()),
    "sort 0 descending": lambda x: tuple(x.sort(0, descending=True)),
    "sort stable": lambda x: tuple(tl.sort(x, dim=-2, stable=True)),
    "argsort descending": lambda x: x.argsort(1, descending=True),
    "topk 3": lambda x: tuple(x.topk(3)),
    "topk 1 dim 0": lambda x: tuple(x.topk(1, 0)),
    "topk smallest": lambda x: tuple(x.topk(2, -1, largest=False)),
    "topk all, sorted=False": lambda x: tuple(x.topk(5, 1, largest=False, sorted=False)),
    "topk 0": lambda x: tuple(x.topk(0, 1)),
}


@pytest.mark.parametrize("name", sorted(FORWARDS))
def test_indices_and_values_match_ours_at_fresh_inputs(ort, name):
    """Exported at an input without ties, run at inputs with ties, -0.0, infinities and NaN."""
    fn = FORWARDS[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    sess = _session(ort, fn, (tl.tensor(rng.standard_normal((4, 5)).astype(np.float32)),))
    for feed in _feeds(rng, (4, 5)):
        _agrees(sess, fn, [feed])


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8,
                                   np.uint16, np.uint32, np.bool_])
def test_every_orderable_dtype(ort, dtype):
    """Integer and bool inputs are widened only where onnxruntime lacks a kernel; the order must not change."""
    fns = [lambda x: x.argmax(1), lambda x: x.argmin(), lambda x: tuple(x.max(0)), lambda x: tuple(x.sort(1)),
           lambda x: tuple(x.sort(0, descending=True))]
    if dtype != np.bool_:  # topk refuses bool, as PyTorch
        fns.append(lambda x: tuple(x.topk(2, 1, largest=False)))
    rng = np.random.default_rng(1)
    for fn in fns:
        sess = _session(ort, fn, (tl.tensor(_data(rng, (3, 6), dtype, special=False)),))
        for feed in _feeds(rng, (3, 6), dtype):
            _agrees(sess, fn, [feed])


def test_an_unsigned_64_bit_input_is_refused_by_name(ort):
    x = tl.tensor(np.arange(6, dtype=np.uint64).reshape(2, 3))
    with pytest.raises(tl.onnx.ExportError, match="_arg_index.*uint64"):
        tl.onnx.export(lambda t: t.argmax(1), (x,), io.BytesIO())


def test_nan_agrees_with_pytorch(ort, torch):
    """The three agree on NaN: first NaN for argmax and argmin, NaN last ascending and first descending, ties in
    index order (PyTorch's sort with stable=True)."""
    rng = np.random.default_rng(2)
    fns = {"argmax": (lambda t: t.argmax(1)), "argmin": (lambda t: t.argmin(1)),
           "max": (lambda t: tuple(t.max(1))), "min": (lambda t: tuple(t.min(0))),
           "sort": (lambda t: tuple(t.sort(dim=1, stable=True))),
           "sort descending": (lambda t: tuple(t.sort(dim=1, descending=True, stable=True)))}
    for name, fn in fns.items():
        sess = _session(ort, fn, (tl.tensor(_data(rng, (5, 7), special=False)),))
        for feed in _feeds(rng, (5, 7)):
            got = sess.run(None, {sess.get_inputs()[0].name: feed})
            expected = [e.numpy() for e in _flat(fn(torch.tensor(feed)))]
            for g, e in zip(got, expected):
                np.testing.assert_array_equal(g, e, err_msg=name)



def _nan_blind_topk():
    """A TopK as the ONNX spec allows (ties to the lower index; NaN's place unspecified) that ranks NaN worst, as a
    plain `>` comparator does: onnxruntime happens to rank NaN as NumPy, so only this shows that the graph does not
    depend on where a runtime puts NaN."""
    from onnx.reference.op_run import OpRun

    class TopK(OpRun):
        op_domain = ""

        def _run(self, data, k, axis=-1, largest=1, sorted=1):  # noqa: A002
            axis = axis % data.ndim
            key = np.where(np.isnan(data), -np.inf if largest else np.inf, data) if data.dtype.kind == "f" else data
            n = data.shape[axis]
            order = (np.flip(n - 1 - np.argsort(np.flip(key, axis), axis, kind="stable"), axis) if largest
                     else np.argsort(key, axis, kind="stable"))
            idx = np.take(order, np.arange(int(k[0])), axis=axis).astype(np.int64)
            return np.take_along_axis(data, idx, axis), idx
    return TopK


@pytest.mark.parametrize("name", ["sort", "sort 0 descending", "argsort descending", "topk 3", "topk 1 dim 0",
                                  "topk smallest"])
def test_nan_order_does_not_depend_on_the_runtime(ort, name):
    import onnx
    from onnx.reference import ReferenceEvaluator
    fn = FORWARDS[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    buf = io.BytesIO()
    tl.onnx.export(fn, (tl.tensor(_data(rng, (4, 5), special=False)),), buf)
    ref = ReferenceEvaluator(onnx.load_from_string(buf.getvalue()), new_ops=[_nan_blind_topk()])
    for feed in _feeds(rng, (4, 5)):
        got = ref.run(None, {"input_0": feed})
        for g, e in zip(got, _flat(fn(tl.tensor(feed)))):
            np.testing.assert_array_equal(g, e.numpy(), err_msg=name)

class _Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 5))

    def forward(self, x):
        logits = self.net(x)
        return logits.argmax(1), logits.max(1).values, logits.topk(3, 1).indices


def test_a_classifier_ending_in_argmax_runs_at_other_batch_sizes(ort):
    """The gap this closes: logits.argmax(1) under a dynamic batch axis."""
    tl.manual_seed(0)
    model = _Classifier().eval()
    rng = np.random.default_rng(3)
    sess = _session(ort, model, (tl.randn(4, 6),), input_names=["x"], output_names=["label", "score", "top3"],
                    dynamic_axes={"x": {0: "batch"}, "label": {0: "batch"}, "score": {0: "batch"},
                                  "top3": {0: "batch"}})
    for n in (1, 2, 7, 4):
        with tl.no_grad():
            _agrees(sess, model, [rng.standard_normal((n, 6)).astype(np.float32)])


@pytest.mark.parametrize("name, fn", [
    ("sort along the batch", lambda x: tuple(x.sort(0, descending=True))),
    ("topk k = batch", lambda x: tuple(x.topk(x.shape[0], 0, largest=False))),
    ("topk k = batch - 1", lambda x: tuple(x.topk(x.shape[0] - 1, 0))),
    ("argmin over the batch", lambda x: x.argmin(0, keepdim=True)),
    ("argmax flattened", lambda x: x.argmax()),
    ("max along the other axis", lambda x: tuple(x.max(1))),
    ("topk along the other axis", lambda x: tuple(x.topk(2, 1))),
], ids=lambda v: v if isinstance(v, str) else "")
def test_dynamic_batch(ort, name, fn):
    """The size along the sorted dim, and k, follow the batch (TopK's k from the run-time shape)."""
    rng = np.random.default_rng(4)
    sess = _session(ort, fn, (tl.tensor(_data(rng, (4, 3), special=False)),), input_names=["x"],
                    dynamic_axes={"x": {0: "b"}})
    for n in (2, 3, 6, 9):
        for _ in range(3):
            _agrees(sess, fn, [_data(rng, (n, 3))])


def test_values_and_indices_used_downstream(ort):
    """Indices gathered with, compared, used as a float and returned; values combined with other outputs."""
    def fn(x, y):
        top = x.topk(2, 1)
        order = x.argsort(1)
        picked = y.gather(1, top.indices)  # another input, at x's indices
        rank_sum = (order.float() * x.sort(1).values).sum(1)
        same = (x.argmax(1) == top.indices[:, 0]).long()
        return picked, top.values + picked, rank_sum, same, order, x.min(0).indices + 1
    rng = np.random.default_rng(5)
    args = (tl.tensor(_data(rng, (4, 5), special=False)), tl.tensor(rng.standard_normal((4, 5)).astype(np.float32)))
    sess = _session(ort, fn, args, input_names=["x", "y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})
    for n in (4, 2, 6):
        for _ in range(3):
            _agrees(sess, fn, [_data(rng, (n, 5)), rng.standard_normal((n, 5)).astype(np.float32)])


@pytest.mark.parametrize("name, loss", [
    ("max", lambda x: (x.max(1).values ** 2).sum()),
    ("min keepdim", lambda x: (x.min(0, keepdim=True).values * x).sum()),
    ("topk", lambda x: (x.topk(2, 1).values ** 3).sum()),
    ("sort descending", lambda x: (x.sort(1, descending=True).values * tl.arange(5.0)).sum()),
], ids=lambda v: v if isinstance(v, str) else "")
def test_gradient_through_the_chosen_positions(ort, name, loss):
    """tl.grad(..., create_graph=True) of a loss through max(dim)/topk/sort: the gradient's scatter goes to the
    indices computed in the graph, so it follows a fresh input (and the batch size)."""
    def fn(x):
        return tl.grad(loss(x), x, create_graph=True)[0]
    rng = np.random.default_rng(6)
    x = tl.tensor(rng.standard_normal((4, 5)).astype(np.float32), requires_grad=True)
    sess = _session(ort, fn, (x,), input_names=["x"], dynamic_axes={"x": {0: "b"}})
    for n in (4, 3, 6):
        for feed in (rng.standard_normal((n, 5)).astype(np.float32), _data(rng, (n, 5), special=False)):  # ties
            got, = sess.run(None, {"x": feed})
            want = fn(tl.tensor(feed, requires_grad=True)).detach().numpy()
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# topk(k) with k a 0-d Tensor read k._data directly, a read no capture saw: the export froze a k computed from the
# input at its recorded value (a graph with the wrong number of columns elsewhere), and tl.compile replayed the
# first call's k for another k tensor
def test_a_k_computed_from_the_input_is_refused(ort):
    x = tl.randn(3, 5)
    with pytest.raises(tl.onnx.ExportError, match="steers Python"):
        tl.onnx.export(lambda t: t.topk((t[0] > 0).sum(), 1).values, (x,), io.BytesIO())
    fn = lambda t: tuple(t.topk(tl.tensor(2), 1))  # noqa: E731  (a constant k exports)
    _agrees(_session(ort, fn, (x,)), fn, [_data(np.random.default_rng(7), (3, 5))])


def test_compiled_topk_follows_a_k_tensor():
    x = tl.randn(3, 5)
    f = tl.compile(lambda t, k: t.topk(k, 1).values)
    for k in (2, 3, 2, 5):
        np.testing.assert_array_equal(f(x, tl.tensor(k)).numpy(), x.topk(k, 1).values.numpy())


# argmax/argmin with dim=None and keepdim=True returned a 0-d tensor; PyTorch keeps every dim with size 1 ((1, 1) for a
# matrix): _arg_extreme dropped keepdim when dim was None
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_arg_extreme_over_all_elements_keeps_every_dim(ort, name):
    rng = np.random.default_rng(21)
    fn = lambda t: getattr(t, name)(keepdim=True)  # noqa: E731
    x = _data(rng, (3, 4))
    got = fn(tl.tensor(x))
    assert got.shape == (1, 1) and got.dtype == np.int64
    assert int(got.numpy()[0, 0]) == int(getattr(tl.tensor(x), name)().item())
    sess = _session(ort, fn, (tl.tensor(_data(rng, (3, 4), special=False)),), input_names=["x"],
                    dynamic_axes={"x": {0: "b"}})
    for shape in ((3, 4), (5, 4), (1, 4)):
        _agrees(sess, fn, [_data(rng, shape)])


def test_arg_extreme_over_all_elements_against_pytorch(torch):
    rng = np.random.default_rng(22)
    for shape in ((3, 4), (2, 3, 2), (5,)):
        x = rng.standard_normal(shape)
        for name in ("argmax", "argmin"):
            for keep in (True, False):
                ours, theirs = getattr(tl.tensor(x), name)(keepdim=keep), getattr(torch.tensor(x), name)(keepdim=keep)
                assert ours.shape == tuple(theirs.shape) and np.array_equal(ours.numpy(), theirs.numpy())
