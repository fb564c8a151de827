"""Input fuzzing of the layers and losses (issue 8, items 1 and 2).

Random ranks, sizes, channel counts and dtypes go into Linear, Conv2d, the pools, the norms, Embedding,
RNN/LSTM/GRU and the losses. A valid input (PyTorch's rules) must give the right output shape and dtype, finite
values and gradients of the right shapes; an invalid one must raise TypeError/ValueError/IndexError/RuntimeError
naming the layer. Then `load_state_dict` of randomly broken state dicts (and of a mismatched checkpoint file) must
either load everything or raise and leave the module exactly as it was. Then the invalid arguments and inputs
that were pinned bugs (issue 8): each must raise naming the layer.
"""
import collections
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import functional as F

ALLOWED = (TypeError, ValueError, IndexError, RuntimeError)
CASES = collections.Counter()
SCALE = float(os.environ.get("TL_FUZZ_SCALE", "1"))
DTYPES = [np.dtype(d) for d in ("float16", "float32", "float64", "int64", "bool")]


def examples(n):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, database=None)


@pytest.fixture(scope="module", autouse=True)
def _report_case_count():
    yield
    print(f"\n[test_fuzz_layers] {sum(CASES.values())} fuzz cases run: "
          + ", ".join(f"{k}={v}" for k, v in sorted(CASES.items())))


def conv_out(n, k, s=1, p=0, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def result_dtype(dt):
    """Layers hold float32 parameters: float16 and integer inputs compute in float32, float64 stays float64."""
    return np.dtype("float64") if dt == np.float64 else np.dtype("float32")


# name: (module factory, names allowed in messages, rule(shape, dtype) -> expected output shape or None if invalid)
LAYERS = {
    "Linear": (lambda: nn.Linear(4, 3), ("Linear",),
               lambda s, dt: s[:-1] + (3,) if len(s) >= 1 and s[-1] == 4 else None),
    "Conv2d": (lambda: nn.Conv2d(3, 5, 3, padding=1, stride=2), ("Conv2d",),
               lambda s, dt: s[:-3] + (5, conv_out(s[-2], 3, 2, 1), conv_out(s[-1], 3, 2, 1))
               if len(s) in (3, 4) and s[-3] == 3 and min(s[-2:]) >= 1 else None),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), ("MaxPool2d", "max_pool2d"),
                  lambda s, dt: s[:-2] + (s[-2] // 2, s[-1] // 2) if len(s) in (3, 4) and min(s[-2:]) >= 2 else None),
    "AvgPool2d": (lambda: nn.AvgPool2d(2, stride=1), ("AvgPool2d", "avg_pool2d"),
                  lambda s, dt: s[:-2] + (s[-2] - 1, s[-1] - 1) if len(s) in (3, 4) and min(s[-2:]) >= 2 else None),
    # norms: floating inputs only; in training, one value per channel is an error (an empty batch is not)
    "BatchNorm1d": (lambda: nn.BatchNorm1d(4), ("BatchNorm1d",),
                    lambda s, dt: s if len(s) in (2, 3) and s[1] == 4 and np.prod(s) // 4 != 1 and dt.kind == "f"
                    else None),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3), ("BatchNorm2d",),
                    lambda s, dt: s if len(s) == 4 and s[1] == 3 and np.prod(s) // 3 != 1 and dt.kind == "f"
                    else None),
    "LayerNorm": (lambda: nn.LayerNorm(4), ("LayerNorm",),
                  lambda s, dt: s if len(s) >= 1 and s[-1] == 4 and dt.kind == "f" else None),
    "RNN": (lambda: nn.RNN(4, 6), ("RNN",),
            lambda s, dt: s[:-1] + (6,) if len(s) in (2, 3) and s[-1] == 4 and s[0] >= 1 else None),
    "LSTM": (lambda: nn.LSTM(4, 6, batch_first=True), ("LSTM",),
             lambda s, dt: s[:-1] + (6,) if len(s) in (2, 3) and s[-1] == 4 and s[-2] >= 1 else None),
    "GRU": (lambda: nn.GRU(4, 6, num_layers=2, bidirectional=True), ("GRU",),
            lambda s, dt: s[:-1] + (12,) if len(s) in (2, 3) and s[-1] == 4 and s[0] >= 1 else None),
}
POOLS = ("MaxPool2d", "AvgPool2d")


