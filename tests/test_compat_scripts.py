"""PyTorch compatibility: tutorial-style scripts in tests/compat/, written for PyTorch (`import torch`), run
unchanged except for their import lines (`import torch` -> `import tinygrad_lite as torch`, ...), and compared
step by step with the same scripts under PyTorch.

Each script prints one line per training step, `<phase> step <n> loss <repr(loss.item())>`, and reads its initial
weights from the .npz file named by the COMPAT_INIT environment variable; when that file does not exist the script
initialises its model itself and saves the weights there. The oracle test runs the script under PyTorch first
(which writes the .npz), then the translated script under tinygrad_lite (which loads it), and asserts the same
losses at every step (float64, 1e-9 relative) and that training reduced the loss. The non-oracle test runs the
translated script twice (first run saves tinygrad_lite's own initial weights, second run loads them): no torch
needed; it asserts the loss decreases and that the two runs agree exactly. Besides the losses, the rest of what the
scripts print (tensors, formatted losses, accuracies) must agree too: the same text, numbers within the tolerance.

A script that stops at a feature tinygrad_lite lacks is listed in XFAIL with the exact error; its test is an
xfail(strict=True) that expects `KnownGap`, raised only after the losses printed before the stop were checked, and
only when the run stopped with exactly that error; anything else is an ordinary failure.
"""
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPAT = ROOT / "tests" / "compat"
SCRIPTS = sorted(p.stem for p in COMPAT.glob("*.py"))
LOSS_LINE = re.compile(r"^(\S+) step (\d+) loss (\S+)$")
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|nan|inf")
RTOL = 1e-9
ATOL_PRINTED = 1e-12  # printed values that are zero up to rounding (e.g. a coefficient of 1e-17)

# Scripts that stop at a missing feature or a difference in tinygrad_lite: the exact error (the last line of the
# traceback). Strict: once it is fixed the test XPASSes and fails, so the entry gets removed.
XFAIL = {}  # script name -> the exact error it stops at (none left: num_workers and weights_only were added)

# The import lines a user changes, and nothing else. Each import of torch must match one of these patterns.
IMPORT_MAP = [
    (re.compile(r"^import torch$"), r"import tinygrad_lite as torch"),
    (re.compile(r"^import torch((?:\.\w+)+) as (\w+)$"), r"import tinygrad_lite\1 as \2"),
    (re.compile(r"^from torch((?:\.\w+)*) import (.+)$"), r"from tinygrad_lite\1 import \2"),
]
TORCH_IMPORT = re.compile(r"^\s*(import|from)\s+torch\b")


class KnownGap(Exception):
    """The tinygrad_lite run stopped with the error listed for the script in XFAIL."""


def translate(source):
    """The script with its torch imports pointed at tinygrad_lite, applied textually, line by line."""
    out = []
    for line in source.splitlines(keepends=True):
        body = line.rstrip("\n")
        if TORCH_IMPORT.match(body):
            for pattern, repl in IMPORT_MAP:
                if pattern.match(body):
                    body = pattern.sub(repl, body)
                    break
            else:
                raise AssertionError(f"import line not covered by the import mapping: {body!r}")
            line = body + "\n"
        out.append(line)
    translated = "".join(out)
    assert translated != source, "the script imports nothing from torch"
    return translated


@dataclass
class Run:
    label: str
    losses: dict  # (phase, step) -> loss, in printed order
    other: list   # the other lines of stdout
    error: str    # None, or the end of stderr when the script failed

    def last_error_line(self):
        return self.error.strip().splitlines()[-1] if self.error and self.error.strip() else ""


