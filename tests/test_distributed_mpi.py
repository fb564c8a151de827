"""tl.distributed and DistributedDataParallel across 2 real MPI ranks: `mpiexec -n 2` (the one next to the venv's
python, from the `mpich` wheel of the `distributed` extra) runs the scripts in tests/mpi_scripts/, each checking on
every rank and printing `PASS <check>` from rank 0. Skipped without mpi4py or mpiexec, failed instead when
TL_REQUIRE_MPI=1 (CI). Every launch has a subprocess timeout: a hang fails the test instead of blocking the run."""
import importlib.util
import os
import shutil
import subprocess
import sys
import time

import pytest

from test_examples import EXAMPLES, NUM, summary
from conftest import skip_or_fail

pytestmark = pytest.mark.mpi

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi_scripts")
TIMEOUT = 60


def _mpiexec():
    """mpiexec beside sys.executable (the venv's), else on PATH; None when missing or mpi4py is absent."""
    if importlib.util.find_spec("mpi4py") is None:
        return None
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else shutil.which("mpiexec")


@pytest.fixture(scope="module")
def mpiexec():
    path = _mpiexec()
    if path is None:
        skip_or_fail("TL_REQUIRE_MPI", "mpi4py or mpiexec is not available (pip install -e '.[distributed]')")
    return path


def launch(mpiexec, script, *args, timeout=TIMEOUT):
    """Run `script` (a path, or a name in tests/mpi_scripts/) on 2 ranks; returns (completed process, seconds)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.monotonic()
    proc = subprocess.run([mpiexec, "-n", "2", sys.executable, os.path.join(SCRIPTS, script), *args], cwd=SCRIPTS,
                          env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - start


def _passes(mpiexec, script):
    proc, _ = launch(mpiexec, script)
    assert proc.returncode == 0, f"{script} failed (exit status {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return {line.split(" ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("PASS ")}


@pytest.fixture(scope="module")
def collectives_run(mpiexec):
    return _passes(mpiexec, "collectives.py")


@pytest.fixture(scope="module")
def ddp_run(mpiexec):
    return _passes(mpiexec, "ddp.py")


@pytest.mark.parametrize("check", ["all_reduce", "broadcast", "all_gather", "barrier", "shape_mismatch", "sampler"])
def test_collectives(collectives_run, check):
    assert check in collectives_run


@pytest.mark.parametrize("check", ["equivalence_SGD", "equivalence_Adam", "buckets", "no_sync", "no_sync_local",
                                   "find_unused_parameters", "batchnorm_per_rank", "wrap_broadcast"])
def test_ddp(ddp_run, check):
    assert check in ddp_run


@pytest.mark.parametrize("mode, message", [
    ("raise", "uncaught ValueError on rank 1 of 2: aborting the MPI job"),
    ("ddp", "uncaught ValueError on rank 1 of 2: aborting the MPI job"),
    ("exit", "all_reduce (comparing shapes) timed out after 2 s on rank 0 of 2"),
])
def test_failing_rank_ends_the_job(mpiexec, mode, message):
    proc, seconds = launch(mpiexec, "failing.py", mode, timeout=30)  # a hang raises TimeoutExpired: a failure
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr, proc.stderr
    assert "was not stopped" not in proc.stdout
    assert seconds < 20


def test_digits_ddp_example_smoke(mpiexec):
    pytest.importorskip("sklearn")
    proc, _ = launch(mpiexec, os.path.join(EXAMPLES, "digits_ddp.py"), "--smoke")
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    m = summary(rf"digits_ddp: test accuracy {NUM}% \(2 ranks, 1 epoch, replicas identical, {NUM} s in all\)",
                proc.stdout.strip().splitlines()[-1])
    assert float(m.group(1)) > 80
