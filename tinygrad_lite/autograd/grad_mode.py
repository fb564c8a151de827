"""Thread-local autograd state: grad mode, anomaly mode and the current module scope."""
import functools
import inspect
import sys
import threading


class _State(threading.local):
    def __init__(self):
        self.grad_enabled = True
        self.anomaly = False
        self.scope = None  # the innermost module call (a tape.Scope) or None
        self.capture = None  # the tl.compile capture recording this thread's operations, or None


state = _State()


def is_grad_enabled():
    """True when operations are being recorded on the tape (per thread)."""
    return state.grad_enabled


class _Switch:
    """Sets one field of the thread-local state for a block; usable as a context manager and as a decorator
    (each decorated call gets a fresh switch, so nesting and recursion restore correctly)."""
    field = "grad_enabled"
    value = True

    def __enter__(self):
        self._prev = getattr(state, self.field)
        setattr(state, self.field, self.value)

    def __exit__(self, *exc):
        setattr(state, self.field, self._prev)
        return False

    def _fresh(self):
        return self.__class__()

    def __call__(self, fn):
        if inspect.isgeneratorfunction(fn):  # the mode holds while the generator runs, not while its caller does
            @functools.wraps(fn)
            def generator(*args, **kwargs):
                return (yield from _switched_generator(self._fresh, fn(*args, **kwargs)))
            return generator

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return fn(*args, **kwargs)
        return wrapper


def _switched_generator(fresh, gen):
    """Drive `gen` with each resumption inside a fresh switch (as PyTorch's decorated generators)."""
    try:
        with fresh():
            response = gen.send(None)
        while True:
            try:
                request = yield response
            except GeneratorExit:
                with fresh():
                    gen.close()
                raise
            except BaseException:
                with fresh():
                    response = gen.throw(sys.exc_info()[1])
            else:
                with fresh():
                    response = gen.send(request)
    except StopIteration as stop:
        return stop.value


class _Bare:
    """`@no_grad` without parentheses decorates as `@no_grad()` does (PyTorch accepts both)."""
    def __new__(cls, fn=None):
        if fn is None:
            return super().__new__(cls)
        if not callable(fn):
            raise TypeError(f"{cls.__name__}() takes no arguments (got {type(fn).__name__}); as a decorator it "
                            f"takes the function")
        return cls()(fn)


class _GradMode(_Switch):
    """Base of no_grad/enable_grad/set_grad_enabled."""
    field = "grad_enabled"


class no_grad(_Bare, _GradMode):
    """Context manager / decorator: operations inside are not recorded."""
    value = False


class enable_grad(_Bare, _GradMode):
    """Context manager / decorator: re-enable recording inside a no_grad block."""
    value = True


class set_grad_enabled(_GradMode):
    """Context manager / decorator / function setting grad mode to `mode`."""
    def __init__(self, mode):
        self.value = bool(mode)
        self._prev = state.grad_enabled
        state.grad_enabled = self.value  # also works as a plain function call, as PyTorch

    def __enter__(self):
        pass

    def __call__(self, fn):
        state.grad_enabled = self._prev  # used as a decorator: only the decorated calls change the mode
        return super().__call__(fn)

    def _fresh(self):
        switch = _GradMode()
        switch.value = self.value
        return switch


class inference_mode(_GradMode):
    """`torch.inference_mode(mode=True)`: here the same as no_grad (there is no separate inference tensor kind)."""
    def __new__(cls, mode=True):
        if callable(mode):  # `@inference_mode` without parentheses
            return cls()(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        self.value = not mode

    def _fresh(self):
        return inference_mode(not self.value)
