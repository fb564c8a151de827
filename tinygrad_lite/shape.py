"""Shape methods of Tensor and getitem, composed from the movement and index primitives (the methods that take
an index tensor, gather/index_select/index_add/masked_fill, are in indexing.py)."""
import numbers

import numpy as np

from .autograd import recorder as tape
from .autograd.recorder import call_arg, labelled
from .compile.hooks import _copy_into, constant, elementwise, host, into_rule
from .ops import index as ix, movement as mv, registry
from .ops.elementwise import where as mv_where
from .tensor import Tensor, _dim, _dims

_apply = tape.apply


def _sizes(args, opname, factory=False):
    """Accept f(2, 3) and f((2, 3)) / f([2, 3]). Factories also reject bools and negative sizes."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    for s in args:
        if not isinstance(s, numbers.Integral) or (factory and isinstance(s, bool)):
            raise TypeError(f"{opname}: sizes must be ints, got {type(s).__name__} in {args!r}")
        if factory and s < 0:
            raise ValueError(f"{opname}: sizes must be non-negative, got {args!r}")
    return tuple(int(s) for s in args)


def reshape(self, *shape):
    shape = _sizes(shape, "reshape")
    if shape == self._data.shape:
        return self
    n = self._data.size
    known = int(np.prod([s for s in shape if s != -1]))
    if shape.count(-1) > 1 or any(s < -1 for s in shape) or (
            -1 not in shape and known != n) or (-1 in shape and (known == 0 or n % known)):
        raise registry.OpError(f"reshape: shape {shape} is invalid for a tensor of shape {tuple(self.shape)} "
                               f"({n} elements){registry.user_site()}")
    if -1 in shape:
        shape = tuple(n // known if s == -1 else s for s in shape)
    return _apply(mv.reshape, (self,), (shape,))


def permute(self, *dims):
    dims = _sizes(dims, "permute")
    nd = self._data.ndim
    if len(dims) != nd or sorted(d % max(nd, 1) for d in dims) != list(range(nd)):
        raise registry.OpError(f"permute: dims {dims} are not a permutation of the {nd} dims of a tensor of shape "
                               f"{tuple(self.shape)}{registry.user_site()}")
    dims = tuple(_dim(d, nd, "permute") for d in dims)
    if dims == tuple(range(nd)):
        return self
    return _apply(mv.permute, (self,), (dims,))


@labelled("TransposeBackward0")
def transpose(self, dim0, dim1):
    nd = self._data.ndim
    d0, d1 = _dim(dim0, nd, "transpose"), _dim(dim1, nd, "transpose")
    if nd == 0:
        return self
    perm = list(range(nd))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return permute(self, *perm)


def T(self):
    return permute(self, *reversed(range(self._data.ndim)))


def mT(self):
    if self._data.ndim < 2:
        raise registry.OpError(f"mT (transpose of the last two dims): expected a matrix or a batch of matrices, got "
                               f"shape {tuple(self.shape)}{registry.user_site()}")
    return transpose(self, -2, -1)


def flatten(self, start_dim=0, end_dim=-1):
    nd = self._data.ndim
    s, e = _dim(start_dim, nd, "flatten"), _dim(end_dim, nd, "flatten")
    if nd == 0:
        return reshape(self, 1)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = self._data.shape
    return reshape(self, shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:])


@labelled(lambda a, k: "SqueezeBackward0" if call_arg(a, k, 1, "dim") is None else "SqueezeBackward1")
def squeeze(self, dim=None):
    shape = self._data.shape
    if dim is None:
        return reshape(self, tuple(s for s in shape if s != 1))
    dims = _dims(dim, len(shape), "squeeze")
    return reshape(self, tuple(s for i, s in enumerate(shape) if not (i in dims and s == 1)))


@labelled("UnsqueezeBackward0")
def unsqueeze(self, dim):
    nd = self._data.ndim
    d = _dim(dim, nd + 1, "unsqueeze")
    shape = self._data.shape
    return reshape(self, shape[:d] + (1,) + shape[d:])


def expand(self, *sizes):
    sizes = _sizes(sizes, "expand")
    shape = self._data.shape
    lead = len(sizes) - len(shape)
    if lead < 0:
        raise registry.OpError(f"expand: the number of sizes {sizes} must be at least the tensor's {len(shape)} dims "
                               f"(shape {shape}){registry.user_site()}")
    target = tuple(shape[i - lead] if (s == -1 and i >= lead) else s for i, s in enumerate(sizes))
    for i, s in enumerate(shape):
        if s != 1 and s != target[lead + i]:
            raise registry.OpError(f"expand: size {s} of dim {i} of shape {shape} cannot be expanded to "
                                   f"{target[lead + i]} (target {target}); only size-1 dims expand"
                                   f"{registry.user_site()}")
    if target == shape:
        return self
    return _apply(mv.expand, (self,), (target,))


def broadcast_to(self, shape):
    return expand(self, *_sizes((shape,), "broadcast_to"))


def expand_as(self, other):
    return expand(self, *other.shape)


def _norm_index(idx, shape):
    """Convert Tensors/lists in an index to ndarrays; check boolean masks' shapes for a clear error."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    out = []
    for i in idx:
        if i.__class__ is slice or i.__class__ is int:  # the common cases, without ABC isinstance checks
            out.append(i)
            continue
        own, src = False, i  # (src: what the index is copied from; a tensor as itself, so a compiled step reads it)
        if isinstance(i, Tensor):
            i = i._data
        elif isinstance(i, (list, range)):  # x[range(n), target]: a range indexes as the list of its ints
            # Python's ints (or bools): an array of our own, a constant of a compiled step as any Python number is
            # (other items, a tensor's among them, take the array path below: copied, from recorded data or not)
            own = isinstance(i, range) or _python_ints(i)
            i = np.asarray(i, dtype=np.int64) if len(i) == 0 or isinstance(i, range) else np.asarray(i)
        if isinstance(i, np.ndarray):
            if i.dtype.kind not in "biu":
                raise IndexError(f"getitem: tensors used as indices must be integer or bool, got dtype {i.dtype}")
            # a copy: the gradient scatters to the indices of this forward even when the index tensor or array is
            # changed in place before backward (PyTorch raises there instead: it version-checks its saved index)
            i = constant(i) if own else host(_copied_index, src if isinstance(src, Tensor) else i)
        elif not (i is None or i is Ellipsis or isinstance(i, (slice, numbers.Integral, np.integer))):
            raise IndexError(f"getitem: unsupported index element of type {type(i).__name__} (expected int, slice, "
                             f"None, Ellipsis, range, or an integer/bool list, array or Tensor)")
        out.append(int(i) if isinstance(i, (numbers.Integral, np.integer)) and not isinstance(i, (bool, np.bool_))
                   else i)
    return tuple(out)


