"""vmap's batched replay: every operation recorded on one sample, run once on the whole batch — primitives through
their batching rules, the library's NumPy computations through the rules declared beside them (`hooks.batching_rule`,
or elementwise), choices made from values checked on every sample, and what cannot be batched refused with its
reason (see vmap.py)."""
import numpy as np

from ..compile import hooks
from ..compile.record import ARG, GRAD, LIVE, SLOT, Obj, Ref
from ..ops.batching import BatchedAttr, align


class Value:
    """A value of the batched replay: the array, with the batch leading when `batched`."""
    __slots__ = ("array", "batched")

    def __init__(self, array, batched):
        self.array, self.batched = array, batched



class BatchedReplay:
    def __init__(self, cap, physical, size, randomness, same_draws=None):
        self.cap, self.physical, self.size, self.randomness = cap, physical, size, randomness
        self.vals = {}
        # randomness='same': op -> its one draw, shared by the replays of every chunk of one batch
        self.same_draws = {} if same_draws is None else same_draws

    def value(self, ref):
        kind, key = ref.kind, ref.key
        if kind == SLOT:
            return self.vals[key]
        if kind == ARG:
            return self.physical[key]
        if kind == LIVE:
            return Value(key._data, False)
        if kind == GRAD:
            return Value(key._grad._data, False)
        return Value(key, False)  # CONST

    def resolve(self, tmpl):
        """The template with Refs replaced by _Values (containers rebuilt)."""
        if isinstance(tmpl, Ref):
            return self.value(tmpl)
        if isinstance(tmpl, Obj):
            return tmpl.value
        if isinstance(tmpl, (tuple, list)):
            return type(tmpl)(self.resolve(t) for t in tmpl)
        if isinstance(tmpl, slice):
            return slice(self.resolve(tmpl.start), self.resolve(tmpl.stop), self.resolve(tmpl.step))
        if isinstance(tmpl, dict):
            return {k: self.resolve(v) for k, v in tmpl.items()}
        return tmpl

    def run(self):
        """Every recorded operation, once, on the whole batch."""
        for op in self.cap.ops:
            kind = op.kind
            if kind == "kernel":
                self.kernel(op)
            elif kind == "decision":
                self.decision(op)
            elif kind == "host":
                self.host(op)
            else:  # a value read into Python (.item(), float(), a comparison)
                rec = op.args if kind == "read" else op.args[0]
                raise RuntimeError(f"vmap: a value is read out of a tensor with .{rec.kind}() at {rec.site}; each "
                                   f"sample has its own, so Python cannot use one (keep it a Tensor)")

    def kernel(self, op):
        if op.effect:  # written into an array that outlives the call (a running statistic, a parameter)
            self.host(op)
        args = self.resolve(op.args)
        outs = op.outs if isinstance(op.outs, tuple) else (op.outs,)
        if any(a.batched for a in _walk(args) if isinstance(a, Value)):
            args = self.promote_written(args, outs)
        prim = op.prim
        if prim is not None:
            out = self.primitive(prim, args, op)
        else:
            out = self.host_fn(op.fn, args, op)
        results = out if isinstance(out, tuple) else (out,)
        for k, r in zip(outs, results):
            self.vals[k] = r

    def promote_written(self, args, outs):
        """An in-place NumPy write into one of the call's own arrays (gradient accumulation): when the sources
        carry the batch and the target does not yet, the target becomes a per-sample copy first."""
        promoted = {}  # the target may appear twice (np.add(cur, g, out=cur)): one copy for both

        def promote(a):
            if id(a) in promoted:
                return promoted[id(a)]
            if isinstance(a, Value) and not a.batched and any(self.vals.get(k) is a for k in outs):
                v = promoted[id(a)] = Value(np.array(np.broadcast_to(a.array, (self.size,) + a.array.shape)), True)
                for k in outs:
                    if self.vals.get(k) is a:
                        self.vals[k] = v
                return v
            if isinstance(a, (tuple, list)):
                return type(a)(promote(x) for x in a)
            return a
        return promote(args)

    def primitive(self, prim, args, op):
        k = len(prim.attr_names)
        inputs, attrs = (args[:-k], args[-k:]) if k else (args, ())
        attrs, batched_attr = _plain_attrs(attrs)
        if not any(v.batched for v in inputs) and not batched_attr:
            return Value(np.asarray(prim.forward(*[v.array for v in inputs], *attrs)), False)
        if batched_attr and not getattr(prim.batch, "batched_attrs", False):
            raise RuntimeError(f"vmap: '{prim.name}' at {op.site} gets a per-sample array as an attribute, which "
                               f"its batching rule does not take")
        out = prim.batch([v.array for v in inputs], [v.batched for v in inputs], attrs)
        return Value(np.asarray(out), True)

    def host_fn(self, fn, args, op):
        target = getattr(fn, "__wrapped__", fn)
        arrays = [a for a in _walk(args) if isinstance(a, Value)]
        if target in hooks.RANDOM:
            return self.random(fn, target, args, op)
        if not any(a.batched for a in arrays):
            out = fn(*_unwrap(args))
            return tuple(Value(o, False) for o in out) if isinstance(out, tuple) else Value(out, False)
        rule = _host_rule(target)
        if rule is None:
            raise RuntimeError(f"vmap: the NumPy computation {getattr(target, '__qualname__', target)!r} (at "
                               f"{op.site}) has no batching rule; it cannot run on the whole batch")
        out = rule(_unwrap(args), [a.batched for a in arrays])
        return tuple(Value(o, True) for o in out) if isinstance(out, tuple) else Value(out, True)

    def random(self, fn, target, args, op):
        """A draw of random numbers: refused ('error'), one draw shared by all samples ('same'), or a draw per
        sample through the function's batching rule ('different')."""
        name = getattr(target, "__qualname__", target)
        if self.randomness == "error":
            raise RuntimeError(f"vmap: {name!r} draws random numbers; with randomness='error' (the default, as "
                               f"torch.func) that is refused: pass randomness='different' (a draw per sample) or "
                               f"'same' (one draw for the whole batch)")
        if self.randomness == "same":  # drawn once per batch, not once per chunk
            if op not in self.same_draws:
                self.same_draws[op] = Value(fn(*_unwrap(args)), False)
            return self.same_draws[op]
        rule = hooks.BATCH_RULES.get(target)
        if rule is None:
            raise RuntimeError(f"vmap(randomness='different'): {name!r} has no batching rule for per-sample draws")
        return Value(rule(_unwrap(args), self.size), True)

    def decision(self, op):
        """A choice made from values on the first sample: every sample must make the same one."""
        args = self.resolve(op.args)
        if not any(a.batched for a in _walk(args) if isinstance(a, Value)):
            return
        for i in range(self.size):  # a choice per sample (a cheap test each), not the computation
            sample = _unwrap(args, index=i)
            if bool(op.fn(*sample)) != op.outs:
                raise RuntimeError(f"vmap: the library chooses its computation from the values at {op.site} "
                                   f"({getattr(op.fn, '__name__', 'a test')}), and sample {i} needs a different "
                                   f"choice than sample 0: such a function cannot be batched as one computation")

    def host(self, op):
        if op.effect:
            raise RuntimeError(f"vmap: {getattr(op.fn, '__qualname__', op.fn)!r} changes state that outlives the "
                               f"call (an optimizer step, a .grad, a buffer such as BatchNorm's running statistics "
                               f"in training mode); vmap runs pure functions (use eval() for BatchNorm)")
        args = self.resolve(op.args)
        op.fn(*_unwrap(args))  # a check that raises on bad values: on every sample at once


