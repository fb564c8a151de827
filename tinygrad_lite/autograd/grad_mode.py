"""Thread-local autograd state: grad mode, anomaly mode and the current module scope."""
import functools
import threading


class _State(threading.local):
    def __init__(self):
        self.grad_enabled = True
        self.anomaly = False
        self.scope = None  # the innermost module call (a tape.Scope) or None


state = _State()


def is_grad_enabled():
    """True when operations are being recorded on the tape (per thread)."""
    return state.grad_enabled


class _GradMode:
    """Base of no_grad/enable_grad/set_grad_enabled: a context manager and a decorator."""
    enabled = True

    def __enter__(self):
        self._prev = state.grad_enabled
        state.grad_enabled = self.enabled

    def __exit__(self, *exc):
        state.grad_enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__() if type(self) is not set_grad_enabled else set_grad_enabled(self.enabled):
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Context manager / decorator: operations inside are not recorded."""
    enabled = False


class enable_grad(_GradMode):
    """Context manager / decorator: re-enable recording inside a no_grad block."""
    enabled = True


class set_grad_enabled(_GradMode):
    """Context manager / decorator / function setting grad mode to `mode`."""
    def __init__(self, mode):
        self.enabled = bool(mode)
        self._prev = state.grad_enabled
        state.grad_enabled = self.enabled  # also works as a plain function call, as PyTorch

    def __enter__(self):
        pass
