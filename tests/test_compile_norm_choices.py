"""`norm` makes no choice from values under a capture: eagerly it skips the zero masks when its input has no zero
(they change no bit then), a capture (tl.compile, vmap) always records them. Was: the choice was a guard, so a step
reading a norm after `optimizer.step()` ran eagerly on every call ("a choice made from tensor values comes after
the call already changed state"), and `vmap` of a norm over samples with and without zeros was refused."""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import func, nn


def _model_and_step():
    tl.manual_seed(0)
    m = nn.Linear(3, 2)
    opt = tl.optim.SGD(m.parameters(), lr=0.1)

    def step(x):
        opt.zero_grad()
        loss = m(x).pow(2).mean() + 0.1 * m.weight.norm()
        loss.backward()
        opt.step()
        return loss.item(), m.weight.norm().item(), m.bias.norm(p=3).item(), m.weight.norm(p=0.5, dim=1)
    return m, step


@pytest.mark.parametrize("zero_at", [None, 3])
def test_a_norm_after_the_optimizer_step_replays_bit_for_bit(zero_at):
    (m1, s1), (m2, s2) = _model_and_step(), _model_and_step()
    f = tl.compile(s1)
    for k in range(8):
        if k == zero_at:  # a zero vector (and zeros in the rows) from now on: the masks matter
            with tl.no_grad():
                for m in (m1, m2):
                    m.bias.zero_()
                    m.weight[:, 0] = 0.0
        x = tl.tensor(np.random.default_rng(k).standard_normal((4, 3)))
        a, b = f(x), s2(x)
        assert a[:3] == b[:3] and np.array_equal(a[3].numpy(), b[3].numpy()), (k, a, b)
        for p, q in zip(m1.parameters(), m2.parameters()):
            assert np.array_equal(p.numpy(), q.numpy()) and np.array_equal(p.grad.numpy(), q.grad.numpy())
    assert f.stats["replays"] == 7 and f.stats["eager_calls"] == 0, f.stats


@pytest.mark.parametrize("p", [2, 3, 0.5, "fro"])
def test_vmap_of_the_norm_over_samples_with_and_without_zeros_is_the_loop(p):
    u = np.random.default_rng(1).standard_normal((5, 4))
    u[1] = 0.0
    u[3, :2] = 0.0

    def g(r):
        return func.grad(lambda s: s.norm(p=p))(r)
    out = func.vmap(g)(tl.tensor(u))
    loop = np.stack([g(tl.tensor(u[i])).numpy() for i in range(5)])
    np.testing.assert_array_equal(out.numpy(), loop)
    assert not out.numpy()[1].any()  # (the zero vector's gradient: 0, as PyTorch)
    values = func.vmap(lambda s: s.norm(p=p))(tl.tensor(u))
    np.testing.assert_array_equal(values.numpy(), [tl.tensor(u[i]).norm(p=p).item() for i in range(5)])


@pytest.mark.parametrize("p", [2, 3, 0.5, -1])
def test_the_norms_masks_export_to_onnx(ort, p):
    """Every capture records the masks, ONNX export's too: they export as Equal(x, 0), and the model is right on
    rows of zeros, which the example input had none of."""
    from _onnx_common import session
    x = np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)
    fn = lambda t: t.norm(p=p, dim=1)  # noqa: E731
    sess = session(ort, fn, (tl.tensor(x),))
    x[1] = 0.0
    x[2, 1] = 0.0
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, fn(tl.tensor(x)).numpy(), rtol=1e-6)
