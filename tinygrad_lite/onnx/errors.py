"""The export's errors, importable without onnx."""


class ExportError(RuntimeError):
    """A recorded operation that cannot be written as ONNX; the message names it and its source line."""


def require_onnx():
    """(onnx, onnx.helper, onnx.numpy_helper), or an ImportError naming the extra to install."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:
        raise ImportError(f"tl.onnx needs the 'onnx' package ({exc}); install the extra: "
                          f"pip install 'tinygrad_lite[onnx]'") from None
    return onnx, helper, numpy_helper
