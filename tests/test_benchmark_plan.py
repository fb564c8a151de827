"""The benchmark harness's plan: torch.compile of a chain longer than 10,000 operations is left out of a run unless
--slow-compile asks for it (W5's 100,000-op chain compiled for 15 minutes a process and then crashed)."""
from benchmarks.__main__ import parse_args
from benchmarks.harness import build_plan, skipped


def test_long_chains_skip_torch_compile_unless_asked():
    args = parse_args(["--workloads", "W5,W1"])
    assert skipped("torch-compile", {"size": 0, "n_ops": 100_000}, args)
    assert not skipped("torch-compile", {"size": 0, "n_ops": 10_000}, args)  # --quick's chain
    assert not skipped("torch-compile", {"size": 16, "n_ops": 500}, args)    # W1
    assert not skipped("tinygrad_lite-compiled", {"size": 0, "n_ops": 100_000}, args)
    assert not skipped("torch-compile", {"size": 0, "n_ops": 100_000}, parse_args(["--slow-compile"]))


def test_the_plan_leaves_out_only_those_runs():
    _, _, plan = build_plan(parse_args(["--workloads", "W5,W1", "--repeats", "1", "--threads", "1"]))
    runs = {(p["workload"], p["framework"]) for p in plan}
    assert ("W5", "torch-compile") not in runs
    assert ("W5", "tinygrad_lite-compiled") in runs and ("W5", "numpy") in runs