def run_script(path, init, *, tinygrad):
    """Run a script in a fresh interpreter, cwd the .npz's directory, and collect what it printed."""
    env = dict(os.environ, COMPAT_INIT=str(init), PYTHONHASHSEED="0", PYTHONIOENCODING="utf-8",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    cmd = [sys.executable, str(path)]
    proc = subprocess.run(cmd, cwd=init.parent, env=env, capture_output=True, text=True, encoding="utf-8",
                          timeout=600)
    losses, other = {}, []
    for line in proc.stdout.splitlines():
        m = LOSS_LINE.match(line)
        if m:
            losses[(m.group(1), int(m.group(2)))] = float(m.group(3))
        else:
            other.append(line)
    error = None
    if proc.returncode != 0:
        error = "\n".join(proc.stderr.strip().splitlines()[-30:]) or f"exit status {proc.returncode}"
    return Run(f"{path.name} under {'tinygrad_lite' if tinygrad else 'torch'}", losses, other, error)


def check_finished(run, name):
    """Fail with the script's traceback, or raise KnownGap when it stopped with exactly the XFAIL error."""
    if run.error is None:
        assert run.losses, f"{run.label} printed no loss lines:\n" + "\n".join(run.other[-20:])
        return
    if name in XFAIL and run.last_error_line() == XFAIL[name]:
        raise KnownGap(f"{run.label}: {run.last_error_line()}")
    pytest.fail(f"{run.label} failed:\n{run.error}", pytrace=False)


def tinygrad_copy(name, tmp_path):
    source = (COMPAT / f"{name}.py").read_text()
    assert "tinygrad" not in source, "compat scripts are plain PyTorch code"
    path = tmp_path / f"{name}_tinygrad_lite.py"
    path.write_text(translate(source))
    return path


def assert_trained(run):
    """Per phase: the mean loss of the last quarter of the steps is below that of the first quarter."""
    phases = {}
    for (phase, _), value in run.losses.items():
        phases.setdefault(phase, []).append(value)
    for phase, values in phases.items():
        assert len(values) >= 4, f"{run.label}: phase {phase!r} has only {len(values)} steps"
        assert all(math.isfinite(v) for v in values), f"{run.label}: non-finite loss in phase {phase!r}: {values}"
        q = len(values) // 4
        first, last = sum(values[:q]) / q, sum(values[-q:]) / q
        assert last < first, (f"{run.label}: phase {phase!r} did not train: mean loss {first!r} over its first "
                              f"{q} steps, {last!r} over its last {q}")


def assert_same_losses(got, expected):
    """Step by step; when `got` stopped early, over the steps it printed."""
    want_keys, got_keys = list(expected.losses), list(got.losses)
    if got.error is not None:
        want_keys = want_keys[:len(got_keys)]
    if got_keys != want_keys:
        i = next(i for i, (a, b) in enumerate(zip(want_keys + [None], got_keys + [None])) if a != b)
        pytest.fail(f"{got.label} printed other steps than {expected.label}: {len(got_keys)} loss lines against "
                    f"{len(want_keys)}, first different at line {i}: {want_keys[i:i + 1]} vs {got_keys[i:i + 1]}",
                    pytrace=False)
    for key in want_keys:
        want, have = expected.losses[key], got.losses[key]
        if not math.isclose(have, want, rel_tol=RTOL, abs_tol=0.0):
            pytest.fail(f"loss differs first at phase {key[0]!r} step {key[1]}: torch {want!r}, tinygrad_lite "
                        f"{have!r} (relative difference {abs(have - want) / max(abs(want), 1e-300):.3g})",
                        pytrace=False)


def assert_same_output(got, expected):
    """The non-loss lines: the same text, and numbers equal within RTOL (or ATOL_PRINTED)."""
    assert len(got.other) == len(expected.other), (
        f"{got.label} printed {len(got.other)} other lines, {expected.label} {len(expected.other)}:\n"
        + "\n".join(got.other) + "\n---\n" + "\n".join(expected.other))
    for g, e in zip(got.other, expected.other):
        same_text = NUMBER.split(g) == NUMBER.split(e)
        gn, en = NUMBER.findall(g), NUMBER.findall(e)
        same_numbers = len(gn) == len(en) and all(
            a == b or math.isclose(float(a), float(b), rel_tol=RTOL, abs_tol=ATOL_PRINTED) for a, b in zip(gn, en))
        assert same_text and same_numbers, f"printed output differs:\n  torch:         {e}\n  tinygrad_lite: {g}"


def params():
    return [pytest.param(name, id=name, marks=[pytest.mark.xfail(strict=True, raises=KnownGap, reason=XFAIL[name])]
                         if name in XFAIL else []) for name in SCRIPTS]


def test_scripts_exist():
    assert len(SCRIPTS) >= 5, SCRIPTS
    assert set(XFAIL) <= set(SCRIPTS), set(XFAIL) - set(SCRIPTS)


def test_translate_maps_only_import_lines():
    src = ("import os\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
           "import torch.optim as optim\nfrom torch.utils.data import TensorDataset, DataLoader\n"
           "from torch import nn\nx = torch.zeros(3)  # import torch\n")
    assert translate(src) == ("import os\nimport tinygrad_lite as torch\nimport tinygrad_lite.nn as nn\n"
                              "import tinygrad_lite.nn.functional as F\nimport tinygrad_lite.optim as optim\n"
                              "from tinygrad_lite.utils.data import TensorDataset, DataLoader\n"
                              "from tinygrad_lite import nn\nx = torch.zeros(3)  # import torch\n")
    with pytest.raises(AssertionError, match="not covered"):
        translate("import torch.nn\n")  # would bind `tinygrad_lite`, not `torch`: not a one-line change


def test_utils_data_reexports_data():
    import tinygrad_lite as tl
    from tinygrad_lite.utils.data import DataLoader, Dataset, TensorDataset
    assert tl.utils.data.DataLoader is DataLoader is tl.data.DataLoader
    assert TensorDataset is tl.data.TensorDataset and Dataset is tl.data.Dataset
    assert set(tl.data.__all__) <= set(dir(tl.utils.data))


def test_torch_utils_data_after_plain_import():
    # `import torch; torch.utils.data.DataLoader(...)` with no import of torch.utils.data: a fresh interpreter
    code = "import tinygrad_lite as torch; print(torch.utils.data.DataLoader.__name__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                              p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)))
    assert proc.returncode == 0 and proc.stdout.strip() == "DataLoader", proc.stderr


@pytest.mark.oracle
@pytest.mark.parametrize("name", params())
def test_same_losses_as_torch(name, tmp_path, torch):
    init = tmp_path / f"{name}_init.npz"
    expected = run_script(COMPAT / f"{name}.py", init, tinygrad=False)
    if expected.error is not None:
        pytest.fail(f"{expected.label} failed:\n{expected.error}", pytrace=False)
    assert init.exists(), f"{name}.py did not save its initial weights to $COMPAT_INIT"
    assert_trained(expected)
    got = run_script(tinygrad_copy(name, tmp_path), init, tinygrad=True)
    assert_same_losses(got, expected)
    check_finished(got, name)
    assert_same_output(got, expected)
    assert_trained(got)


@pytest.mark.parametrize("name", params())
def test_runs_and_trains_without_torch(name, tmp_path):
    init = tmp_path / f"{name}_init.npz"
    path = tinygrad_copy(name, tmp_path)
    first = run_script(path, init, tinygrad=True)
    if not init.exists():
        check_finished(first, name)
        pytest.fail(f"{name}.py did not save its initial weights to $COMPAT_INIT")
    again = run_script(path, init, tinygrad=True)  # this time from the saved weights
    assert (again.losses, again.other) == (first.losses, first.other), (
        f"{name}: a run from the saved initial weights differs from the run that saved them")
    check_finished(first, name)
    assert_trained(first)
