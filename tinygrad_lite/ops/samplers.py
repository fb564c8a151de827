"""Input samplers the test suite uses to sweep every primitive (finite differences, second order, broadcasting).

A sampler takes `gen`, a small drawing interface the tests provide (backed by Hypothesis there):
`gen.shape(min_dims=0, max_dims=3)`, `gen.shapes(n)` (mutually broadcastable), `gen.array(shape, low, high,
away=None)` (float64; `away` is a list of points to keep at least 0.1 from), `gen.integers(low, high, shape)`,
`gen.choice(options)`, `gen.booleans(shape)`. It returns `(arrays, attrs)`.
"""


def unary(low=-2.0, high=2.0, away=None):
    def sample(gen):
        return [gen.array(gen.shape(), low, high, away)], ()
    return sample


def binary(low=-2.0, high=2.0, away_b=None):
    def sample(gen):
        sa, sb = gen.shapes(2)
        return [gen.array(sa, low, high), gen.array(sb, low, high, away_b)], ()
    return sample