@st.composite
def layer_input(draw, name):
    """A shape near what the layer expects: the right rank or one off, the right channel count or one off."""
    rank = draw(st.integers(0, 5))
    shape = [draw(st.integers(0, 5)) for _ in range(rank)]
    if rank and draw(st.booleans()):  # often give the expected feature/channel count somewhere useful
        feature = {"Linear": (-1, 4), "LayerNorm": (-1, 4), "RNN": (-1, 4), "LSTM": (-1, 4), "GRU": (-1, 4),
                   "Conv2d": (-3, 3), "BatchNorm1d": (1, 4), "BatchNorm2d": (1, 3)}.get(name)
        if feature and -rank <= feature[0] < rank:
            shape[feature[0]] = feature[1]
    return tuple(shape), draw(st.sampled_from(DTYPES))


def check_layer(name, shape, dt, seed):
    make, names, rule = LAYERS[name]
    CASES[name] += 1
    tl.manual_seed(0)
    layer = make()
    rng = np.random.default_rng(seed)
    x = tl.tensor((rng.standard_normal(shape) * 2).astype(dt), requires_grad=dt.kind == "f")
    expected = rule(shape, dt)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = layer(x)
    except Exception as exc:  # noqa: BLE001 - classify every exception
        assert isinstance(exc, ALLOWED), f"{name}{shape} {dt}: {type(exc).__name__}: {exc}"
        assert any(n in str(exc) for n in names), f"{name}: message does not name the layer: {exc}"
        assert expected is None, f"{name} rejected a valid input {shape} {dt}: {exc}"
        return
    assert expected is not None, f"{name} accepted an invalid input {shape} {dt}, returned {out}"
    y = out[0] if isinstance(out, tuple) else out
    assert y.shape == expected, f"{name}{shape}: output shape {y.shape}, expected {expected}"
    if name in POOLS:  # no parameters: floats keep their dtype; ints/bools may be pooled or rejected
        assert y.dtype == dt or dt.kind != "f", f"{name}{shape} {dt}: output dtype {y.dtype}"
    else:
        assert y.dtype == result_dtype(dt), f"{name}{shape} {dt}: output dtype {y.dtype}"
    assert np.isfinite(y.numpy()).all(), f"{name}{shape} {dt}: non-finite output"
    if dt.kind == "f" and y.numpy().size:
        y.sum().backward()
        assert x.grad.shape == x.shape and x.grad.dtype == x.dtype
        for pname, p in layer.named_parameters():
            assert p.grad is not None and p.grad.shape == p.shape, pname
            assert np.isfinite(p.grad.numpy()).all(), pname


@examples(300)
@given(data=st.data(), name=st.sampled_from(sorted(LAYERS)), seed=st.integers(0, 2 ** 16))
def test_layers_on_random_inputs(data, name, seed):
    shape, dt = data.draw(layer_input(name))
    check_layer(name, shape, dt, seed)


def pair_or_int(lo):
    """Mostly valid (>= lo), sometimes -1..3: an int or a pair."""
    one = st.one_of(st.integers(lo, 3), st.integers(-1, 3))
    return st.one_of(one, st.tuples(one, one))


@examples(200)
@given(k=pair_or_int(1), s=pair_or_int(1), p=pair_or_int(0), d=pair_or_int(1),
       groups=st.one_of(st.just(1), st.integers(0, 3)),
       cin=st.integers(1, 4), hw=st.tuples(st.integers(1, 7), st.integers(1, 7)))