def _python_ints(items):
    """Whether a list index holds Python's ints and bools only, in nested lists and tuples too (`x[[[0, 1]]]`)."""
    return all(v.__class__ in (int, bool) or (v.__class__ in (list, tuple) and _python_ints(v)) for v in items)


@elementwise
def _copied_index(i):
    return np.copy(i._data if isinstance(i, Tensor) else i)  # (a replay hands it the tensor's array)


into_rule(_copied_index)(_copy_into)


def getitem(self, idx):
    idx = _norm_index(idx, self._data.shape)
    return _apply(ix.getitem, (self,), (idx,))


def _tensor_list(tensors, opname):
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{opname}: expected a list or tuple of Tensors, got {type(tensors).__name__}")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{opname}: element {i} is a {type(t).__name__}, expected a Tensor")
    return list(tensors)


def cat(tensors, dim=0, *, axis=None):
    """Concatenate tensors along an existing dim."""
    tensors = _tensor_list(tensors, "cat")
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    dim = axis if axis is not None else dim
    nd = tensors[0]._data.ndim
    if nd == 0:
        raise registry.OpError("cat: zero-dimensional tensors cannot be concatenated; use stack")
    d = _dim(dim, nd, "cat")
    from .dtypes import promote
    dt = tensors[0]._data.dtype
    for t in tensors[1:]:
        dt = promote(dt, t._data.dtype)
    tensors = [t.astype(dt) for t in tensors]
    return _apply(mv.cat, tuple(tensors), (d,))


@labelled("StackBackward0")
def stack(tensors, dim=0, *, axis=None):
    """Stack same-shaped tensors along a new dim."""
    tensors = _tensor_list(tensors, "stack")
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise registry.OpError(f"stack: all tensors must have the same shape, got {sorted(shapes)}"
                               f"{registry.user_site()}")
    dim = axis if axis is not None else dim
    d = _dim(dim, tensors[0]._data.ndim + 1, "stack")
    return cat([unsqueeze(t, d) for t in tensors], d)


def _at_least_1d(self, opname):
    if self._data.ndim == 0:
        raise registry.OpError(f"{opname}: expects at least a 1-dimensional tensor, got a 0-d tensor"
                               f"{registry.user_site()}")


@labelled(lambda a, k: "SplitWithSizesBackward0" if isinstance(call_arg(a, k, 1, "split_size_or_sections"),
                                                                (list, tuple)) else "SplitBackward0")
