"""tl.func.vmap: every primitive's batching rule against a loop over the samples (random in_dims, Hypothesis
shapes), per-sample gradients against single-sample gradients and torch.func, compositions, out_dims,
randomness, and the errors for what cannot be batched."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import tinygrad_lite as tl
from tinygrad_lite import func
from tinygrad_lite.compile.hooks import constant
from tinygrad_lite.ops import REGISTRY

from primitive_gen import HypothesisGen

B = 3


def _batched(a, dim):
    """B variants of `a` (floats scaled, so domains and signs hold; others repeated), stacked at `dim`."""
    variants = [a * (1.0 + 0.05 * k) if a.dtype.kind == "f" else a for k in range(B)]
    return np.stack(variants, axis=dim), variants


def _declared(attrs):
    """The sampler's attribute arrays declared constants (inside the call: vmap refuses unknown arrays)."""
    if isinstance(attrs, np.ndarray):
        return constant(attrs)
    if isinstance(attrs, (tuple, list)):
        return type(attrs)(_declared(a) for a in attrs)
    return attrs


def test_every_primitive_declares_a_batching_rule():
    missing = [n for n, p in REGISTRY.items() if p.batch is None]
    assert not missing, f"primitives without a batching rule (defbatch): {missing}"


@pytest.mark.parametrize("name", sorted(REGISTRY))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_batching_rule_matches_a_loop_over_samples(name, data):
    prim = REGISTRY[name]
    arrays, attrs = prim.sample(HypothesisGen(data))
    dims = [data.draw(st.sampled_from([None] + list(range(a.ndim + 1)))) for a in arrays]
    if all(d is None for d in dims):
        dims[0] = 0
    inputs, per_sample = [], []
    for a, d in zip(arrays, dims):
        if d is None:
            inputs.append(tl.tensor(a))
            per_sample.append([a] * B)
        else:
            stacked, variants = _batched(a, d)
            inputs.append(tl.tensor(stacked))
            per_sample.append(variants)
    got = func.vmap(lambda *xs: prim.call(*xs, *_declared(attrs)), in_dims=tuple(dims))(*inputs)
    with tl.no_grad():
        want = np.stack([prim.call(*[tl.tensor(v[k]) for v in per_sample], *attrs).numpy() for k in range(B)])
    assert got.shape == want.shape, f"{name} in_dims={dims}: {got.shape} vs {want.shape}"
    # to the last bits: a batched BLAS call may sum in another order than one call per sample
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-13, atol=1e-15, err_msg=f"{name} in_dims={dims} "
                                                                                  f"attrs={attrs}")


def _mlp(width=16, classes=5, features=12, seed=0):
    tl.manual_seed(seed)
    model = tl.nn.Sequential(tl.nn.Linear(features, width), tl.nn.ReLU(), tl.nn.Linear(width, classes)).double()
    return model, {k: v.detach() for k, v in model.named_parameters()}


def test_per_sample_gradients_equal_single_sample_gradients():
    model, params = _mlp()
    rng = np.random.default_rng(0)
    x, y = tl.tensor(rng.standard_normal((7, 12))), tl.tensor(rng.integers(0, 5, 7))

    def loss(p, xi, yi):
        return tl.nn.functional.cross_entropy(func.functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))
    grads = func.vmap(func.grad(loss), in_dims=(None, 0, 0))(params, x, y)
    for i in range(7):
        single = func.grad(loss)(params, x[i], y[i])
        for k in params:
            np.testing.assert_allclose(grads[k].numpy()[i], single[k].numpy(), rtol=1e-13, atol=1e-15)


@pytest.mark.oracle
def test_vmap_compositions_match_torch_func(torch):
    tf = torch.func
    rng = np.random.default_rng(1)
    xs, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 3))

    def f(m, x, wm):
        return ((x @ wm).tanh() * x).sum() + (x * x).sum().sqrt()
    W, Wt = tl.tensor(w), torch.tensor(w)  # made outside: a tensor made inside from NumPy data is refused
    cases = [
        (lambda a: func.vmap(lambda x: f(tl, x, W))(a),
         lambda a: tf.vmap(lambda x: f(torch, x, Wt))(a)),
        (lambda a: func.vmap(func.grad(lambda x: f(tl, x, W)))(a),
         lambda a: tf.vmap(tf.grad(lambda x: f(torch, x, Wt)))(a)),
        (lambda a: func.vmap(func.jacrev(lambda x: (x @ W).sin()))(a),
         lambda a: tf.vmap(tf.jacrev(lambda x: (x @ Wt).sin()))(a)),
        (lambda a: func.vmap(func.hessian(lambda x: f(tl, x, W)))(a),
         lambda a: tf.vmap(tf.hessian(lambda x: f(torch, x, Wt)))(a)),
        (lambda a: func.vmap(lambda x: func.jvp(lambda y: y.exp() * y, (x,), (x * 0.5,))[1])(a),
         lambda a: tf.vmap(lambda x: tf.jvp(lambda y: y.exp() * y, (x,), (x * 0.5,))[1])(a)),
    ]
    for ours, theirs in cases:
        np.testing.assert_allclose(ours(tl.tensor(xs)).numpy(), theirs(torch.tensor(xs)).numpy(), rtol=1e-10,
                                   atol=1e-12)


