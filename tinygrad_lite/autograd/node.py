"""`tensor.grad_fn` as PyTorch shows it: a node per recorded entry with `name()` and `next_functions`, ending in
AccumulateGrad nodes whose `.variable` is the leaf, so code that walks PyTorch's graph (torchviz-style drawers,
"print the graph" snippets) walks ours. The tape entry stays the source of truth: a node is a view of it.

Nodes are cached weakly by identity, so `y.grad_fn is y.grad_fn` and a leaf reached twice gives one
AccumulateGrad object, as in PyTorch (drawers deduplicate nodes by `id`).
"""
import weakref

from .recorder import Entry

_nodes = weakref.WeakValueDictionary()  # id(entry or leaf) -> node; a node holds its entry/leaf, so ids stay valid


def _camel(name):
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def _getitem_kind(idx):
    """PyTorch's node for `x[idx]` (it applies an index element by element, so the last step names the node):
    IndexBackward0 with any array/Tensor/mask, else the last int (Select), None (Unsqueeze) or slice that is not
    the whole dim (Slice); a lone slice is a Slice, an index that changes nothing an Alias."""
    if any(hasattr(i, "dtype") or i.__class__ is bool for i in idx):  # arrays (getitem keeps ndarrays), x[True]
        return "Index"
    if len(idx) == 1 and idx[0].__class__ is slice:
        return "Slice"
    for i in reversed(idx):
        if i is None:
            return "Unsqueeze"
        if i.__class__ is slice:
            if i.start not in (None, 0) or i.stop is not None or i.step not in (None, 1):
                return "Slice"
        elif i is not Ellipsis:
            return "Select"
    return "Alias"


def _primitive_name(e):
    """The node PyTorch records for the op a primitive runs: its own camel-cased name, except where PyTorch's
    depends on the call (getitem's index, a reduction over some dims, matmul's ranks) or is another name."""
    name = e.name
    if name == "getitem":
        return f"{_getitem_kind(e.attrs[0])}Backward0"
    if name == "sum":
        return "SumBackward0" if e.attrs[0] is None else "SumBackward1"
    if name == "matmul":  # (vectors are made matrices first: operators.matmul names Dot and Mv itself)
        return "MmBackward0" if all(len(s) == 2 for s in e.structure()[1][:2]) else "UnsafeViewBackward0"
    return _RENAMED.get(name) or f"{_camel(name)}Backward0"


_RENAMED = {"reshape": "ViewBackward0", "clamp": "ClampBackward1", "cast": "ToCopyBackward0"}  # (clone names its own)


class Node:
    """The backward node of one tape entry (as torch.autograd.graph.Node)."""
    __slots__ = ("_entry", "__weakref__")

    def __init__(self, entry):
        self._entry = entry

    def name(self):
        """PyTorch's naming: `MulBackward0` for a primitive, `<Class>Backward` for a custom Function, and for a
        composition that stands for one PyTorch op (cross_entropy, linear, mean...) that op's node name."""
        e = self._entry
        if e.ctx is not None:
            return f"{e.name}Backward"
        return getattr(e, "label", None) or _primitive_name(e)

    @property
    def entry(self):
        """The tape entry behind this node (index, name, inputs, source, module: see tl.autograd.tape)."""
        return self._entry

    @property
    def next_functions(self):
        """One `(node, 0)` pair per input: the input's node, an AccumulateGrad for a leaf requiring grad, or
        `(None, 0)` for an input that needs no gradient."""
        out = []
        for p in self._entry.parents:
            out.append((None if p is None else node_of(p), 0))
        return tuple(out)

    @property
    def metadata(self):
        return {}

    def __repr__(self):
        return f"<{self.name()} object at {id(self):#x}>"


class AccumulateGrad(Node):
    """The node that accumulates into a leaf's `.grad`; `.variable` is the leaf."""
    __slots__ = ()

    def name(self):
        return "torch::autograd::AccumulateGrad"

    @property
    def variable(self):
        return self._entry

    @property
    def entry(self):
        return None

    @property
    def next_functions(self):
        return ()

    def __repr__(self):
        return f"<AccumulateGrad object at {id(self):#x}>"


def node_of(x):
    """The node of an Entry, or the AccumulateGrad of a leaf Tensor (cached: one object per entry or leaf)."""
    node = _nodes.get(id(x))
    if node is None or node._entry is not x:
        node = Node(x) if isinstance(x, Entry) else AccumulateGrad(x)
        _nodes[id(x)] = node
    return node
