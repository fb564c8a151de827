"""Helpers of the ONNX export tests (the `ort` fixture is in conftest.py)."""
import io

import tinygrad_lite as tl


def session(ort, fn, args, **kw):
    """Export fn(*args) to bytes, check it with full_check, open it in onnxruntime."""
    import onnx
    buf = io.BytesIO()
    tl.onnx.export(fn, args, buf, **kw)
    onnx.checker.check_model(onnx.load_from_string(buf.getvalue()), full_check=True)
    return ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])


def flat(out):
    """Outputs in order, nested tuples and lists flattened (as the export flattens them)."""
    if isinstance(out, (tuple, list)):
        return [o for x in out for o in flat(x)]
    return [out]
