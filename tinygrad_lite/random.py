"""The package's random number generator: `tl.manual_seed(n)` makes every draw reproducible."""
import numbers

import numpy as np

from .autograd.grad_mode import state as _state

_rng = np.random.default_rng()


def get_rng():
    """The `numpy.random.Generator` behind init, dropout, `randn` and DataLoader shuffling."""
    if _state.capture is not None:  # inside tl.compile's recording: where the first draw comes (Capture.drew)
        _state.capture.drew()
    return _rng


def checked(generator, where):
    """`generator=` of a draw checked: None (the package's) or a numpy Generator, else a TypeError naming `where`."""
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"{where}: generator must be a numpy.random.Generator (tl.random.get_rng() or "
                        f"np.random.default_rng(seed)), got {type(generator).__name__}")
    return generator


def generator_for(generator):
    """The generator a library draw uses: `generator`, or the package's when None. Inside tl.compile's recording
    either one is a draw (Capture.drew): a Generator passed in may be the package's own, got before the call
    (`generator=holder.g`), and a replay's guard that fails after it must give the eager call its state back."""
    if _state.capture is not None:
        _state.capture.drew()
    return _rng if generator is None else generator


def manual_seed(seed):
    """Reseed every random draw of tinygrad_lite (init, dropout, factories, shuffling)."""
    global _rng
    if not isinstance(seed, numbers.Integral) or isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"manual_seed: expected an int seed, got {type(seed).__name__}")
    _rng = np.random.default_rng(int(seed) & 0xFFFFFFFFFFFFFFFF)
    from .compile.hooks import active
    cap = active()
    if cap is not None:  # inside tl.compile: a replay reseeds too, so its draws are the eager call's (no effect
        cap.host_call(manual_seed, (seed,), "manual_seed", effect=False)  # a failed guard cannot undo: see Plan.run)
    return _rng


def set_rng(generator):
    """Install `generator` (a numpy.random.Generator, e.g. one saved with get_rng()) as the package RNG."""
    global _rng
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"set_rng: expected a numpy.random.Generator, got {type(generator).__name__}")
    _rng = generator
    from .compile.hooks import active
    cap = active()
    if cap is not None:
        cap.fail("set_rng inside the function (a replay would install the recorded generator, in whatever state it "
                 "is then); call it outside, or use tl.manual_seed")
