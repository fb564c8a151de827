"""The package's random number generator: `tl.manual_seed(n)` makes every draw reproducible."""
import numpy as np

_rng = np.random.default_rng()


def get_rng():
    """The `numpy.random.Generator` behind init, dropout, `randn` and DataLoader shuffling."""
    return _rng


def manual_seed(seed):
    """Reseed every random draw of tinygrad_lite (init, dropout, factories, shuffling)."""
    global _rng
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: expected an int seed, got {type(seed).__name__}")
    _rng = np.random.default_rng(int(seed) & 0xFFFFFFFFFFFFFFFF)
    return _rng


def set_rng(generator):
    """Install `generator` (a numpy.random.Generator, e.g. one saved with get_rng()) as the package RNG."""
    global _rng
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"set_rng: expected a numpy.random.Generator, got {type(generator).__name__}")
    _rng = generator