def test_conv2d_geometry_on_random_arguments(k, s, p, d, groups, cin, hw):
    """Conv2d's constructor rejects what PyTorch's conv rejects (kernel/stride/dilation <= 0, padding < 0, groups
    not dividing the channels), naming the layer; an accepted one gives PyTorch's output size, or a clear error
    when the dilated kernel does not fit the padded input."""
    CASES["Conv2d-geometry"] += 1
    two = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    k2, s2, p2, d2 = two(k), two(s), two(p), two(d)
    valid = min(k2) > 0 and min(s2) > 0 and min(d2) > 0 and min(p2) >= 0 and groups > 0 and cin % groups == 0
    try:
        conv = nn.Conv2d(cin, 2 * max(groups, 1), k, stride=s, padding=p, dilation=d, groups=groups)
    except ALLOWED as exc:
        assert "Conv2d" in str(exc) and not valid, f"{type(exc).__name__}: {exc}"
        return
    assert valid, f"Conv2d accepted kernel {k}, stride {s}, padding {p}, dilation {d}, groups {groups}"
    x = X4(2, cin, *hw)
    out_hw = tuple(conv_out(hw[i], k2[i], s2[i], p2[i], d2[i]) for i in range(2))
    try:
        y = conv(x)
    except ALLOWED as exc:
        assert "Conv2d" in str(exc) and min(out_hw) < 1, f"{type(exc).__name__}: {exc}"
        return
    assert y.shape == (2, conv.out_channels) + out_hw


# ---------------------------------------------------------------- losses
LOSSES = {"mse_loss": F.mse_loss, "l1_loss": F.l1_loss, "binary_cross_entropy_with_logits":
          F.binary_cross_entropy_with_logits}


@examples(150)
@given(name=st.sampled_from(sorted(LOSSES)), s1=st.lists(st.integers(0, 3), max_size=3),
       s2=st.lists(st.integers(0, 3), max_size=3), reduction=st.sampled_from(["mean", "sum", "none"]))
def test_pointwise_losses_on_random_shapes(name, s1, s2, reduction):
    """mse/l1 broadcast different shapes with PyTorch's warning (and raise naming the loss if they do not
    broadcast); BCE-with-logits wants the same shape."""
    s1, s2 = tuple(s1), tuple(s2)
    CASES[name] += 1
    try:
        shape = np.broadcast_shapes(s1, s2) if name != "binary_cross_entropy_with_logits" or s1 == s2 else None
    except ValueError:
        shape = None
    x = tl.tensor(np.linspace(-1, 1, int(np.prod(s1))).reshape(s1), requires_grad=True)
    y = tl.tensor(np.linspace(0, 1, int(np.prod(s2))).reshape(s2))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = LOSSES[name](x, y, reduction=reduction)
    except ALLOWED as exc:
        assert name in str(exc) and str(s1) in str(exc) and str(s2) in str(exc), exc
        assert shape is None, f"{name} rejected shapes {s1} and {s2}: {exc}"
        return
    assert shape is not None, f"{name} accepted shapes {s1} and {s2}"
    assert (s1 != s2) == any("target size" in str(w.message) for w in caught), [str(w.message) for w in caught]
    assert out.shape == (shape if reduction == "none" else ())
    if np.prod(shape) or reduction == "sum":
        assert np.isfinite(out.numpy()).all()
        out.sum().backward()
        assert x.grad.shape == s1


@examples(150)
@given(n=st.integers(0, 3), c=st.integers(1, 4), extra=st.lists(st.integers(1, 2), max_size=2),
       lo=st.integers(-2, 0), hi=st.integers(0, 5), tshape_delta=st.integers(-1, 1),
       tdtype=st.sampled_from(["int64", "int32", "float32", "bool"]))
