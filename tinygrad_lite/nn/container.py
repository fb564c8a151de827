"""Sequential, ModuleList and ModuleDict, as PyTorch's."""
import collections
import numbers
import operator
from collections.abc import Mapping

from .module import Module
from .state import add_indent


def _index(idx, n, kind):
    if not isinstance(idx, numbers.Integral):
        raise TypeError(f"{kind} indices must be integers or slices, not {type(idx).__name__}")
    idx = operator.index(idx)
    if not -n <= idx < n:
        raise IndexError(f"index {idx} is out of range for a {kind} of length {n}")
    return idx % n


class _ListLike(Module):
    """Shared list behaviour: children named '0', '1', ... and renumbered after a deletion or insertion."""

    def _items(self):
        return list(self._modules.values())

    def _reset(self, modules):
        self._modules.clear()
        for i, m in enumerate(modules):
            self.add_module(str(i), m)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self.__class__(self._items()[idx])
        return self._items()[_index(idx, len(self), type(self).__name__)]

    def __setitem__(self, idx, module):
        i = _index(idx, len(self), type(self).__name__)
        self.add_module(str(i), module)

    def __delitem__(self, idx):
        items = self._items()
        if isinstance(idx, slice):
            del items[idx]
        else:
            del items[_index(idx, len(items), type(self).__name__)]
        self._reset(items)

    def append(self, module):
        """Add a module at the end; returns self."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index, module):
        items = self._items()
        items.insert(index, module)
        self._reset(items)

    def pop(self, index=-1):
        m = self[index]
        del self[index]
        return m

    def __dir__(self):
        return [k for k in super().__dir__() if not k.isdigit()]


class Sequential(_ListLike):
    """Chain modules: `forward(x)` feeds x through each in order. Accepts modules or one OrderedDict of them."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], collections.OrderedDict):
            for k, m in args[0].items():
                self.add_module(k, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def __getitem__(self, idx):
        if isinstance(idx, slice):  # keep the original names, as PyTorch
            return Sequential(collections.OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)

    def __setitem__(self, idx, module):
        key = list(self._modules)[_index(idx, len(self), "Sequential")]
        self.add_module(key, module)

    def __add__(self, other):
        if not isinstance(other, Sequential):
            raise ValueError(f"add operator supports only objects of Sequential class, but {type(other)} is given.")
        return Sequential(*self._items(), *other._items())

    def forward(self, input):
        for m in self._modules.values():
            input = m(input)
        return input


class ModuleList(_ListLike):
    """A list of modules, registered as children '0', '1', ..."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __iadd__(self, modules):
        return self.extend(modules)

    def __add__(self, other):
        return ModuleList(self._items() + list(other))

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList is a container and has no forward; call its modules in a loop")

    def __repr__(self):
        reprs = [repr(m) for m in self]
        if not reprs:
            return self._get_name() + "()"
        blocks = []  # [start, end, repr] runs of identical consecutive reprs
        for i, r in enumerate(reprs):
            if blocks and blocks[-1][2] == r:
                blocks[-1][1] = i
            else:
                blocks.append([i, i, r])
        lines = []
        for start, end, r in blocks:
            head = f"({start})" if start == end else f"({start}-{end}): {end - start + 1} x"
            lines.append(add_indent(f"{head}: {r}" if start == end else f"{head} {r}", 2))
        return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"


class ModuleDict(Module):
    """An ordered dict of modules, registered as children under their keys."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]
        self.__dict__["_child_names"] = None

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def clear(self):
        self._modules.clear()
        self.__dict__["_child_names"] = None

    def pop(self, key):
        m = self._modules[key]
        del self[key]
        return m

    def update(self, modules):
        if isinstance(modules, (Mapping, ModuleDict)):
            pairs = modules.items()
        else:
            pairs = []
            for i, kv in enumerate(modules):
                if len(kv) != 2:
                    raise ValueError(f"ModuleDict update sequence element #{i} has length {len(kv)}; 2 is required")
                pairs.append(kv)
        for k, m in pairs:
            self[k] = m

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict is a container and has no forward; call its modules by key")
