"""tl.viz.GradFlow: statistics equal a NumPy recomputation; flags on a vanishing sigmoid net, a ReLU net with dead
units and an exploding run; bad input (no gradient, record before backward, many parameters); the plot."""
import sys

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn
from tinygrad_lite.nn import functional as F
from conftest import skip_or_fail



def mlp(dims, act, dtype=None):
    layers = []
    for a, b in zip(dims, dims[1:]):
        layers += [nn.Linear(a, b), act()]
    model = nn.Sequential(*layers[:-1])
    return model.double() if dtype == tl.float64 else model


def train(model, x, y, steps, lr, loss=lambda out, y: ((out - y) ** 2).mean(), **flow_options):
    flow = tl.viz.GradFlow(model, **flow_options)
    opt = tl.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss(model(x), y).backward()
        flow.record()
        opt.step()
    return flow


def test_statistics_equal_numpy_recomputation_float64():
    tl.manual_seed(0)
    model = mlp([4, 8, 3], nn.ReLU, tl.float64)
    flow = tl.viz.GradFlow(model)
    expected = {n: {k: [] for k in ("norm", "mean_abs", "max_abs", "zero_fraction", "nonfinite")}
                for n, _ in model.named_parameters()}
    for step in range(3):
        model.zero_grad()
        x = tl.randn(5, 4, dtype=tl.float64)
        model(x).pow(2).sum().backward()
        flow.record()
        for n, p in model.named_parameters():
            g = p.grad.numpy()
            for k, v in (("norm", np.linalg.norm(g)), ("mean_abs", np.abs(g).mean()), ("max_abs", np.abs(g).max()),
                         ("zero_fraction", np.mean(g == 0)), ("nonfinite", np.sum(~np.isfinite(g)))):
                expected[n][k].append(v)
    assert flow.steps == 3
    for n in expected:
        for k, v in expected[n].items():
            np.testing.assert_allclose(flow.history[n][k], v, rtol=1e-12, err_msg=f"{n} {k}")


def test_nonfinite_counted_and_flagged():
    w = tl.tensor(np.ones(4), dtype=tl.float64, requires_grad=True)
    flow = tl.viz.GradFlow({"w": w})
    with np.errstate(all="ignore"):
        (w * tl.tensor([np.inf, 1.0, np.nan, 2.0], dtype=tl.float64)).sum().backward()
    flow.record()
    assert flow.history["w"]["nonfinite"].tolist() == [2.0]
    assert "nonfinite" in flow.flags()["w"]


def test_six_layer_sigmoid_net_flags_its_first_layers_vanishing_not_its_last():
    tl.manual_seed(0)
    model = mlp([16] + [32] * 6 + [1], nn.Sigmoid)
    flow = train(model, tl.randn(64, 16), tl.randn(64, 1), steps=3, lr=0.1)
    flags = flow.flags()
    assert "vanishing" in flags["0.weight"] and "vanishing" in flags["2.weight"]
    assert flags["12.weight"] == [] and flags["10.weight"] == []
    assert "vanishing" in flow.report().splitlines()[3]


def test_a_bias_in_front_of_batchnorm_is_flagged_vanishing_the_others_are_not():
    """BatchNorm subtracts the batch mean, so the bias of the layer before it gets a zero gradient (up to
    rounding): judged per parameter against its weights, it is flagged; a per-module judgement would hide it."""
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4))
    y = tl.tensor(np.random.default_rng(1).integers(0, 4, 64))
    flags = train(model, tl.randn(64, 16), y, steps=3, lr=0.1, loss=F.cross_entropy).flags()
    assert flags["0.bias"] == ["vanishing"]
    assert all(f == [] for name, f in flags.items() if name != "0.bias"), flags


def test_healthy_relu_net_and_a_one_layer_model_have_no_flags():
    tl.manual_seed(0)
    y = tl.tensor(np.random.default_rng(0).integers(0, 10, 64))
    flow = train(mlp([64, 128, 128, 10], nn.ReLU), tl.randn(64, 64), y, steps=10, lr=0.1, loss=F.cross_entropy)
    assert all(f == [] for f in flow.flags().values()), flow.report()
    flow = train(nn.Linear(3, 1), tl.randn(5, 3), tl.randn(5, 1), steps=1, lr=0.1)
    assert all(f == [] for f in flow.flags().values())


def test_relu_net_with_dead_units_is_flagged_dead():
    tl.manual_seed(0)
    model = mlp([8, 32, 1], nn.ReLU)
    with tl.no_grad():
        model[0].bias.numpy()[:24] = -100.0  # 24 of 32 units never fire
    flow = train(model, tl.randn(32, 8), tl.randn(32, 1), steps=4, lr=0.01)
    flags = flow.flags()
    assert "dead" in flags["0.weight"] and "dead" in flags["0.bias"] and "dead" not in flags["2.bias"]
    assert flow.history["0.bias"]["zero_fraction"][-1] >= 24 / 32



