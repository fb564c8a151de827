"""`generator=` on the random factories and fills, as torch's: tl.rand/tl.randn/rand_like/randn_like take one too
(a numpy Generator: the package's own generator is left as it was), every draw checks it, and a compiled step that
passes one runs eagerly (a replay would repeat the recorded numbers)."""
import inspect

import numpy as np
import pytest

import tinygrad_lite as tl


def _package_next():
    return tl.random.get_rng().random(3)


@pytest.mark.parametrize("name, method", [("rand", "random"), ("randn", "standard_normal")])
def test_rand_and_randn_draw_from_the_generator_given(name, method):
    factory, like = getattr(tl, name), getattr(tl, name + "_like")
    tl.manual_seed(0)
    want_package = _package_next()
    tl.manual_seed(0)
    g, ref = np.random.default_rng(7), np.random.default_rng(7)
    a = factory(2, 3, generator=g)
    b = factory((4,), generator=g, dtype=tl.float64)
    c = like(a, generator=g)
    assert np.array_equal(a.numpy(), getattr(ref, method)((2, 3)).astype(np.float32))
    assert np.array_equal(b.numpy(), getattr(ref, method)((4,)))
    assert np.array_equal(c.numpy(), getattr(ref, method)((2, 3)).astype(np.float32)) and c.dtype == tl.float32
    assert np.array_equal(_package_next(), want_package)  # the package's generator did not move


def test_the_signatures_take_generator_as_torch_does():
    for fn in (tl.rand, tl.randn, tl.randint, tl.randperm, tl.multinomial, tl.rand_like, tl.randn_like):
        p = inspect.signature(fn).parameters["generator"]
        assert p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is None, fn.__name__
    with pytest.raises(TypeError, match="zeros_like.*generator"):
        tl.zeros_like(tl.ones(2), generator=np.random.default_rng(0))


@pytest.mark.parametrize("draw, name", [
    (lambda g: tl.rand(2, generator=g), "rand"),
    (lambda g: tl.randn(2, generator=g), "randn"),
    (lambda g: tl.randn_like(tl.ones(2), generator=g), "randn"),
    (lambda g: tl.randint(0, 3, (2,), generator=g), "randint"),
    (lambda g: tl.randperm(4, generator=g), "randperm"),
    (lambda g: tl.multinomial(tl.ones(3), 2, generator=g), "multinomial"),
    (lambda g: tl.ones(2).uniform_(generator=g), "uniform_"),
    (lambda g: tl.ones(2).normal_(generator=g), "normal_"),
])
@pytest.mark.parametrize("bad", [5, "seed", np.random.RandomState(0)])
def test_a_generator_that_is_not_a_numpy_generator_is_a_type_error_naming_the_draw(draw, name, bad):
    with pytest.raises(TypeError, match=f"{name}: generator must be a numpy.random.Generator.*got {type(bad).__name__}"):
        draw(bad)


def test_a_compiled_step_passing_a_generator_runs_eagerly_with_eagers_numbers():
    runs = []
    for compiled in (False, True):
        g = np.random.default_rng(11)

        def fn(x):
            return x + tl.randn(3, generator=g)
        f = tl.compile(fn) if compiled else fn
        runs.append(([f(tl.zeros(3)).numpy().copy() for _ in range(4)], f))
    (eager, _), (comp, f) = runs
    assert all(np.array_equal(a, b) for a, b in zip(eager, comp)) and not np.array_equal(comp[0], comp[1])
    assert f.stats["replays"] == 0 and "Generator" in f.stats["last_reason"], f.stats