def test_cross_entropy_on_random_targets(n, c, extra, lo, hi, tshape_delta, tdtype):
    CASES["cross_entropy"] += 1
    shape = (n, c) + tuple(extra)
    tshape = (n,) + tuple(extra)
    if tshape_delta and tshape:
        tshape = (max(tshape[0] + tshape_delta, 0),) + tshape[1:]
    rng = np.random.default_rng(n * 100 + c)
    x = tl.tensor(rng.standard_normal(shape), requires_grad=True)
    t = rng.integers(lo, hi + 1, tshape).astype(tdtype) if tdtype != "float32" else rng.random(tshape).astype(tdtype)
    valid = tdtype in ("int64", "int32") and tshape == (n,) + tuple(extra) and (t.size == 0 or (
        t.min() >= 0 and t.max() < c))
    try:
        loss = F.cross_entropy(x, tl.tensor(t))
    except ALLOWED as exc:
        assert "cross_entropy" in str(exc), exc
        assert not valid, f"rejected valid targets: {exc}"
        return
    assert valid or tdtype == "float32" and tuple(t.shape) == shape, f"accepted targets {t!r} for input {shape}"
    if n:
        loss.backward()
        assert np.isfinite(loss.item()) and np.isfinite(x.grad.numpy()).all()


# ---------------------------------------------------------------- load_state_dict: all or nothing
def small_model():
    tl.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def snapshot(model):
    return {k: (v, v.numpy().copy(), v._version) for k, v in model.state_dict(keep_vars=True).items()}


def unchanged(model, snap):
    now = model.state_dict(keep_vars=True)
    assert list(now) == list(snap)
    for k, (obj, values, version) in snap.items():
        assert now[k] is obj and obj._version == version, k
        np.testing.assert_array_equal(obj.numpy(), values, err_msg=k)


MUTATIONS = ["drop", "extra", "rename", "reshape", "transpose", "dtype", "to_list", "to_none", "to_str", "nan",
             "scalar", "numpy", "float64"]


@examples(300)
@given(muts=st.lists(st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 50)), min_size=0, max_size=3),
       strict=st.booleans())
def test_load_state_dict_of_mutated_state_is_all_or_nothing(muts, strict):
    CASES["load_state_dict"] += 1
    src = small_model()
    with tl.no_grad():
        for p in src.parameters():
            p.data += 1.0  # different from the target's values, so a partial load would show
    sd = dict(src.state_dict())
    for kind, i in muts:
        keys = list(sd)
        if not keys:
            break
        key = keys[i % len(keys)]
        v = sd[key]
        arr = v.numpy() if isinstance(v, tl.Tensor) else np.asarray(v) if isinstance(v, np.ndarray) else None
        if kind == "drop":
            del sd[key]
        elif kind == "extra":
            sd[f"extra.{i}"] = tl.tensor([1.0])
        elif kind == "rename":
            sd[key + "_old"] = sd.pop(key)
        elif arr is None:
            continue
        elif kind == "reshape" and arr.size:
            sd[key] = tl.tensor(arr.reshape(-1, 1) if arr.ndim else arr.reshape(1))
        elif kind == "transpose" and arr.ndim == 2 and arr.shape[0] != arr.shape[1]:
            sd[key] = tl.tensor(arr.T.copy())
        elif kind == "dtype":
            sd[key] = tl.tensor(arr.astype(np.int32))
        elif kind in ("to_list", "to_none", "to_str"):
            sd[key] = {"to_list": arr.tolist(), "to_none": None, "to_str": "weights"}[kind]
        elif kind == "nan":
            sd[key] = tl.tensor(np.full_like(arr, np.nan)) if arr.dtype.kind == "f" else sd[key]
        elif kind in ("numpy", "float64"):
            sd[key] = arr.astype(np.float64) if kind == "float64" and arr.dtype.kind == "f" else arr.copy()
    model = small_model()
    before = snapshot(model)
    try:
        result = model.load_state_dict(sd, strict=strict)
    except RuntimeError as exc:
        assert "loading state_dict for Sequential" in str(exc)
        unchanged(model, before)
        return
    # loaded: every key present was copied in place (same objects), cast to the existing dtype
    for k, (obj, _, _) in before.items():
        assert model.state_dict(keep_vars=True)[k] is obj
        if k in sd:
            want = sd[k].numpy() if isinstance(sd[k], tl.Tensor) else np.asarray(sd[k])
            np.testing.assert_array_equal(obj.numpy(), want.astype(obj.dtype), err_msg=k)
        elif k.endswith("num_batches_tracked"):  # PyTorch keeps the counter of a dict without it: not missing
            assert k not in result.missing_keys
            np.testing.assert_array_equal(obj.numpy(), before[k][1])
        else:
            assert not strict and k in result.missing_keys
            np.testing.assert_array_equal(obj.numpy(), before[k][1])


