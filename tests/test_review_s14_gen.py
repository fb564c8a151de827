"""Review s14 (generative models): VAE and GAN training code written for PyTorch (tests/compat/vae_mlp.py,
gan_mlp.py, wgan_gp.py) run under tinygrad_lite. The tests here are the ones that exposed a defect, plus pins on
the neighbouring cases; PyTorch is the oracle where it applies (float64)."""
import collections
import gc
import math
import warnings

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.autograd import stale
from tinygrad_lite.autograd.stale import StaleGraphWarning


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# Defect: WGAN-GP's gradient penalty, `autograd.grad(outputs=..., inputs=..., grad_outputs=..., create_graph=True,
# retain_graph=True, only_inputs=True)` as PyTorch-GAN writes it, raised TypeError (unexpected keyword
# 'only_inputs'); root cause: autograd.grad lacked torch's deprecated-but-accepted only_inputs, so its parameters
# after create_graph were also one place off torch's (a positional allow_unused landed on materialize_grads).
def _critic(mod, layer_norm):
    return mod.nn.Sequential(mod.nn.Linear(2, 5), mod.nn.LayerNorm(5) if layer_norm else mod.nn.Identity(),
                             mod.nn.LeakyReLU(0.2, inplace=True), mod.nn.Linear(5, 1)).double()


def _gradient_penalty(mod, D, real, fake, alpha):
    interpolates = (alpha * real + ((1 - alpha) * fake)).requires_grad_(True)
    d_interpolates = D(interpolates)
    ones = mod.ones(real.shape[0], 1, dtype=mod.float64, requires_grad=False)
    gradients = mod.autograd.grad(outputs=d_interpolates, inputs=interpolates, grad_outputs=ones,
                                  create_graph=True, retain_graph=True, only_inputs=True)[0]
    return ((gradients.view(gradients.size(0), -1).norm(2, dim=1) - 1) ** 2).mean()


@pytest.mark.oracle
@pytest.mark.parametrize("layer_norm", [False, True])
def test_gradient_penalty_with_only_inputs_matches_torch(torch, layer_norm):
    tD, lD = _critic(torch, layer_norm), _critic(tl, layer_norm)
    lD.load_state_dict({k: v.detach().numpy() for k, v in tD.state_dict().items()})
    real, fake, alpha = _x(6, 2, seed=1), _x(6, 2, seed=2), np.random.default_rng(3).random((6, 1))
    tp = _gradient_penalty(torch, tD, torch.tensor(real), torch.tensor(fake), torch.tensor(alpha))
    lp = _gradient_penalty(tl, lD, tl.tensor(real), tl.tensor(fake), tl.tensor(alpha))
    np.testing.assert_allclose(lp.item(), tp.item(), rtol=1e-12)
    tp.backward()
    lp.backward()  # second order: the penalty's gradient w.r.t. the critic's parameters
    ours = dict(lD.named_parameters())
    for name, p in tD.named_parameters():
        mine = ours[name].grad
        if p.grad is None:  # the last bias does not move the input gradient
            assert mine is None, name
        elif mine is None:
            # A known difference, left: a bias that reaches the input gradient only through LeakyReLU's mask gets
            # torch's zero tensor (the mask's zero derivative keeps it in the graph) and None here.
            assert not p.grad.any(), name
        else:
            np.testing.assert_allclose(mine.numpy(), p.grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=name)


def test_grad_parameter_order_is_torchs():
    x = tl.tensor([1.0, 2.0], dtype=tl.float64, requires_grad=True)
    unused = tl.tensor([3.0], dtype=tl.float64, requires_grad=True)
    # positionally: grad_outputs, retain_graph, create_graph, only_inputs, allow_unused
    gx, gu = tl.autograd.grad((x * x).sum(), [x, unused], None, False, False, True, True)
    np.testing.assert_array_equal(gx.numpy(), [2.0, 4.0])
    assert gu is None  # allow_unused=True gives None; materialize_grads (the next one) was not set
    with pytest.warns(FutureWarning, match="only_inputs argument is deprecated"):
        tl.autograd.grad((x * x).sum(), x, only_inputs=False)
    with pytest.raises(ValueError, match="materialize_grads=True.*allow_unused=False"):
        tl.autograd.grad((x * x).sum(), [x, unused], allow_unused=False, materialize_grads=True)
    gx, gu = tl.autograd.grad((x * x).sum(), [x, unused], materialize_grads=True)  # allow_unused left unset
    np.testing.assert_array_equal(gu.numpy(), [0.0])


