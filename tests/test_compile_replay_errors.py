"""A replay raises the error eager raises, message included: a primitive that fails on this call's values (an index
out of range, from the data) names the operation, its inputs and what it expected, in the interpreted replays and
in the generated code alike."""
import numpy as np
import pytest

import tinygrad_lite as tl


def _message(fn, *args):
    with pytest.raises(IndexError) as err:
        fn(*args)
    return str(err.value).split(" (at ")[0]  # (the user's line differs: the compiled call's)


@pytest.mark.parametrize("warm", [2, 12])  # an interpreted replay, then the generated code
@pytest.mark.parametrize("kind", ["getitem", "gather"])
def test_an_index_out_of_range_raises_eagers_error(kind, warm):
    x = tl.tensor(np.arange(12.0).reshape(4, 3))

    def f(x, i):
        y = x * 2
        return y[i] if kind == "getitem" else y.gather(0, i)

    compiled = tl.compile(f)
    good = tl.tensor(np.array([[0, 1, 2], [3, 0, 1]]))
    for _ in range(warm):
        assert np.array_equal(compiled(x, good).numpy(), f(x, good).numpy())
    bad = tl.tensor(np.array([[0, 1, 2], [4, 0, 1]]))
    want = _message(f, x, bad)
    assert want.startswith(f"{kind}: ")
    assert _message(compiled, x, bad) == want
    assert np.array_equal(compiled(x, good).numpy(), f(x, good).numpy())  # and it replays on
