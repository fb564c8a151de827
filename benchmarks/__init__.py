"""Benchmarks of tinygrad_lite against PyTorch CPU and hand-written NumPy (issue 7). Run `python -m benchmarks`."""