def test_in_dims_out_dims_and_structures():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 3))
    # (out_dims per output: 1 is out of range for the 0-d x.sum(), an IndexError as in torch.func)
    out = func.vmap(lambda x, y: {"s": x * y, "t": (x.sum(), y)}, in_dims=(1, 0), out_dims={"s": 1, "t": (0, 1)})(
        tl.tensor(a), tl.tensor(b))
    np.testing.assert_array_equal(out["s"].numpy(), (a.T * b).T)
    np.testing.assert_array_equal(out["t"][0].numpy(), a.sum(0))
    shared = func.vmap(lambda x, y: x + y, in_dims=(0, None))(tl.tensor(b), tl.tensor(b[0]))
    np.testing.assert_array_equal(shared.numpy(), b + b[0])


def test_randomness_is_refused_by_default_and_same_or_different_on_request():
    x = tl.ones(4, 6, dtype=tl.float64)
    drop = lambda t: tl.nn.functional.dropout(t, 0.5, training=True)  # noqa: E731
    with pytest.raises(RuntimeError, match="randomness='error'"):
        func.vmap(drop)(x)
    same = func.vmap(drop, randomness="same")(x).numpy()
    assert (same == same[0]).all() and set(np.unique(same)) <= {0.0, 2.0}
    diff = func.vmap(drop, randomness="different")(x).numpy()
    assert not (diff == diff[0]).all() and set(np.unique(diff)) <= {0.0, 2.0}


@pytest.mark.parametrize("call, match", [
    (lambda: func.vmap(lambda x: x * 2)(tl.ones(3), tl.ones(4)), "different sizes"),
    (lambda: func.vmap(lambda x, y: x * y, in_dims=(0,))(tl.ones(3), tl.ones(3)), "in_dims has 1 entries"),
    (lambda: func.vmap(lambda x: x * 2, in_dims=2)(tl.ones(3, 2)), "out of range"),
    (lambda: func.vmap(lambda x: x * 2, in_dims=None)(tl.ones(3)), "no input is batched"),
    (lambda: func.vmap(lambda x: float(x.sum()))(tl.ones(3, 2)), "must return Tensors|read out of a tensor"),
    (lambda: func.vmap(lambda x: x * x.sum().item())(tl.ones(3, 2)), r"read out of a tensor with \.item\(\)"),
    (lambda: func.vmap(lambda x: x * 2)(tl.ones(3, requires_grad=True)), "grad\\(vmap\\(f\\)\\)"),
    (lambda: func.vmap(tl.nn.BatchNorm1d(2).double())(tl.ones(3, 4, 2, dtype=tl.float64)), "changes state"),
    (lambda: func.vmap(lambda x: x * 2, randomness="maybe"), "randomness must be one of"),
])
def test_what_cannot_be_batched_is_refused_with_its_reason(call, match):
    with pytest.raises((ValueError, TypeError, RuntimeError, NotImplementedError), match=match):
        call()


def test_a_choice_made_from_values_must_agree_across_the_batch():
    x = np.array([[1.0, 2.0], [0.0, 3.0]])  # the second sample has a zero: prod's gradient takes another path
    with pytest.raises(RuntimeError, match="sample 1 needs a different choice"):
        func.vmap(func.grad(lambda t: t.prod()))(tl.tensor(x))
    ok = func.vmap(func.grad(lambda t: t.prod()))(tl.tensor(x + 1.0))
    np.testing.assert_allclose(ok.numpy(), (x + 1.0)[:, ::-1])


@pytest.mark.oracle
def test_nested_vmap_matches_torch_func(torch):
    tf = torch.func
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 4, 5)), rng.standard_normal((4, 3))
    ours = func.vmap(func.vmap(lambda x, y: x * y.exp(), in_dims=(0, 1), out_dims=1), in_dims=(2, None))(
        tl.tensor(a), tl.tensor(b))
    theirs = tf.vmap(tf.vmap(lambda x, y: x * y.exp(), in_dims=(0, 1), out_dims=1), in_dims=(2, None))(
        torch.tensor(a), torch.tensor(b))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-13)
    g = func.vmap(func.vmap(func.grad(lambda x: (x.sin() * x).sum())))(tl.tensor(a))
    gt = tf.vmap(tf.vmap(tf.grad(lambda x: (x.sin() * x).sum())))(torch.tensor(a))
    np.testing.assert_allclose(g.numpy(), gt.numpy(), rtol=1e-13)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 10])
def test_chunk_size_replays_chunks_and_gives_the_same_result(chunk_size):
    """chunk_size bounds the samples replayed at once (peak memory), not the result: equal to the whole batch."""
    x = tl.tensor(np.random.default_rng(5).standard_normal((7, 3)))
    f = func.grad(lambda a: (a.sin() * a).sum())
    np.testing.assert_array_equal(func.vmap(f, chunk_size=chunk_size)(x).numpy(), func.vmap(f)(x).numpy())
    pair = func.vmap(lambda a: (a * 2, a.sum()), out_dims=(1, 0), chunk_size=chunk_size)(x)
    np.testing.assert_array_equal(pair[0].numpy(), (x.numpy() * 2).T)
    np.testing.assert_array_equal(pair[1].numpy(), x.numpy().sum(1))
    with pytest.raises(ValueError, match="chunk_size must be None or a positive int"):
        func.vmap(f, chunk_size=0)


def test_one_hot_under_vmap_needs_its_class_count():
    """F.one_hot batches (each index on its own); with num_classes=-1 the count would come from each sample's values:
    refused, as torch.func refuses it."""
    import tinygrad_lite.nn.functional as F
    idx = np.array([[0, 2], [1, 1], [3, 0]])
    got = tl.func.vmap(lambda t: F.one_hot(t, 5))(tl.tensor(idx))
    assert np.array_equal(got.numpy(), np.eye(5, dtype=np.int64)[idx])
    with pytest.raises(RuntimeError, match="pass num_classes"):
        tl.func.vmap(lambda t: F.one_hot(t))(tl.tensor(idx))
