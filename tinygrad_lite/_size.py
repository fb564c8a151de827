"""`Size`, the type of `Tensor.shape` and `Tensor.size()`, as torch.Size. No imports from the package, so the
compile machinery can treat it as the leaf it is (a tuple of ints, never a container of tensors)."""
import operator


class Size(tuple):
    """A tensor's shape, as torch.Size: a tuple of ints (equal to, and hashing as, the plain tuple) that prints as
    `torch.Size([2, 3])`; slicing, `+` and `*` keep the type; `numel()` is the product."""
    __slots__ = ()

    def __new__(cls, sizes=()):
        items = []
        for i, v in enumerate(sizes):
            try:
                items.append(operator.index(v))
            except TypeError:
                raise TypeError(f"torch.Size() takes an iterable of 'int' (item {i} is '{type(v).__name__}')") from None
        return tuple.__new__(cls, items)

    def __repr__(self):
        return f"torch.Size([{', '.join(map(str, self))}])"

    __str__ = __repr__

    def __getitem__(self, index):
        out = tuple.__getitem__(self, index)
        return tuple.__new__(Size, out) if isinstance(index, slice) else out

    def __add__(self, other):
        return tuple.__new__(Size, tuple.__add__(self, other)) if isinstance(other, tuple) else NotImplemented

    def __radd__(self, other):
        return tuple.__new__(Size, tuple.__add__(other, self)) if isinstance(other, tuple) else NotImplemented

    def __mul__(self, n):
        return tuple.__new__(Size, tuple.__mul__(self, n))

    __rmul__ = __mul__

    def numel(self):
        out = 1
        for v in self:
            out *= v
        return out

    def __reduce__(self):
        return (Size, (tuple(self),))


def size_of(shape):
    """An ndarray's shape (ints already) as a Size, without __new__'s checks: Tensor.shape is on the hot path."""
    return tuple.__new__(Size, shape)