def _plain_attrs(attrs):
    """Attributes with _Values replaced by their arrays; a batched array becomes a BatchedAttr."""
    found = []

    def conv(a):
        if isinstance(a, Value):
            if a.batched:
                found.append(a)
                return BatchedAttr(a.array)
            return a.array
        if isinstance(a, (tuple, list)):
            return type(a)(conv(x) for x in a)
        if isinstance(a, slice):
            return slice(conv(a.start), conv(a.stop), conv(a.step))
        return a
    return tuple(conv(a) for a in attrs), bool(found)


def _walk(obj):
    if isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _walk(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _walk(o)
    elif isinstance(obj, slice):
        yield from _walk((obj.start, obj.stop, obj.step))
    else:
        yield obj


def _unwrap(obj, index=None):
    """_Values replaced by their arrays (or, with `index`, by that sample's array)."""
    if isinstance(obj, Value):
        if index is not None and obj.batched:
            return obj.array[index]
        return obj.array
    if isinstance(obj, (tuple, list)):
        return type(obj)(_unwrap(o, index) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v, index) for k, v in obj.items()}
    if isinstance(obj, slice):
        return slice(*(_unwrap(x, index) for x in (obj.start, obj.stop, obj.step)))
    return obj


def _host_rule(fn):
    rule = hooks.BATCH_RULES.get(fn)
    if rule is not None:
        return rule
    if isinstance(fn, np.ufunc) or fn in hooks.ELEMENTWISE:
        return _elementwise_host(fn)
    return None


def _elementwise_host(fn):
    """A NumPy computation that broadcasts its array arguments elementwise: aligned, then called as it is."""
    def rule(args, batched):
        positions = [i for i, a in enumerate(args) if isinstance(a, np.ndarray)]
        aligned = align([args[i] for i in positions], batched)
        args = list(args)
        for i, a in zip(positions, aligned):
            args[i] = a
        return fn(*args)
    return rule
