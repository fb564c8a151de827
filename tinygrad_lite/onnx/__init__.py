"""ONNX export of the tape (`tl.onnx.export`): see API.md, "ONNX export". onnx itself is imported on first export
(extra `onnx`); each primitive's rule sits beside it in `ops/<group>_onnx.py`."""
from .errors import ExportError


def export(model, args, f, *, input_names=None, output_names=None, dynamic_axes=None, opset_version=18):
    """Record `model(*args)` and write it to `f` as an ONNX model (as torch.onnx.export); returns the ModelProto.
    Parameters and buffers become initializers under their state_dict names; `dynamic_axes` ({name: {axis:
    symbol}}) makes dimensions symbolic. Raises ExportError naming what cannot be exported, and ImportError naming
    the extra `onnx` when the onnx package is missing."""
    from .exporter import export as _export
    return _export(model, args, f, input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes,
                   opset_version=opset_version)


__all__ = ["export", "ExportError"]
