"""Cosine similarity, as torch.nn.functional.cosine_similarity and torch.nn.CosineSimilarity (PyTorch 2.x): each
input is divided by its norm along `dim` clamped below at `eps`, then the products are summed:
sum(x1 / max(||x1||, eps) * x2 / max(||x2||, eps)), which stays within [-1, 1] and never forms ||x1|| * ||x2||.
Also F.normalize: x / max(||x||_p, eps), and F.pairwise_distance: ||x1 - x2 + eps||_p over the last dim."""
from .. import dtypes, functional as _tf
from ..tensor import Tensor
from .loss import _broadcastable
from .module import Module


def _norm2(x, dim):
    """||x||_2 along dim (kept), with PyTorch's gradient (0 for a zero vector) and no choice made from the values
    (so tl.compile replays it and ONNX exports it)."""
    s = (x * x).sum(dim, keepdim=True)
    nonzero = s > 0
    return _tf.where(nonzero, _tf.where(nonzero, s, 1.0).sqrt(), 0.0)


def _clamped_norm(x, dim, eps):
    """max(||x||, eps) along dim (kept), with PyTorch's gradient: the norm's own (x / ||x||, 0 for a zero vector)
    even where the clamp is active, since PyTorch clamps it in place under no_grad."""
    norm = _norm2(x, dim)
    return _tf.where(norm < eps, (norm - norm.detach()) + eps, norm)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """Cosine similarity of x1 and x2 (broadcast together) along `dim` of the broadcast shape; that dim is
    removed."""
    where = "cosine_similarity"
    if not isinstance(x1, Tensor) or not isinstance(x2, Tensor):
        raise TypeError(f"{where}: expected Tensors x1 and x2, got {type(x1).__name__} and {type(x2).__name__}")
    if x1.dtype.kind != "f" or x2.dtype.kind != "f":
        raise TypeError(f"{where}: expected floating point inputs, got {x1.dtype} and {x2.dtype} (shapes "
                        f"{tuple(x1.shape)} and {tuple(x2.shape)})")
    _broadcastable(x1.shape, x2.shape, "x1", "x2", where)
    ndim = max(x1.ndim, x2.ndim, 1)  # a 0-d pair is treated as 1-d, as PyTorch wraps scalar dims
    if not -ndim <= dim < ndim:
        raise IndexError(f"{where}: Dimension out of range (expected to be in range of [{-ndim}, {ndim - 1}], but "
                         f"got {dim}) for x1 of shape {tuple(x1.shape)} and x2 of shape {tuple(x2.shape)}")
    dim %= ndim
    # the norms are those of the broadcast tensors, as PyTorch's: expand first
    a, b = (1,) * (ndim - x1.ndim) + tuple(x1.shape), (1,) * (ndim - x2.ndim) + tuple(x2.shape)
    shape = tuple(q if p == 1 else p for p, q in zip(a, b))
    x1 = x1 if tuple(x1.shape) == shape else x1.reshape(a).expand(*shape)
    x2 = x2 if tuple(x2.shape) == shape else x2.reshape(b).expand(*shape)
    if x1.dtype != x2.dtype:
        dt = dtypes.promote(x1.dtype, x2.dtype)
        x1, x2 = x1.astype(dt), x2.astype(dt)
    return ((x1 / _clamped_norm(x1, dim, eps)) * (x2 / _clamped_norm(x2, dim, eps))).sum(dim)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p, eps) along `dim`, as PyTorch's (the clamp passes no gradient below eps)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"normalize: expected a Tensor input, got {type(input).__name__}")
    if out is not None:
        raise TypeError("normalize: out= is not supported; use the returned tensor")
    norm = _norm2(input, dim) if p == 2 and input.dtype.kind == "f" else input.norm(p, dim, keepdim=True)
    return input / norm.clamp(min=eps).expand_as(input)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """||x1 - x2 + eps||_p over the last dim of the broadcast shape, as PyTorch's (eps keeps the norm of equal
    vectors off 0, where its gradient is undefined)."""
    where = "pairwise_distance"
    if not isinstance(x1, Tensor) or not isinstance(x2, Tensor):
        raise TypeError(f"{where}: expected Tensors x1 and x2, got {type(x1).__name__} and {type(x2).__name__}")
    _broadcastable(x1.shape, x2.shape, "x1", "x2", where)
    d = x1 - x2 + eps
    if d.ndim == 0:  # PyTorch reduces a 0-d difference over its (wrapped) last dim: |d| for p > 0
        return d.reshape(1).norm(p, 0, keepdim=False)
    return d.norm(p, d.ndim - 1, keepdim=keepdim)


class PairwiseDistance(Module):
    """pairwise_distance(x1, x2, p, eps, keepdim) as a module: forward(x1, x2)."""

    def __init__(self, p=2.0, eps=1e-6, keepdim=False):
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1, x2):
        return pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


class CosineSimilarity(Module):
    """Cosine similarity along `dim`: forward(x1, x2)."""

    def __init__(self, dim=1, eps=1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        return cosine_similarity(x1, x2, self.dim, self.eps)
