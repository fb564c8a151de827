"""Anomaly mode: NaN/Inf produced in backward (and NaN in forward) raises, naming the primitive and the user's line."""
import numpy as np

from .grad_mode import _Switch


class detect_anomaly(_Switch):
    """Context manager / decorator enabling anomaly detection (per thread), as torch.autograd.detect_anomaly."""
    field = "anomaly"

    def __init__(self, check_nan=True):
        self.value = check_nan

    def _fresh(self):
        return detect_anomaly(self.value)


def _bad(arr):
    return arr.dtype.kind == "f" and not np.isfinite(arr).all()


def check_forward(entry, out):
    """A NaN in an output whose inputs had none is the first NaN-producing primitive."""
    data = out._data
    if data.dtype.kind == "f" and np.isnan(data).any():
        if not any(t._data.dtype.kind == "f" and np.isnan(t._data).any() for t in entry.saved):
            raise RuntimeError(f"Anomaly detected: forward of {entry.describe()} produced NaN from NaN-free inputs")


def check_backward(entry, grads):
    for i, g in enumerate(grads):
        if g is not None and _bad(g._data):
            kind = "nan" if np.isnan(g._data).any() else "inf"
            raise RuntimeError(
                f"Anomaly detected: the backward of {entry.describe()} returned {kind} values in its gradient for "
                f"input {i}. The operation was recorded at {entry.source_path} (primitive '{entry.name}').")
