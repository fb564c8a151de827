"""The effects a replay re-runs as host calls on tensors from before the call: a version bump of an in-place
update, `t.grad = value`, `t.data = value` (the capture records them, capture.py; engine.py and tensor.py call
them when they record)."""


def bump_version(t):
    t._version += 1


def set_grad(t, arr):
    """A replay of `t.grad = value` (value: this call's array, or None)."""
    t._grad = None if arr is None else t.__class__._wrap(arr)


def set_data(t, arr):
    """A replay of `t.data = value` for a tensor from before the call (arr: this call's array)."""
    t._data = arr