# Defect: the GAN script got a StaleGraphWarning ("keeps every step's graph in memory") in its second training
# loop, although nothing leaked: the first loop's last losses (errD_real, errD_fake, errG) were simply still bound
# to module-level names, as in every tutorial. Root cause: autograd/stale.py warned as soon as the graph of ONE
# backward call from STALE_GRAPH_STEPS calls ago was alive; it now warns when such old graphs pile up
# (STALE_GRAPHS_PILED_UP of them alive at once), which a leak does and a finished loop's leftovers do not.
@pytest.fixture
def fresh_stale_watch(monkeypatch):
    monkeypatch.setattr(stale, "_warned_stale", False)
    monkeypatch.setattr(stale, "_recent_roots", collections.deque())
    monkeypatch.setattr(stale, "_old_roots", [], raising=False)


def _caught_stale(run):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run()
    return [w for w in caught if issubclass(w.category, StaleGraphWarning)], result


def test_a_finished_loops_last_losses_are_not_a_stale_graph(fresh_stale_watch):
    w = tl.tensor(_x(3), requires_grad=True)
    leftovers = {}

    def two_loops():
        for _ in range(5):  # the first loop: three backward calls per step, the losses stay bound afterwards
            err_real, err_fake, err_g = (w * w).sum(), (w * 2).sum(), (w ** 3).sum()
            for loss in (err_real, err_fake, err_g):
                loss.backward()
        leftovers.update(real=err_real, fake=err_fake, g=err_g)
        for _ in range(3 * stale.STALE_GRAPH_STEPS):  # the second loop: .item(), as it should
            loss = (w * 3).sum()
            loss.backward()
            loss.item()
    caught, _ = _caught_stale(two_loops)
    assert caught == [], [str(c.message) for c in caught]
    gc.collect()
    assert all(t.grad_fn is not None for t in leftovers.values())  # their graphs were alive all along


def test_a_sparse_pile_up_still_warns_once(fresh_stale_watch):
    w = tl.tensor(_x(3), requires_grad=True)

    def gan_loop():
        g_losses = []
        for _ in range(3 * stale.STALE_GRAPH_STEPS):  # d_real, d_fake, g: only the generator's loss is kept
            for loss in ((w * w).sum(), (w * 2).sum()):
                loss.backward()
            err_g = (w ** 3).sum()
            err_g.backward()
            g_losses.append(err_g)  # the mistake: every third graph stays alive
        return g_losses
    caught, _ = _caught_stale(gan_loop)
    assert len(caught) == 1, [str(c.message) for c in caught]
    msg = str(caught[0].message)
    assert "loss.item()" in msg and f"graphs of {stale.STALE_GRAPHS_PILED_UP} backward() calls" in msg


@pytest.mark.parametrize("ord", [2, 1, 3.5, math.inf, -math.inf, 0])
@pytest.mark.parametrize("dim", [None, 1, (0, 2)])
def test_linalg_vector_norm_is_torchs(torch, ord, dim):
    """torch.linalg.vector_norm (WGAN-GP's penalty as many write it): every element when dim is None, whatever the
    rank (torch.norm's 'fro' stops at two dims); values and gradients as PyTorch's."""
    a = np.random.default_rng(3).standard_normal((3, 4, 5))
    x = tl.tensor(a, requires_grad=True)
    y = tl.linalg.vector_norm(x, ord, dim=dim, keepdim=True)
    y.sum().backward()
    xt = torch.tensor(a, requires_grad=True)
    yt = torch.linalg.vector_norm(xt, ord, dim=dim, keepdim=True)
    yt.sum().backward()
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-12)
    want = np.zeros_like(a) if xt.grad is None else xt.grad.numpy()  # (ord 0: torch leaves it None, its zero)
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-12, atol=1e-15)
    with pytest.raises(TypeError, match="vector_norm: ord must be a number"):
        tl.linalg.vector_norm(x, "fro")