def test_full_every_keeps_norms_every_step_and_the_rest_every_kth_exactly():
    tl.manual_seed(0)
    model = mlp([4, 8, 3], nn.ReLU, tl.float64)
    flow = tl.viz.GradFlow(model, full_every=3)
    expected = {n: [] for n, _ in model.named_parameters()}
    for step in range(7):
        model.zero_grad()
        model(tl.randn(5, 4, dtype=tl.float64)).pow(2).sum().backward()
        flow.record()
        for n, p in model.named_parameters():
            expected[n].append(p.grad.numpy().copy())
    assert flow.last_full_step == 6
    for n, grads in expected.items():
        h = flow.history[n]
        np.testing.assert_allclose(h["norm"], [np.linalg.norm(g) for g in grads], rtol=1e-12)
        np.testing.assert_array_equal(h["nonfinite"], np.zeros(7))
        full = [0, 3, 6]
        for k, f in (("mean_abs", lambda g: np.abs(g).mean()), ("max_abs", lambda g: np.abs(g).max()),
                     ("zero_fraction", lambda g: np.mean(g == 0))):
            np.testing.assert_allclose(h[k][full], [f(grads[i]) for i in full], rtol=1e-12, err_msg=f"{n} {k}")
            assert np.isnan(np.delete(h[k], full)).all(), f"{n} {k}: computed between the full steps"


def test_full_every_counts_nonfinite_gradients_at_every_step():
    w = tl.tensor(np.ones(4), dtype=tl.float64, requires_grad=True)
    flow = tl.viz.GradFlow({"w": w}, full_every=5)
    for bad in (0.0, np.nan):  # step 0 full, step 1 norm-only
        w.grad = None
        with np.errstate(all="ignore"):
            (w * tl.tensor([bad, 1.0, np.inf, 2.0], dtype=tl.float64)).sum().backward()
        flow.record()
    assert flow.history["w"]["nonfinite"].tolist() == [1.0, 2.0]
    assert "nonfinite" in flow.flags()["w"]


def test_full_every_judges_dead_units_on_the_full_steps_and_reports_their_means():
    tl.manual_seed(0)
    model = mlp([8, 32, 1], nn.ReLU)
    with tl.no_grad():
        model[0].bias.numpy()[:24] = -100.0  # 24 of 32 units never fire
    flow = train(model, tl.randn(32, 8), tl.randn(32, 1), steps=8, lr=0.01, full_every=3)  # full: 0, 3, 6
    flags = flow.flags()
    assert "dead" in flags["0.weight"] and "dead" in flags["0.bias"] and "dead" not in flags["2.bias"]
    report = flow.report()
    assert "step 7, the last with them; full_every=3" in report.splitlines()[0]
    assert "nan" not in report
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="full_every must be a positive int"):
            tl.viz.GradFlow(model, full_every=bad)

def test_exploding_run_is_flagged():
    tl.manual_seed(0)
    x = tl.randn(16, 4) * 3.0
    flow = train(nn.Linear(4, 1), x, tl.randn(16, 1), steps=8, lr=1.0)  # lr far above 2 / curvature: diverges
    norms = flow.history["weight"]["norm"]
    assert norms[-1] > 100 * norms[0]
    assert "exploding" in flow.flags()["weight"]


def test_no_gradient_parameters_are_listed_not_a_crash():
    tl.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    model[0].weight.requires_grad_(False)  # frozen
    unused = nn.Linear(2, 2)
    flow = tl.viz.GradFlow(list(model.named_parameters()) + list(unused.named_parameters(prefix="unused")))
    model(tl.randn(2, 3)).sum().backward()
    flow.record()
    assert np.isnan(flow.history["0.weight"]["norm"]).all()
    assert flow.flags()["0.weight"] == [] and flow.flags()["unused.bias"] == []
    lines = {line.split()[0]: line for line in flow.report().splitlines()[3:]}
    assert lines["0.weight"].endswith("no gradient") and lines["unused.weight"].endswith("no gradient")
    assert "no gradient" not in lines["1.weight"]


def test_record_before_backward_says_so_and_empty_report():
    flow = tl.viz.GradFlow(nn.Linear(2, 2))
    assert "nothing recorded yet" in flow.report()
    with pytest.raises(RuntimeError, match="call loss.backward\\(\\) first"):
        flow.record()
    with pytest.raises(RuntimeError, match="nothing recorded yet"):
        flow.flags()


def test_thousands_of_parameters_report_grouped_by_module():
    model = nn.Sequential(*[nn.Sequential(*[nn.Linear(2, 2) for _ in range(25)]) for _ in range(40)])
    flow = tl.viz.GradFlow(model)
    assert len(flow.params) == 2000
    model(tl.randn(1, 2)).sum().backward()
    flow.record()
    lines = flow.report().splitlines()
    assert "grouped by module" in lines[0] and len(lines) == 3 + 40
    assert lines[3].startswith("0 (50 params)")


# ----- the plot -----
def _matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        skip_or_fail("TL_REQUIRE_PLOT", "matplotlib is not installed (pip install tinygrad_lite[plot])")


@pytest.mark.parametrize("ext, magic", [("png", b"\x89PNG"), ("svg", b"<svg")])
def test_plot_renders_png_and_svg(tmp_path, ext, magic):
    _matplotlib()
    tl.manual_seed(0)
    flow = train(mlp([16] + [32] * 6 + [1], nn.Sigmoid), tl.randn(64, 16), tl.randn(64, 1), steps=3, lr=0.1)
    path = tmp_path / f"flow.{ext}"
    fig = flow.plot(path)
    data = path.read_bytes()
    assert magic in data[:400] and len(data) > 5000
    bars, lines = fig.axes[:2]
    assert bars.get_yscale() == "log" and lines.get_yscale() == "log"
    red = [t.get_text() for t in bars.get_xticklabels() if t.get_color() == "#e41a1c"]
    assert "0.weight" in red and "12.weight" not in red


def test_plot_without_matplotlib_raises_importerror_naming_the_extra(monkeypatch):
    flow = tl.viz.GradFlow(nn.Linear(2, 2))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"tinygrad_lite\[plot\]"):
        flow.plot()
