"""`tl.utils`, as `torch.utils`: so that code written for PyTorch finds its data utilities under the same path
(`torch.utils.data.DataLoader`, `from torch.utils.data import TensorDataset, DataLoader`). The implementations
live in `tinygrad_lite.data`; `tinygrad_lite.utils.data` re-exports its public names."""
from . import data

__all__ = ["data"]
