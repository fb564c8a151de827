"""The examples behind `make demo`, each run as `python examples/NAME.py` in a subprocess in smoke mode, with its
summary line (the last line of stdout, starting with the example's name) parsed and checked."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
NUM = r"([-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?)"
# tl.viz.draw needs the graphviz Python package (dev and examples extras); without it the examples say so
HAVE_GRAPHVIZ = importlib.util.find_spec("graphviz") is not None


def run_example(name, *args, cwd, smoke="flag", env=None):
    """Run examples/<name>.py; returns (stdout lines, the match of its summary line)."""
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
                    **(env or {}))
    full_env.pop("TL_EXAMPLE_SMOKE", None)
    argv = list(args)
    if smoke == "flag":
        argv.append("--smoke")
    elif smoke == "env":
        full_env["TL_EXAMPLE_SMOKE"] = "1"
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, f"{name}.py"), *argv], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stdout.strip().splitlines()
    assert lines and lines[-1].startswith(f"{name}: "), f"{name}: no summary line last:\n{proc.stdout}"
    return lines, lines[-1]


def summary(pattern, line):
    m = re.fullmatch(pattern, line)
    assert m, f"summary line {line!r} does not match {pattern!r}"
    return m


def check_graph(lines, dot_path, *expected):
    if not HAVE_GRAPHVIZ:
        assert any(line.startswith("graph not drawn: tl.viz needs the Python package `graphviz`") for line in lines)
        return
    dot = dot_path.read_text()
    for text in expected:
        assert text in dot, f"{text!r} not in {dot_path.name}"
    svg = dot_path.with_suffix(".svg")
    assert svg.exists() == (shutil.which("dot") is not None)
    assert any(line.startswith("graph written to ") and dot_path.name in line for line in lines)


def test_digits_cnn_smoke_checkpoint_round_trip(tmp_path):
    pytest.importorskip("sklearn")
    out = tmp_path / "run"
    lines, last = run_example("digits_cnn", "--out", str(out), cwd=tmp_path)
    m = summary(rf"digits_cnn: test accuracy {NUM}% \(1797 images, 1 epoch, {NUM} s/epoch, {NUM} s in all; "
                rf"reloaded checkpoint {NUM}%\)", last)
    acc, reloaded = float(m.group(1)), float(m.group(4))
    assert acc > 80.0  # one epoch already gets ~96%; chance is 10%
    assert reloaded == acc
    reload_line = next(line for line in lines if line.startswith("checkpoint "))
    assert "(same predictions)" in reload_line and "optimizer at step 45" in reload_line
    assert (out / "checkpoint.safetensors").stat().st_size > 10_000
    check_graph(lines, out / "model_graph.dot", "Conv2d", "BatchNorm2d", "Dropout", "9.weight 10x512")
    page_line = next(line for line in lines if line.startswith("graph page "))
    assert (out / "model_graph.html").exists() == (shutil.which("dot") is not None), page_line
    if shutil.which("dot"):
        page = (out / "model_graph.html").read_text()
        assert 'data-module="' in page and "BatchNorm2d" in page and "http://" not in page
    plot_line = next(line for line in lines if line.startswith("grad flow "))
    has_plot = importlib.util.find_spec("matplotlib") is not None
    assert ("grad_flow.png" in plot_line) == has_plot and (out / "grad_flow.png").exists() == has_plot, plot_line


def test_digits_cnn_compiled_trains_exactly_as_eager(tmp_path):
    pytest.importorskip("sklearn")
    eager, _ = run_example("digits_cnn", "--out", str(tmp_path / "eager"), cwd=tmp_path)
    compiled, last = run_example("digits_cnn", "--compile", "--out", str(tmp_path / "compiled"), cwd=tmp_path)
    epoch = [line.rsplit(",", 1)[0] for line in eager if line.startswith("epoch ")]
    assert epoch and epoch == [line.rsplit(",", 1)[0] for line in compiled if line.startswith("epoch ")]
    info = next(line for line in compiled if line.startswith("tl.compile: "))
    m = re.match(rf"tl.compile: (\d+) replayed steps, (\d+) recorded, 0 run eagerly; epoch time compiled {NUM} s, "
                 rf"eager {NUM} s", info)
    assert m and int(m.group(1)) > 30 and int(m.group(2)) <= 3, info


def test_xor_full_run_solves_xor(tmp_path):
    # the full 2,000 steps take well under a second: check that it actually learns XOR
    lines, last = run_example("xor", cwd=tmp_path, smoke=None, env={"TL_EXAMPLE_NO_TQDM": "1"})
    m = summary(rf"xor: final loss {NUM}, (\d)/4 correct, 2000 steps in {NUM} s", last)
    assert int(m.group(2)) == 4 and float(m.group(1)) < 0.01
    assert any(line.startswith("training: 2000/2000") for line in lines)  # the plain progress line


def test_xor_smoke_via_environment(tmp_path):
    _, last = run_example("xor", cwd=tmp_path, smoke="env")
    summary(rf"xor: final loss {NUM}, \d/4 correct, 200 steps in {NUM} s", last)


def test_custom_layer_gradcheck_and_attention_helps(tmp_path):
    out = tmp_path / "graphs"
    lines, last = run_example("custom_layer", "--out", str(out), cwd=tmp_path)
    m = summary(rf"custom_layer: gradcheck passed, test accuracy {NUM}% with attention vs {NUM}% without "
                rf"\(20 steps, {NUM} s\)", last)
    assert float(m.group(1)) > float(m.group(2)) + 10
    assert any(line.startswith("gradcheck SelfAttention in float64") and line.endswith(": True") for line in lines)
    check_graph(lines, out / "attention_graph.dot", "SelfAttention", "attn.wq 16x16")


def test_char_lstm_loss_goes_down(tmp_path):
    lines, last = run_example("char_lstm", cwd=tmp_path)
    m = summary(rf"char_lstm: loss {NUM} -> {NUM} nats/char in 15 steps, {NUM} s \(.*\)", last)
    first, final = float(m.group(1)), float(m.group(2))
    assert 3.0 < first < 4.5  # about log(45 characters) at the start
    assert final < first - 0.3
    before = lines.index("--- sample before training ---")
    after = lines.index("--- sample after training ---")
    assert before < after and lines[before + 1].startswith("  Beautiful is")


def test_hessian_hvp_and_newton(tmp_path):
    _, last = run_example("hessian", cwd=tmp_path)
    m = summary(rf"hessian: HVP max error {NUM} vs finite differences \(gradgradcheck True\); Newton converged in "
                rf"(\d+) iterations on Rosenbrock \(\|grad\| {NUM}\) and (\d+) on logistic regression "
                rf"\(\|grad\| {NUM}\), {NUM} s", last)
    assert float(m.group(1)) < 1e-6
    assert int(m.group(2)) <= 10 and float(m.group(3)) < 1e-10
    assert int(m.group(4)) <= 10 and float(m.group(5)) < 1e-10


# -- the shared helpers, in process ---------------------------------------------------------------------------
def _load(name):
    spec = importlib.util.spec_from_file_location(f"_examples_{name}", os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def common(monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLES)
    module = _load("_common")
    monkeypatch.setattr(module, "limit_blas_threads", lambda n=1: False)  # not in the test process
    return module


def test_smoke_mode_from_flag_or_environment(common, monkeypatch):
    p = common.parser("doc", epochs=10)
    monkeypatch.delenv(common.SMOKE_ENV, raising=False)
    assert common.parse(p, [], epochs=10).epochs == 10
    assert common.parse(p, ["--smoke"], epochs=10).epochs == 1
    assert common.parse(p, ["--smoke", "--epochs", "3"], epochs=10).epochs == 3
    monkeypatch.setenv(common.SMOKE_ENV, "1")
    args = common.parse(p, [], epochs=10)
    assert args.smoke and args.epochs == 1
    monkeypatch.setenv(common.SMOKE_ENV, "0")
    assert not common.parse(p, [], epochs=10).smoke


def test_progress_falls_back_to_one_plain_line(common, monkeypatch, capsys):
    monkeypatch.setenv(common.NO_TQDM_ENV, "1")
    bar = common.progress(range(3), desc="steps")
    seen = []
    for i in bar:
        seen.append(i)
        bar.set_postfix(loss=0.5, refresh=False)
    assert seen == [0, 1, 2]
    assert re.fullmatch(r"steps: 3/3 in \d+\.\d\d s, loss=0\.5\n", capsys.readouterr().out)


def test_importing_the_examples_loads_no_optional_package(tmp_path):
    # tqdm, scikit-learn and graphviz are imported lazily, inside the functions that need them
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import char_lstm, custom_layer, digits_cnn, hessian, xor\n"
            "print(sorted(m for m in ('tqdm', 'sklearn', 'graphviz') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", code, EXAMPLES], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_blas_threads_left_alone_when_the_environment_chooses(monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLES)
    module = _load("_common")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert module.limit_blas_threads() is False and module._limits == []
