"""The interpreted form of a plan's steps, run by the first replays: one tuple per step (cheap to build), run by
one loop (`run_program`); the semantics of each step are `_how`'s, as in the generated code (replay.py)."""
from .record import CONST, SLOT, Ref
from .replay import _PLAIN, ReplayGuardFailed, _how, _raise_as_eager, _resolver, decision_message


def program(steps, release, buffer_of, buffers, start):
    """The interpreted replays' form of the steps: one tuple per step (how, function, argument slots, resolvers,
    out, buffer, slots to free), run by `run_program` in one loop; building it costs a tuple per step (the generated
    code costs ~12 us per step of Python's compiler). A step's arguments are slot numbers, read with one C-level
    map, when each is a slot or a constant (constants get slots of their own, appended to `start`, the list each
    replay's slots begin as); otherwise (resolvers not None) a resolver per argument, called per replay. The
    semantics are those of the line _Emitter writes for each step."""
    prog, const_slot = [], {}
    append = prog.append
    for (kind, item), rel in zip(steps, release):
        rel = tuple(rel)
        if kind != "op":  # a read or comparison step: a closure of the plan; a skipped step: its releases only
            append(("call" if kind == "closure" else "skip", item, None, None, None, None, rel, None))
            continue
        op = item
        how, f, buf = _how(op, buffer_of, buffers)
        keys, getters = [], None
        for a in op.args:
            if a.__class__ is Ref:
                kind = a.kind
                if kind == SLOT:
                    keys.append(a.key)
                    continue
                if kind != CONST:  # an argument, a live tensor, a gradient: resolved per call
                    getters = _getters(op.args)
                    break
                value = a.key  # a declared constant (a cached scalar's array): its slot holds the array itself,
                # as its resolver would return it (W1: 500 of its 840 steps multiply or add one)
            elif a.__class__ in _PLAIN or _resolver(a) is None:  # a constant: a slot of its own
                value = a
            else:  # a template holding an argument, a live tensor, a gradient
                getters = _getters(op.args)
                break
            k = const_slot.get(id(value))
            if k is None:
                k = const_slot[id(value)] = len(start)
                start.append(value)
            keys.append(k)
        out = op.outs
        if how == "decision":
            buf = (bool(out), decision_message(op))
        elif how in ("one", "many") and op.shapes is not None:
            how, buf = how + "-checked", (op.shapes, op.site)
        append((how, f, tuple(keys), getters, out, buf, rel, op))
    return prog


def _getters(args):
    """A resolver for each of a step's arguments, constants included (the step's arguments resolved per call)."""
    return tuple(_resolver(a) or (lambda v: (lambda vals, argv: v))(a) for a in args)


def run_program(prog, vals, argv):
    try:
        _run_program(prog, vals, argv)
    except (ValueError, IndexError, TypeError) as exc:  # a primitive failing on this call's values: eager's error
        _raise_as_eager(exc, _run_program.__code__,
                        lambda tb: (tb.tb_frame.f_locals.get("op"), tb.tb_frame.f_locals.get("args")))


def _run_program(prog, vals, argv):
    get = vals.__getitem__
    for how, f, keys, getters, out, buf, rel, op in prog:
        args = None
        if how == "call":
            f(vals, argv)
        elif how == "skip":
            pass
        else:
            args = list(map(get, keys)) if getters is None else [g(vals, argv) for g in getters]
            if how == "out":
                vals[out] = f(*args, out=buf)
            elif how == "one":  # (the result may be a number: arithmetic on a dynamic argument)
                vals[out] = f(*args)
            elif how == "into":
                vals[out] = f(buf, *args)
            elif how == "host":
                f(*args)
            elif how == "decision":
                if bool(f(*args)) != buf[0]:
                    raise ReplayGuardFailed(buf[1])
            else:  # several outputs, or one whose shape is a guard
                r = f(*args)
                single = how == "one-checked"
                if how != "many":
                    got = (r.shape,) if single else tuple(x.shape for x in r)
                    if got != buf[0]:
                        raise ReplayGuardFailed(f"an operation at {buf[1]} made shape {got} (recorded: {buf[0]})")
                if single:
                    vals[out] = r
                else:
                    for j, k in enumerate(out):
                        vals[k] = r[j]
        for k in rel:
            vals[k] = None