def test_loading_a_mismatched_checkpoint_file_leaves_the_module_unchanged(tmp_path):
    other = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    path = tmp_path / "other.safetensors"
    tl.save(other.state_dict(), path)
    model = small_model()
    before = snapshot(model)
    for strict in (True, False):
        with pytest.raises(RuntimeError, match="size mismatch for 0.weight") as info:
            model.load_state_dict(tl.load(path), strict=strict)
        assert "size mismatch for 1.running_mean" in str(info.value)
        unchanged(model, before)
    x = tl.tensor(np.ones((2, 3), np.float32))
    model.eval()
    assert model(x).shape == (2, 2)  # still usable


# ---------------------------------------------------------------- invalid arguments and inputs (were pinned bugs)
def _named(layer, fn):
    def check():
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001
            assert isinstance(exc, ALLOWED) and layer in str(exc), f"{type(exc).__name__}: {exc}"
            return
        raise AssertionError(f"{layer} accepted it and returned {getattr(out, 'shape', out)}")
    return check


X4 = lambda *s: tl.tensor(np.ones(s, np.float32))  # noqa: E731


def _with(module, **attrs):
    for k, v in attrs.items():
        setattr(module, k, v)
    return module


NAMED_ERRORS = {
    "conv-kernel-0-silent": _named("Conv2d", lambda: nn.Conv2d(3, 5, 0)(X4(1, 3, 8, 8))),
    "conv-dilation-0-silent": _named("Conv2d", lambda: nn.Conv2d(3, 5, 3, dilation=0)(X4(1, 3, 8, 8))),
    "conv-stride-0-zerodivision": _named("Conv2d", lambda: nn.Conv2d(3, 5, 3, stride=0)(X4(1, 3, 8, 8))),
    "conv-negative-padding-names-unfold": _named("Conv2d", lambda: nn.Conv2d(3, 5, 3, padding=-1)(X4(1, 3, 8, 8))),
    "norm-int-input": _named("BatchNorm1d", lambda: nn.BatchNorm1d(4)(tl.tensor(np.ones((2, 4), np.int64)))),
    "layernorm-int-input": _named("LayerNorm", lambda: nn.LayerNorm(4)(tl.tensor(np.ones((2, 4), np.int64)))),
    "batchnorm-one-value": _named("BatchNorm1d", lambda: nn.BatchNorm1d(4)(X4(1, 4))),
    "rnn-empty-sequence": _named("RNN", lambda: nn.RNN(4, 6)(X4(0, 2, 4))),
    "lstm-empty-sequence": _named("LSTM", lambda: nn.LSTM(4, 6)(X4(0, 2, 4))),
    "loss-shape-names-sub": _named("mse_loss", lambda: F.mse_loss(X4(2, 3), X4(3, 2))),
    "l1-shape-names-sub": _named("l1_loss", lambda: F.l1_loss(X4(2, 3), X4(3, 2))),
    "linear-negative-features": _named("Linear", lambda: nn.Linear(-1, 3)),
    "linear-float-features": _named("Linear", lambda: nn.Linear(2.5, 3)),
    "embedding-negative-size": _named("Embedding", lambda: nn.Embedding(-1, 3)),
    "conv-kernel-0-functional": _named("conv2d", lambda: F.conv2d(X4(1, 3, 8, 8), X4(5, 3, 0, 0))),
    "conv-stride-0-functional": _named("conv2d", lambda: F.conv2d(X4(1, 3, 8, 8), X4(5, 3, 3, 3), stride=(1, 0))),
    "conv-dilation-0-functional": _named("conv2d", lambda: F.conv2d(X4(1, 3, 8, 8), X4(5, 3, 3, 3), dilation=0)),
    "conv-negative-padding-functional": _named("conv2d", lambda: F.conv2d(X4(1, 3, 8, 8), X4(5, 3, 3, 3),
                                                                          padding=(0, -1))),
    "conv-groups-0-functional": _named("conv2d", lambda: F.conv2d(X4(1, 3, 8, 8), X4(5, 3, 3, 3), groups=0)),
    "conv-stride-changed-after-construction": _named("Conv2d", lambda: _with(nn.Conv2d(3, 5, 3), stride=(0, 1))(
        X4(1, 3, 8, 8))),
    "conv-float-kernel": _named("Conv2d", lambda: nn.Conv2d(3, 5, 2.5)),
    "conv-negative-channels": _named("Conv2d", lambda: nn.Conv2d(3, -5, 3)),
    "linear-negative-out-features": _named("Linear", lambda: nn.Linear(3, -1)),
    "embedding-float-size": _named("Embedding", lambda: nn.Embedding(3, 2.0)),
    "batch-norm-int-functional": _named("batch_norm", lambda: F.batch_norm(
        tl.tensor(np.ones((2, 4), np.int64)), None, None, training=True)),
    "layer-norm-bool-functional": _named("layer_norm", lambda: F.layer_norm(tl.tensor(np.ones((2, 4), bool)), (4,))),
    "batchnorm2d-one-value": _named("BatchNorm2d", lambda: nn.BatchNorm2d(3)(X4(1, 3, 1, 1))),
    "batchnorm-eval-int-input": _named("BatchNorm1d", lambda: nn.BatchNorm1d(4).eval()(
        tl.tensor(np.ones((2, 4), np.int64)))),
    "layernorm-negative-shape": _named("LayerNorm", lambda: nn.LayerNorm((2, -1))),
    "batchnorm-float-features": _named("BatchNorm2d", lambda: nn.BatchNorm2d(2.5)),
    "gru-empty-unbatched-sequence": _named("GRU", lambda: nn.GRU(4, 6, batch_first=True)(X4(0, 4))),
    "lstm-empty-batch-first-sequence": _named("LSTM", lambda: nn.LSTM(4, 6, batch_first=True)(X4(2, 0, 4))),
    "rnn-zero-input-size": _named("RNN", lambda: nn.RNN(0, 6)),
    "lstm-float-hidden-size": _named("LSTM", lambda: nn.LSTM(4, 6.0)),
    "bce-logits-weight-shape-names-mul": _named("binary_cross_entropy_with_logits", lambda: (
        F.binary_cross_entropy_with_logits(X4(2, 3), X4(2, 3), weight=X4(4)))),
    "bce-logits-pos-weight-shape-names-mul": _named("binary_cross_entropy_with_logits", lambda: (
        F.binary_cross_entropy_with_logits(X4(2, 3), X4(2, 3), pos_weight=X4(2)))),
    "bce-weight-shape-names-mul": _named("binary_cross_entropy", lambda: (
        F.binary_cross_entropy(X4(2, 3) * 0.5, X4(2, 3), weight=X4(3, 1)))),
}


@pytest.mark.filterwarnings("ignore:.*target size:UserWarning")  # mse/l1 warn about the mismatch first, as PyTorch
@pytest.mark.parametrize("case", list(NAMED_ERRORS))
def test_invalid_arguments_raise_naming_the_layer(case):
    CASES["named_errors"] += 1
    NAMED_ERRORS[case]()
