"""How a primitive is declared: once, with a NumPy forward, a VJP in Tensor operations and a sampler for tests.

    @primitive("exp", sample=unary())
    def exp(x):                   # ndarrays in, ndarray out
        return np.exp(x)

    @exp.defvjp
    def _(ctx, g):                # ctx is the tape entry: ctx.saved (input Tensors), ctx.attrs, ctx.output()
        return (g * ctx.output(),)

The engine undoes broadcasting centrally, so a VJP may return a gradient of the broadcast output shape.
"""
from ..autograd import recorder as tape

REGISTRY = {}
VIEW_OPS = frozenset({"reshape", "permute", "expand", "getitem"})  # primitives whose result may view their input


class OpError(RuntimeError, ValueError):
    """A shape or value error raised by an operation; a RuntimeError (as PyTorch) that is also a ValueError."""


def _fmt_shape(s):
    return "(" + ", ".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"


def describe_inputs(arrays):
    return ", ".join(f"{_fmt_shape(a.shape)} {a.dtype}" for a in arrays)


def user_site():
    site = tape.caller_site()
    return "" if site is None else f" (at {site[0].co_filename}:{site[1]})"


class Primitive:
    """A differentiable operation: NumPy forward, VJP in Tensor ops, attribute names, optional test sampler."""
    __slots__ = ("name", "forward", "vjp", "attr_names", "nin", "sample", "kink", "expects", "reads", "into", "jvp",
                 "onnx", "batch", "ufunc", "release")

    def __init__(self, name, forward, attr_names=(), nin=1, sample=None, kink=None, expects=None,
                 reads=("inputs", "output")):
        self.name = name
        self.forward = forward
        self.vjp = None
        self.attr_names = tuple(attr_names)
        self.nin = nin
        self.sample = sample
        self.kink = kink
        self.expects = expects
        self.reads = frozenset(reads)  # what the VJP reads besides shapes: "inputs" values, the "output" value
        self.into = None  # optional: into(out, *arrays, *attrs) writes forward's result into `out` (tl.compile)
        self.jvp = None   # forward mode: jvp(primals, tangents, out, attrs) -> the output's tangent (see defjvp)
        self.onnx = None  # ONNX export rule (see defonnx)
        self.batch = None  # vmap: the forward over a leading batch dimension (see defbatch)
        self.ufunc = None  # the NumPy ufunc the forward is, when it is one (tl.compile calls it directly)
        self.release = None  # optional: release(entry) -> whether a backward without retain_graph frees the entry
        # now (tl.compile's entry of several outputs keeps what the backward of the others still needs)

    def defvjp(self, fn):
        self.vjp = fn
        return fn

    def defjvp(self, fn):
        """Declare the forward-mode rule `fn(primals, tangents, out, attrs)`: primals are the input Tensors,
        tangents one Tensor or None (a zero tangent) per input, `out` the primal output Tensor; it returns the
        output's tangent (J v) as a Tensor, written in Tensor operations so that it is itself differentiable."""
        self.jvp = fn
        return fn

    def defbatch(self, fn):
        """Declare the batching rule `fn(arrays, batched, attrs) -> array` for tl.func.vmap: `arrays` are the
        inputs, each with the batch as its leading dimension where `batched[i]` is True (unbatched ones are as the
        primitive sees them normally); it returns the output with the batch leading, computed in one call (no loop
        over the batch). ops/batching.py has the shared rules (elementwise, reductions, ...)."""
        self.batch = fn
        return fn

    def defonnx(self, fn):
        """Declare the ONNX export rule `fn(g, call) -> name`, used by tl.onnx.export (rules live in
        ops/<group>_onnx.py; no onnx import there). `call` (tinygrad_lite.onnx.rules.Call) holds the input names
        (`call.inputs`), the recorded input arrays (`call.arrays`: dtypes, shapes), `call.attrs` (ints that follow
        a dynamic axis are `Dim`s) and the recorded output (`call.out_dtype`, `call.out_shape`); `g` adds nodes:
        `g.op(type, *inputs, **attributes)`, `g.const(array)`, `g.ints(seq)` (a shape, Dims computed from the
        inputs' shapes), `g.tensor(array)` (any array of the recording, e.g. an index attribute), `g.cast`,
        `g.unsupported(why)`. It returns the name of the output: one ONNX node or a small fixed pattern."""
        self.onnx = fn
        return fn

    def definto(self, fn):
        """Declare `fn(out, *arrays, *attrs)`: the forward's result written into a given array (same values, bit
        for bit, as forward returns; the sweep checks it). tl.compile's replays then reuse planned buffers."""
        self.into = fn
        return fn

    def ufunc_into(self, ufunc):
        """The common `into` rule: the forward is this NumPy ufunc (so a replay may also call it directly)."""
        self.into = lambda out, *args: ufunc(*args, out=out)
        self.ufunc = ufunc
        return self

    def __call__(self, *args):
        """Apply to Tensors followed by attributes; VJPs use this to call primitives without operator dispatch
        (inputs must already share a dtype)."""
        if self.attr_names:
            k = len(self.attr_names)
            return tape.apply(self, args[:-k], args[-k:])
        return tape.apply(self, args)

    def call(self, *args):
        """Apply to Tensors followed by attributes (as recorded in an entry)."""
        k = len(self.attr_names)
        if k:
            return tape.apply(self, args[:-k], args[-k:])
        return tape.apply(self, args, ())

    def error(self, inputs, attrs, exc):
        """An exception naming this operation, its input shapes/dtypes, attributes and the user's line."""
        msg = f"{self.name}: {exc}; inputs: {describe_inputs([t._data for t in inputs])}"
        if attrs and self.attr_names:
            shown = ", ".join(f"{n}={_short(a)}" for n, a in zip(self.attr_names, attrs))
            msg += f"; {shown}"
        if self.expects:
            msg += f"; expected {self.expects}"
        msg += user_site()
        cls = {IndexError: IndexError, TypeError: TypeError}.get(type(exc), OpError)
        return cls(msg)

    def __repr__(self):
        return f"<primitive {self.name}>"


def _short(a):
    r = repr(a)
    return r if len(r) < 80 else r[:77] + "..."


def primitive(name, attrs=(), nin=1, sample=None, kink=None, expects=None, reads=("inputs", "output")):
    """Decorator declaring a primitive from its NumPy forward; attach the VJP with `.defvjp`. `reads` says which
    values the VJP uses (shapes aside): an in-place change to a value it does not read leaves backward valid, as
    PyTorch's saved-variable checks do; the test sweep checks the declaration."""
    def deco(forward):
        if name in REGISTRY:
            raise RuntimeError(f"primitive '{name}' declared twice")
        p = Primitive(name, forward, attrs, nin, sample, kink, expects, reads)
        REGISTRY[name] = p
        return p
    return deco
