"""Devices, as PyTorch names them. tinygrad_lite computes with NumPy on the CPU: `tl.device('cpu')` (and
'cpu:0') is accepted everywhere a device is (factories, layers, `.to`, `.cpu()`); a device of another type can be
named, as in PyTorch, but using one is a clear error. `tl.cuda.is_available()` is False, so the usual
`device = 'cuda' if torch.cuda.is_available() else 'cpu'` picks the CPU."""
import numbers

from .ops.registry import user_site

_TYPES = ("cpu", "cuda", "mps", "xpu", "xla", "meta", "hip", "ipu", "hpu", "mtia", "privateuseone")


class device:  # noqa: N801  (PyTorch's name)
    """`tl.device('cpu')`, `tl.device('cuda', 0)`, `tl.device('cuda:1')`: a device type and an optional index."""
    __slots__ = ("type", "index")

    def __init__(self, type, index=None):  # noqa: A002  (PyTorch's argument name)
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device(): an index cannot be given with a device object")
            self.type, self.index = type.type, type.index
            return
        if not isinstance(type, str):
            raise TypeError(f"device(): expected a string like 'cpu' or 'cuda:0', got {type.__class__.__name__}")
        name, sep, idx = type.partition(":")
        if name not in _TYPES:
            raise RuntimeError(f"Expected one of {', '.join(_TYPES)} device type at start of device string: {type}")
        if sep:
            if index is not None:
                raise RuntimeError(f"device(): type (string) must not include an index because index was passed "
                                   f"explicitly: {type}")
            if not idx.isdigit():
                raise RuntimeError(f"Invalid device string: '{type}'")
            index = int(idx)
        if index is not None and (not isinstance(index, numbers.Integral) or index < 0):
            raise RuntimeError(f"Device index must not be negative (or must be an int), got {index!r}")
        self.type, self.index = name, None if index is None else int(index)

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except (RuntimeError, TypeError):
                return False
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else \
            f"device(type='{self.type}', index={self.index})"


CPU = device("cpu")


def check(dev, where):
    """Accept None, 'cpu', 'cpu:0' or a cpu device; anything else is an error naming `where` and the device."""
    if dev is None or dev is CPU:
        return CPU
    if isinstance(dev, numbers.Integral) and not isinstance(dev, bool):
        dev = device("cuda", dev)  # PyTorch reads a bare int as a CUDA ordinal
    if not isinstance(dev, (device, str)) and isinstance(getattr(dev, "type", None), str):
        dev = str(dev)  # another library's device object (torch.device('cpu')): read by its name
    d = dev if isinstance(dev, device) else device(dev)
    if d.type != "cpu" or d.index not in (None, 0):
        raise RuntimeError(
            f"{where}: device '{d}' is not available{user_site()}: tinygrad_lite computes with NumPy on the CPU only "
            f"(tl.cuda.is_available() is False). Use device='cpu' (or leave it out), e.g. "
            f"`device = 'cuda' if tl.cuda.is_available() else 'cpu'`.")
    return CPU


def is_device_like(x):
    """True for what `.to()` reads as a device: a device, a device string or an int ordinal."""
    if isinstance(x, device):
        return True
    if isinstance(x, str):
        return x.partition(":")[0] in _TYPES
    return False


class _Backend:
    """Namespaces `tl.cuda`, `tl.backends.mps`, `tl.accelerator`: nothing is available."""

    def __init__(self, name):
        self._name = name

    def is_available(self):
        return False

    def device_count(self):
        return 0

    def is_built(self):
        return False

    def manual_seed(self, seed):
        """A no-op, as PyTorch's when no such device exists (scripts call it unconditionally)."""

    manual_seed_all = manual_seed

    def synchronize(self, device=None):
        """Nothing runs asynchronously here."""

    def current_device(self):
        raise RuntimeError(f"tl.{self._name}.current_device(): no {self._name} device is available (the CPU is "
                           f"the only device)")

    def __repr__(self):
        return f"<tinygrad_lite.{self._name}: not available>"


class _Backends:
    def __init__(self):
        self.mps = _Backend("backends.mps")
        self.cuda = _Backend("backends.cuda")
        self.cudnn = _Backend("backends.cudnn")


cuda = _Backend("cuda")
accelerator = _Backend("accelerator")
accelerator.current_accelerator = lambda: None
backends = _Backends()
