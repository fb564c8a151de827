"""`atleast_1d`, `atleast_2d`, `atleast_3d` as torch's: views (reshape) that give a tensor at least that many
dimensions, differentiable through the view; a tensor that already has them is returned as is. Called with one
Tensor they return a Tensor; with several Tensors, or one list/tuple of Tensors, a tuple."""
from .tensor import Tensor

__all__ = ["atleast_1d", "atleast_2d", "atleast_3d"]

# the shape each rank gets, as torch's: a vector becomes a row (1, n) in 2-D and (1, n, 1) in 3-D; a matrix
# (m, n) becomes (m, n, 1)
_RULES = {
    1: {0: lambda s: (1,)},
    2: {0: lambda s: (1, 1), 1: lambda s: (1,) + s},
    3: {0: lambda s: (1, 1, 1), 1: lambda s: (1,) + s + (1,), 2: lambda s: s + (1,)},
}


def _atleast(n, name, tensors):
    if len(tensors) == 1:
        tensors = tensors[0]
    if isinstance(tensors, Tensor):
        rule = _RULES[n].get(tensors.ndim)
        return tensors if rule is None else tensors.reshape(rule(tuple(tensors.shape)))
    if not isinstance(tensors, (tuple, list)):
        raise TypeError(f"{name}(): expected a Tensor or a sequence of Tensors, but got {type(tensors).__name__}")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}(): expected Tensor as element {i} in argument 0, but got {type(t).__name__}")
    return tuple(_atleast(n, name, (t,)) for t in tensors)


def atleast_1d(*tensors):
    """Each input with at least one dimension (a 0-d tensor becomes shape (1,))."""
    return _atleast(1, "atleast_1d", tensors)


def atleast_2d(*tensors):
    """Each input with at least two dimensions (0-d: (1, 1); (n,): (1, n))."""
    return _atleast(2, "atleast_2d", tensors)


def atleast_3d(*tensors):
    """Each input with at least three dimensions (0-d: (1, 1, 1); (n,): (1, n, 1); (m, n): (m, n, 1))."""
    return _atleast(3, "atleast_3d", tensors)
