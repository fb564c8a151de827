"""Shared test configuration.

Fixtures for optional tools:
- ``torch``: the torch module. Skips when torch is missing, unless TL_REQUIRE_ORACLE=1 (CI), where it fails.
- ``dot_available``: True when graphviz's ``dot`` program is on PATH. Skips when missing, unless
  TL_REQUIRE_DOT=1 (CI), where it fails.
Tests marked ``oracle`` that call ``pytest.importorskip("torch")`` directly are also turned from skips into
failures under TL_REQUIRE_ORACLE=1 (see ``pytest_runtest_makereport``).
"""
import os
import shutil

import numpy as np
import pytest

REQUIRE_ORACLE = os.environ.get("TL_REQUIRE_ORACLE") == "1"

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "ci",
        deadline=None,  # timings on a shared 2-core machine are noisy; tests never assert on time
        max_examples=50,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile("dev", deadline=None, max_examples=20)
    settings.register_profile("thorough", deadline=None, max_examples=500)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # hypothesis is in the dev extra; conftest must still load without it
    pass


def skip_or_fail(env_var, msg):
    """Skip a test whose optional component is missing, or fail it when `env_var`=1 (CI) says the component must
    be there. The one place that turns the optional groups' skips into failures (tests import it)."""
    if os.environ.get(env_var, "") not in ("", "0"):
        pytest.fail(f"{msg}, and {env_var}=1 requires it", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def torch():
    """The torch module, for oracle tests; skip when absent, fail when TL_REQUIRE_ORACLE=1."""
    try:
        import torch as torch_module
    except ImportError as e:
        reason = f"{e}; install with `make oracle`"
    else:
        return torch_module
    skip_or_fail("TL_REQUIRE_ORACLE", f"torch is not available ({reason})")  # outside the except: no chained traceback


@pytest.fixture(scope="session")
def ort():
    """onnxruntime, for ONNX export tests (onnx must import too); skip when absent, fail when TL_REQUIRE_ONNX=1."""
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as exc:
        skip_or_fail("TL_REQUIRE_ONNX", f"onnx/onnxruntime missing ({exc}); pip install 'tinygrad_lite[onnx]'")
    return onnxruntime


@pytest.fixture(scope="session")
def dot_available():
    """True when graphviz's `dot` is on PATH; skip when absent, fail when TL_REQUIRE_DOT=1."""
    if shutil.which("dot") is None:
        skip_or_fail("TL_REQUIRE_DOT", "graphviz `dot` program is not available (apt-get install graphviz)")
    return True


@pytest.fixture(autouse=True)
def _seed_rngs():
    """Every test starts from the same random state."""
    np.random.seed(0)
    try:
        import tinygrad_lite as tl

        seed = getattr(tl, "manual_seed", None)
    except Exception:  # the package may not exist yet, or be half-written by a colleague
        seed = None
    if seed is not None:
        seed(0)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under TL_REQUIRE_ORACLE=1 an oracle test skipped for lack of torch is reported as failed."""
    outcome = yield
    if not REQUIRE_ORACLE:
        return
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("oracle") is not None and call.excinfo is not None:
        reason = str(call.excinfo.value)
        if "torch" in reason:
            report.outcome = "failed"
            report.longrepr = f"oracle test skipped ({reason}) but TL_REQUIRE_ORACLE=1 requires torch"