def split(self, split_size_or_sections, dim=0):
    _at_least_1d(self, "split")
    d = _dim(dim, self._data.ndim, "split")
    n = self._data.shape[d]
    if isinstance(split_size_or_sections, numbers.Integral):
        step = int(split_size_or_sections)
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, n - s) for s in range(0, n, step)] or [0]
    else:
        if not isinstance(split_size_or_sections, (list, tuple)):
            raise TypeError(f"split: split_size_or_sections must be an int or a list of ints, got "
                            f"{type(split_size_or_sections).__name__}")
        sizes = list(_sizes((split_size_or_sections,), "split"))
        if any(v < 0 for v in sizes) or sum(sizes) != n:
            raise registry.OpError(f"split: sections {sizes} sum to {sum(sizes)} but dim {d} has size {n}")
    out, start = [], 0
    for s in sizes:
        out.append(getitem(self, (slice(None),) * d + (slice(start, start + s),)))
        start += s
    return tuple(out)


def chunk(self, chunks, dim=0):
    _at_least_1d(self, "chunk")
    if not isinstance(chunks, numbers.Integral):
        raise TypeError(f"chunk: chunks must be an int, got {type(chunks).__name__}")
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = self._data.shape[_dim(dim, self._data.ndim, "chunk")]
    if n == 0:  # PyTorch gives `chunks` empty pieces of an empty dim (split would give one)
        return split(self, [0] * int(chunks), dim)
    return split(self, -(-n // chunks), dim)


@labelled("UnbindBackward0")
def unbind(self, dim=0):
    """The slices along `dim`, with that dim removed (torch.unbind)."""
    _at_least_1d(self, "unbind")
    d = _dim(dim, self._data.ndim, "unbind")
    return tuple(getitem(self, (slice(None),) * d + (i,)) for i in range(self._data.shape[d]))


def _triangle(self, diagonal, upper):
    """Zero the elements below (triu) or above (tril) `diagonal` of the last two dims: a `where` with a mask that
    depends on the shape only (a constant, so tl.compile replays it); the gradient is masked the same way."""
    opname = "triu" if upper else "tril"
    shape = self._data.shape
    if len(shape) < 2:
        raise registry.OpError(f"{opname}: input tensor must have at least 2 dimensions, got shape {shape}"
                               f"{registry.user_site()}")
    if not isinstance(diagonal, numbers.Integral):
        raise TypeError(f"{opname}: diagonal must be an int, got {type(diagonal).__name__}")
    keep = (np.triu if upper else np.tril)(np.ones(shape[-2:], dtype=bool), int(diagonal))
    zero = np.zeros((), self._data.dtype)
    return _apply(mv_where, (Tensor._wrap(constant(keep)), self, Tensor._wrap(constant(zero))))


@labelled("TriuBackward0")
def triu(self, diagonal=0):
    """The upper triangle of the last two dims (the rest zero), from `diagonal` up (torch.triu)."""
    return _triangle(self, diagonal, True)


@labelled("TrilBackward0")
def tril(self, diagonal=0):
    """The lower triangle of the last two dims (the rest zero), up to `diagonal` (torch.tril)."""
    return _triangle(self, diagonal, False)


@labelled(lambda args, kwargs: "DiagEmbedBackward0" if args[0]._data.ndim == 1 else "DiagonalBackward0_copy")
def diag(self, diagonal=0):
    """The `diagonal`-th diagonal of a matrix (1-D), or the square matrix with a vector on that diagonal (torch.diag):
    an index and a scatter with positions fixed by the shape, so the gradient comes with them."""
    if not isinstance(diagonal, numbers.Integral) or isinstance(diagonal, bool):
        raise TypeError(f"diag: diagonal must be an int, got {type(diagonal).__name__}")
    shape, k = self._data.shape, int(diagonal)
    if len(shape) == 1:
        n = shape[0] + abs(k)
        rows = np.arange(shape[0]) + max(-k, 0)
        return ix.index_scatter(self, (n, n), (constant(rows), constant(rows + k)))
    if len(shape) != 2:
        raise registry.OpError(f"diag(): Supports 1D or 2D tensors. Got {len(shape)}D (shape {shape})"
                               f"{registry.user_site()}")
    m = max(0, min(shape[0] + min(k, 0), shape[1] - max(k, 0)))
    rows = np.arange(m) + max(-k, 0)
    return getitem(self, (constant(rows), constant(rows + k)))  # fixed by the shape: a replay may reuse them


def narrow(self, dim, start, length):
    """self[..., start:start + length, ...] along `dim` (a view, as torch.narrow); a negative start counts from the
    end."""
    _at_least_1d(self, "narrow")
    d = _dim(dim, self._data.ndim, "narrow")
    n = self._data.shape[d]
    if isinstance(start, Tensor):
        start = start.item()
    for name, v in (("start", start), ("length", length)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            raise TypeError(f"narrow: {name} must be an int, got {type(v).__name__}")
    start, length = int(start), int(length)
    if not -n <= start <= n:
        raise IndexError(f"narrow: start ({start}) is out of range for dimension {d} of size {n} (expected to be in "
                         f"range of [{-n}, {n}]){registry.user_site()}")
    start = start + n if start < 0 else start
    if length < 0 or start + length > n:
        raise registry.OpError(f"narrow: start ({start}) + length ({length}) exceeds dimension size ({n}) of dim {d} "
                               f"of a tensor of shape {tuple(self.shape)}{registry.user_site()}")
    return getitem(self, (slice(None),) * d + (slice(start, start + length),))


def movedim(self, source, destination):
    """The dims `source` moved to the positions `destination` (ints or sequences of ints), the others keeping their
    order (torch.movedim)."""
    nd = self._data.ndim
    src = (source,) if isinstance(source, numbers.Integral) else tuple(source)
    dst = (destination,) if isinstance(destination, numbers.Integral) else tuple(destination)
    if len(src) != len(dst):
        raise registry.OpError(f"movedim: Invalid source or destination dims: source ({list(src)} dims) should "
                               f"contain the same number of dims as destination ({list(dst)} dims)"
                               f"{registry.user_site()}")
    src = tuple(_dim(v, nd, "movedim") for v in src)
    dst = tuple(_dim(v, nd, "movedim") for v in dst)
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise registry.OpError(f"movedim: repeated dim in source {list(src)} or destination {list(dst)}"
                               f"{registry.user_site()}")
    order = [None] * nd
    for s_, d_ in zip(src, dst):
        order[d_] = s_
    rest = iter(i for i in range(nd) if i not in src)
    return permute(self, *[next(rest) if o is None else o for o in order])


@labelled("FlipBackward0")
def flip(self, dims):
    # a copy, as torch.flip's (NumPy's reversed slice is a view: an in-place change of the result reached self)
    return reversed_view(self, dims, "flip").clone()


def reversed_view(self, dims, opname="flip"):
    """self reversed along `dims` as a view (a reversed slice), for the library's own uses where no one writes through
    it (cumsum's gradient, NumPy's np.flip, which is a view too); Tensor.flip copies."""
    if dims is None:
        raise TypeError(f"{opname}: dims must be an int or a tuple of ints, got None")
    dims = _dims(dims, self._data.ndim, opname)
    idx = [slice(None)] * self._data.ndim
    for d in dims:
        idx[d] = slice(None, None, -1)
    return getitem(self, tuple(idx))


@labelled("RepeatBackward0")
def repeat(self, *sizes):
    """Tile the tensor (torch.Tensor.repeat)."""
    sizes = _sizes(sizes, "repeat")
    if len(sizes) < self._data.ndim or min(sizes, default=0) < 0:
        raise registry.OpError(f"repeat: repeats {sizes} must be non-negative and at least as many as the tensor's "
                               f"{self._data.ndim} dims (shape {tuple(self.shape)}){registry.user_site()}")
    x = reshape(self, (1,) * (len(sizes) - self._data.ndim) + self._data.shape)
    inter = tuple(v for s in x.shape for v in (1, s))
    big = tuple(v for r, s in zip(sizes, x.shape) for v in (r, s))
    out = reshape(expand(reshape(x, inter), big), tuple(r * s for r, s in zip(sizes, x.shape)))
    # PyTorch's repeat always copies. The reshape copies only when a dim of size > 1 is repeated; otherwise it is
    # self (all repeats 1: an in-place change of the result reached self) or a read-only stride-0 view (repeating
    # only size-1 dims: an in-place change raised)
    return out if any(r > 1 and s > 1 for r, s in zip(sizes, x.shape)) else out.clone()


for _name in ("reshape", "permute", "transpose", "flatten", "squeeze", "unsqueeze", "expand", "broadcast_to",
              "expand_as", "split", "chunk", "unbind", "triu", "tril", "diag", "flip", "repeat", "narrow", "movedim"):
    setattr(Tensor, _name, globals()[_name])
Tensor.view = reshape
Tensor.T = property(T)
Tensor.mT = property(mT)
Tensor.swapaxes = transpose
Tensor.moveaxis = movedim
Tensor.__getitem__ = getitem
