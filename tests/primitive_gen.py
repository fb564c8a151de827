"""The drawing interface that primitives' samplers use (see tinygrad_lite/ops/samplers.py), backed by Hypothesis."""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes


class HypothesisGen:
    def __init__(self, data):
        self.data = data
        self.rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))

    def shape(self, min_dims=0, max_dims=3):
        return tuple(self.data.draw(st.lists(st.integers(1, 4), min_size=min_dims, max_size=max_dims), label="shape"))

    def shapes(self, n, max_dims=3):
        drawn = self.data.draw(mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=max_dims, min_side=1,
                                                             max_side=4), label="broadcastable shapes")
        return drawn.input_shapes

    def array(self, shape, low=-2.0, high=2.0, away=None):
        arr = self.rng.uniform(low, high, shape)
        for p in away or ():
            near = np.abs(arr - p) < 0.1
            arr = np.where(near, arr + np.where(arr >= p, 0.2, -0.2), arr)
        return np.asarray(arr, dtype=np.float64)

    def integers(self, low, high, shape):
        return self.rng.integers(low, high, shape)

    def booleans(self, shape):
        return self.rng.random(shape) < 0.5

    def choice(self, options):
        return self.data.draw(st.sampled_from(list(options)))

    def permutation(self, n):
        return self.data.draw(st.permutations(list(range(n))))
