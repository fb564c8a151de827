"""What the constants scan (constants.py) reads out of a function's bytecode: the chains of names and attributes it
loads (`_chains`: `self.cfg.scale`, `cfg["lr"]`; a local assigned from a chain read as its source; whether the object
at a chain's end is used as a value, or its items read), and the attribute names it reads on any object
(`_read_names`). Pure functions of a code object, cached."""
import dis
import functools
import types

from .values import data as _data

_KIND = {"LOAD_GLOBAL": "global", "LOAD_NAME": "global", "LOAD_DEREF": "deref", "LOAD_FAST": "fast"}
_ROOTS = tuple(_KIND)
_DYNAMIC = frozenset(("vars", "__dict__", "attrgetter", "methodcaller", "asdict", "astuple", "fields", "dir",
                      "__getattribute__"))


@functools.lru_cache(maxsize=1024)
def _instructions(code):
    """code's instructions, decoded once for _chains and _read_names (dis costs ~5 us per instruction)."""
    return tuple(dis.get_instructions(code))


@functools.lru_cache(maxsize=1024)
def _read_names(code):
    """(the attribute paths `code` and the code it defines read from what may be an object passed to it — a local
    (a parameter, a loop variable, an alias), a closure variable, a call's result, an item: `t.model`, `c.sub.scale`,
    `get_cfg().scale`, `cs[0].scale`, and the method of an item write or an in-place operator on it (`t[k] = v`:
    `__setitem__`); not `t.n += 1`'s store; getattr and hasattr with a constant name read that
    name, with a computed one the path ends in _ANY —, whether it reads attributes by names computed elsewhere:
    vars, __dict__, attrgetter, asdict, a match pattern's positions). Not the chains from globals, which the scan
    follows to their objects."""
    instructions, paths, dynamic = _instructions(code), set(), False
    for i, ins in enumerate(instructions):
        op = ins.opname
        if op in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_ATTR", "LOAD_METHOD") and ins.argval in _DYNAMIC:
            dynamic = True
        if op in ("LOAD_FAST", "LOAD_DEREF", "CALL", "BINARY_SUBSCR"):  # (a local, a call's result, an item)
            path, j = _attribute_path(instructions, i + 1)
            if path:
                paths.add(path)
            paths.update(path + (method,) for method in _written_by(instructions, j))  # `b[k] = v`, `b.log[k] = v`,
            # `b += x`, `get_box()[k] = v`: the methods that change what is there
            if i and instructions[i - 1].opname == "LOAD_GLOBAL" and instructions[i - 1].argval in ("getattr",
                                                                                                     "hasattr"):
                name = instructions[j].argval if j < len(instructions) and instructions[j].opname == "LOAD_CONST" \
                    else None
                paths.add(path + ((name if isinstance(name, str) else _ANY),))  # `getattr(c, "scale", 1.0)`
        if op == "MATCH_CLASS":  # `case Cfg(sub=s)`: its keywords by name, positions by __match_args__
            previous = instructions[i - 1]
            if previous.opname == "LOAD_CONST" and isinstance(previous.argval, tuple):
                paths.update((n,) for n in previous.argval if isinstance(n, str))
            dynamic = dynamic or bool(ins.arg)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            inner, more = _read_names(const)
            paths |= inner
            dynamic = dynamic or more
    return frozenset(paths), dynamic


def _attribute_path(instructions, j):
    """(the attribute names loaded in a row from j on, the index after them)."""
    path = []
    while j < len(instructions) and instructions[j].opname in ("LOAD_ATTR", "LOAD_METHOD"):
        path.append(instructions[j].argval)
        j += 1
    return tuple(path), j


class _Key:
    """In an attribute path: an item read with a constant key, `cfg["lr"]` (`BINARY_SUBSCR` after `LOAD_CONST`)."""
    __slots__ = ("key",)

    def __init__(self, key):
        self.key = key

    def __eq__(self, other):
        return other.__class__ is _Key and type(other.key) is type(self.key) and other.key == self.key

    def __hash__(self):
        return hash((_Key, self.key))

    def __repr__(self):
        key = self.key
        return f"[{', '.join(map(repr, key)) if type(key) is tuple and key else repr(key)}]"  # a[0, 0], not a[(0, 0)]


_ANY = "<getattr>"  # in an attribute path: the object is the first argument of getattr (see _chains)


@functools.lru_cache(maxsize=1024)
def _chains(code, top=True):
    """{(kind, name, (attr, ...))}: every name `code` and the code it defines inside (comprehensions, lambdas) reads
    as a global, a cell ('deref') or, in `code` itself, a local ('fast': only `self` is kept), with the data
    attributes read from it in a row (the last may be a method it calls). A chain whose object is then used as a value
    (passed to a call, put in a container, compared; not stored into) ends in _USED; one whose values Python reads
    (iterated or unpacked, the container of an item read, the first argument of a reading builtin or NumPy function,
    met with a constant in arithmetic or a comparison) is also found ending in _SUBSCRIPT (what matters for a NumPy
    argument). A local or cell assigned from a chain (`c = cfg`, `s = self.cfg.sub`) is an alias: a chain read from it
    is read from its source(s)."""
    found, aliases, chain, of_getattr, chain_any, read_by, start = set(), {}, None, False, False, False, 0
    of_setattr = chain_set = False  # (the next chain is setattr's or delattr's object: any attribute of it is stored)
    instructions, augmented_at = _instructions(code), set()  # (the STORE_ATTRs of `chain.n += 1`: seen at COPY)
    for i, ins in enumerate(instructions):
        op = ins.opname
        if op in ("STORE_ATTR", "DELETE_ATTR") and chain is None and i not in augmented_at:
            found.add((STORED_ON_VALUE, ins.argval, ()))  # `self.get_stats().n += 1`, `self.items[i].last = t`
        if op == "LOAD_ATTR" and chain is not None:
            chain.append(ins.argval)
            continue
        if chain is not None and op == "BINARY_SUBSCR" and chain[-1].__class__ is _Key:
            continue  # (the item `cfg["lr"]` read: its key was appended at LOAD_CONST)
        if chain is not None and op == "LOAD_CONST" and _data(ins.argval) and _subscript(instructions, i):
            chain.append(_Key(ins.argval))
            continue
        if op == "LOAD_METHOD" and chain is not None:  # `obj.method(...)` (Python 3.11): the chain ends in a call
            chain.append(ins.argval)
        if chain is not None:
            key = (chain[0], chain[1], tuple(chain[2:]))
            if op in ("STORE_FAST", "STORE_DEREF") and (op == "STORE_FAST" or ins.argval in code.co_cellvars) \
                    and not chain_any:
                aliases.setdefault(ins.argval, set()).add(key)  # `c = cfg`: read where c is read
            else:
                augmented = op == "COPY" and instructions[i + 1].opname == "LOAD_ATTR"  # `obj.n += 1`: stored
                used = op not in ("STORE_ATTR", "DELETE_ATTR", "LOAD_METHOD") and not augmented
                found.add(key[:2] + (key[2] + (_USED,),) if used else key)
                if op in ("STORE_ATTR", "DELETE_ATTR") or augmented:  # the attribute assigned, then _STORED (or
                    attr = (instructions[i + 1] if augmented else ins).argval  # how a counter moves: _Increment)
                    if augmented:
                        augmented_at.add(_augmented_store(instructions, i + 1, attr))
                    found.add(key[:2] + (key[2] + (attr, (_increment(instructions, i) if augmented else None)
                                                   or _STORED),))
                if op == "BEFORE_WITH":  # `with self.timer:` runs its __enter__ and __exit__ (their code is read)
                    found.update(key[:2] + (key[2] + (m,),) for m in ("__enter__", "__exit__"))
                if op not in ("STORE_ATTR", "DELETE_ATTR", "LOAD_METHOD") and not augmented:  # `self.st[k] = v`,
                    # `del m[h.k]`, `m = self.meter; m += x`: the object's __setitem__, __delitem__, __iadd__, read
                    found.update(key[:2] + (key[2] + (method,),) for method in _written_by(instructions, i))  # as
                    # any method it calls
                if op in _ITERATES or (read_by and len(chain) == 2) or _indexed(instructions, i) \
                        or _with_constant(instructions, i, start) or op in _UNARY:
                    found.add(key[:2] + (key[2] + (_SUBSCRIPT,),))  # `a[i]`, `a[:, 0]`, `for v in a`: items read
            if chain_any:  # the chain was getattr's object: `getattr(self.cfg, name)` reads any of its attributes
                found.add(key[:2] + (key[2] + (_ANY,),))
            if chain_set:  # `setattr(self, "last", v)`: an attribute stored
                found.add(key[:2] + (key[2] + (_ANY, _STORED),))
            call = instructions[i + 1] if op == "LOAD_METHOD" else ins
            if call.opname == "PRECALL" and call.arg == 0:  # `np.random.default_rng()`: called without arguments
                found.add(key[:2] + (key[2] + (_BARE,),))
            chain = None
        if op == "LOAD_GLOBAL" and ins.argval in ("getattr", "hasattr"):
            of_getattr = True  # the next chain is getattr's object
            continue
        if op == "LOAD_GLOBAL" and ins.argval in ("setattr", "delattr"):
            of_setattr = True
            continue
        chain_any = chain_set = False
        if op in _ROOTS:
            chain, chain_any, chain_set = [_KIND[op], ins.argval], of_getattr, of_setattr
            read_by, start = _reader(instructions, i), i
        if op != "PUSH_NULL":
            of_getattr = of_setattr = False
        if op in ("LOAD_METHOD", "LOAD_ATTR") and ins.argval in ("__setattr__", "__delattr__"):
            of_setattr = True  # `object.__setattr__(box, "last", v)`: the next chain is its object, as setattr's
    if chain is not None:
        found.add((chain[0], chain[1], tuple(chain[2:])))
        if chain_any:
            found.add((chain[0], chain[1], tuple(chain[2:]) + (_ANY,)))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= {c for c in _chains(const, False) if c[0] != REBOUND or c[1] not in code.co_cellvars}
    read = {ins.argval for ins in instructions if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF")}
    for ins in instructions:  # `global n; n = t`, `nonlocal last; last = t`: a name outliving the call rebound
        if (ins.opname in ("STORE_GLOBAL", "DELETE_GLOBAL") or ins.opname in ("STORE_DEREF", "DELETE_DEREF") and
                ins.argval in code.co_freevars) and ins.argval not in read:  # (one read is guarded by its value)
            found.add((REBOUND, ins.argval, ()))
    params = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    return frozenset(_unalias(found, aliases, code.co_cellvars, params, top, _made_by(code)))


@functools.lru_cache(maxsize=1024)
def _made_by(code):
    """{local: frozenset of origins}: where each value a local of `code` is assigned comes from, for a store on it
    (STORED_ON_VALUE): ("call", callee) for a call's result (the called object's chain as _callee writes it: `r =
    Metrics()`, `s = self.get_stats()`), ("each", origin) for a loop's variable over a call's result or a chain (`for
    m in model.modules()`: ("each", ("call", ...)); `for b in self.items`: ("each", ("chain", ...))); None for any
    other value or one the stack cannot be followed to."""
    instructions, made, stack, each = _instructions(code), {}, [], None  # (stack: (start, origin or None))
    for i, ins in enumerate(instructions):
        op = ins.opname
        if op in ("STORE_FAST", "STORE_DEREF"):
            if i and instructions[i - 1].opname == "FOR_ITER":
                origin = ("each", each) if each is not None else None
            else:
                origin = stack[-1][1] if stack and not ins.is_jump_target else None
            made.setdefault(ins.argval, set()).add(origin)
        if ins.is_jump_target:
            stack = []
        if op == "GET_ITER":
            each = None
            if stack:
                start, origin = stack[-1]
                chain = _callee(instructions[start:i])
                each = origin if origin is not None else (("chain", chain) if chain is not None else None)
        if op == "CALL":
            n = ins.arg
            if len(stack) >= n + 2:
                start = stack[-n - 2][0]
                span = instructions[start:stack[-n][0] if n else i]
                while span and span[-1].opname in ("PRECALL", "KW_NAMES"):
                    span = span[:-1]
                callee = _callee(span)
                del stack[len(stack) - n - 2:]
                stack.append((start, ("call", callee) if callee is not None else None))
            else:
                stack = []
            continue
        effect = _stack_effect(ins)
        if effect is None or len(stack) < effect[0]:
            stack = []
            continue
        start = _pop(stack, effect[0], i)[1]
        stack.extend([(start, None)] * effect[1])
    return {name: frozenset(origins) for name, origins in made.items()}


_IN_PLACE = {"+=": "__iadd__", "-=": "__isub__", "*=": "__imul__", "/=": "__itruediv__", "//=": "__ifloordiv__",
             "%=": "__imod__", "**=": "__ipow__", "@=": "__imatmul__", "&=": "__iand__", "|=": "__ior__",
             "^=": "__ixor__", "<<=": "__ilshift__", ">>=": "__irshift__"}


def _written_by(instructions, i):
    """The methods that change the value a chain left on the stack before instructions[i], found by following the
    stack from i: `__setitem__` (the container of `v[k] = x`, `v[h.k] += 1`, whatever the key's expression: calls,
    a conditional expression), `__delitem__`, `__iadd__` and the other in-place operators (`v += x * 2`,
    `v += loss.item()`); () where the stack is not followed (an instruction without a known effect) before the value
    is taken."""
    stack, found, j = [True], set(), i  # (True: the chain's value or a copy of it)
    while j < len(instructions) and True in stack:
        ins = instructions[j]
        op = ins.opname
        j += 1
        if op == "JUMP_FORWARD" or (op in _OR_POP and stack[-1]):  # (a branch of a conditional expression, or
            # `(v or w)[k] = x`, where v goes on: one path is followed, the stack below what the expression pushes
            # is the same at the end of each)
            j = _at(instructions, j, ins.argval)
            continue
        taken = _step(stack, ins, (1, 0) if op in _CONDITIONAL else None)  # (the path not jumping)
        if taken is None:
            break
        popped, pushed = taken
        if True in popped:
            if op in ("STORE_SUBSCR", "DELETE_SUBSCR") and popped[-2]:  # (the container, below the key)
                found.add("__setitem__" if op == "STORE_SUBSCR" else "__delitem__")
            elif op == "BINARY_OP" and popped[0] and ins.argrepr in _IN_PLACE:
                found.add(_IN_PLACE[ins.argrepr])
            elif op not in ("BINARY_SUBSCR", "POP_TOP"):  # (an item read of a copy, `v[k] += 1`: the value goes on)
                break  # (taken by another instruction: what it does is not followed)
        stack.extend([False] * pushed)
    return tuple(sorted(found))


_OR_POP = ("JUMP_IF_TRUE_OR_POP", "JUMP_IF_FALSE_OR_POP")
_CONDITIONAL = _OR_POP + ("POP_JUMP_FORWARD_IF_TRUE", "POP_JUMP_FORWARD_IF_FALSE", "POP_JUMP_FORWARD_IF_NONE",
                          "POP_JUMP_FORWARD_IF_NOT_NONE")  # (forward: within an expression; each pops one value
#                                                              on the path not jumping)


def _at(instructions, j, offset):
    """The index of the instruction at bytecode `offset`, from j on (a forward jump's target)."""
    while j < len(instructions) and instructions[j].offset < offset:
        j += 1
    return j


def _value_effect(ins):
    """(values popped, values pushed) of `ins` for _written_by and only_returned: _stack_effect's, and those of an
    item written or deleted, a call (Python 3.11: NULL or the callable, the callable or self, the arguments), a
    dict built and a formatted value."""
    op = ins.opname
    if op == "CALL":
        return ins.arg + 2, 1
    if op == "BUILD_MAP":
        return 2 * ins.arg, 1
    if op == "BUILD_CONST_KEY_MAP":
        return ins.arg + 1, 1
    if op == "FORMAT_VALUE":  # (with a format spec: 2)
        return 1 + (ins.arg & 4 == 4), 1
    return {"STORE_SUBSCR": (3, 0), "DELETE_SUBSCR": (2, 0)}.get(op) or _stack_effect(ins)


_BUILDS = ("BUILD_TUPLE", "BUILD_LIST", "BUILD_MAP", "BUILD_CONST_KEY_MAP")


def _step(stack, ins, effect=None):
    """Instruction `ins` on a followed stack of flags (True: the value followed; padded below with False, the values
    on the stack before the following began: `x` of `v[k] = x`): (the flags it pops, how many values it pushes), the
    pushes left to the caller; COPY and SWAP move the flags themselves (nothing popped). `effect`: (popped, pushed)
    when not _value_effect's (the path of a conditional jump not taken). None for an instruction whose effect is not
    known."""
    op = ins.opname
    if op in ("COPY", "SWAP"):
        stack[:0] = [False] * (ins.arg - len(stack))
        if op == "COPY":
            stack.append(stack[-ins.arg])
        else:
            stack[-1], stack[-ins.arg] = stack[-ins.arg], stack[-1]
        return [], 0
    effect = effect or _value_effect(ins)
    if effect is None:
        return None
    n = effect[0]
    stack[:0] = [False] * (n - len(stack))
    popped = stack[len(stack) - n:]
    del stack[len(stack) - n:]
    return popped, effect[1]


def only_returned(code, offset, name):
    """Whether the value of the call at bytecode `offset` of `code` is that of the builtin `name` ('float', 'int'),
    or of the method `name` ('numpy', 'tolist') called on an object, and is returned untouched and used for nothing
    else: its place in the returned structure (returned_call), or None."""
    found = returned_call(code, offset)
    if found is None:
        return None
    load, place = found
    builtin = name in ("float", "int")
    if load.argval != name or load.opname not in (("LOAD_GLOBAL", "LOAD_NAME") if builtin else ("LOAD_METHOD",)):
        return None
    return place


@functools.lru_cache(maxsize=1024)
def returned_call(code, offset):
    """(the instruction that loaded the callee of the call at bytecode `offset` of `code`, `float` of `float(loss)`,
    `step` of `step(x, y)`; the value's place in the returned structure) when the call's value is returned untouched
    and used for nothing else: the operand of RETURN_VALUE, or an item of a tuple, list or dict built for it
    (`return float(loss)`, `return float(loss), acc`, `return {"loss": float(loss)}`, `return out.numpy()`); else
    None. The place is the keys from the returned object down to the value, `(1, Nth(0, 1))` for
    `return acc, {"loss": float(loss)}`, or False where it is not one (the value built in twice). None where the
    stack is not followed (a conditional expression, a call, an operator, a copy: `return (v := float(loss)), v * 2`);
    the caller checks the callee, so that another call that calls float() itself (`sorted(map(float, ts))`,
    `list(filter(f, map(float, ts)))`), which decides with the numbers as a replay would not, is not taken."""
    instructions = _instructions(code)
    # the instruction at or before `offset` (a frame's f_lasti: the CALL, or one of its inline cache entries, which
    # dis does not list, when the call was specialized: `out.numpy()`)
    at = max((i for i, ins in enumerate(instructions) if ins.offset <= offset), default=None)
    if at is not None and instructions[at].opname == "PRECALL" and at + 1 < len(instructions):
        at += 1  # (a PRECALL specialised after a few runs of the code makes the call itself: `float(t)`'s)
    if at is None or instructions[at].opname != "CALL":
        return None
    load = _callee_load(instructions, at)
    if load is None:
        return None
    stack, place = [True], ()  # (True: the call's value, or a container holding it)
    for j in range(at + 1, len(instructions)):
        ins = instructions[j]
        if ins.is_jump_target:
            return None
        taken = _step(stack, ins)  # (a call between: `return float(loss), out.detach()`; `with`'s exit call; a
        # copy, `(v := float(loss))`: v holds it too)
        if taken is None:
            return None
        popped, pushed = taken
        if True in popped:
            if ins.opname == "RETURN_VALUE":
                return load, place
            if ins.opname not in _BUILDS or (ins.opname == "BUILD_MAP" and True in popped[::2]):  # (not a key)
                return None
            if place is not False:
                place = _key(instructions, j, popped) + place if popped.count(True) == 1 else False
            stack.append(True)
            continue
        stack.extend([False] * pushed)
    return None


def _key(instructions, j, popped):
    """(the key of the followed value in the container instructions[j] builds from the values `popped`,): its index
    in a tuple or list, an Nth in a dict."""
    i = popped.index(True)
    if instructions[j].opname in ("BUILD_TUPLE", "BUILD_LIST"):
        return (i,)
    if instructions[j].opname == "BUILD_MAP":  # (key, value, key, value, ...)
        return (Nth(i // 2, len(popped) // 2),)
    return (Nth(i, len(popped) - 1),)  # BUILD_CONST_KEY_MAP: the values, then the tuple of keys


class Nth:
    """The `i`th item of a dict built from `n` pairs: that item where the dict has n items (no key given twice)."""
    __slots__ = ("i", "n")

    def __init__(self, i, n):
        self.i, self.n = i, n


def _callee_load(instructions, at):
    """The instruction that loaded the object the CALL at instructions[at] calls (`float` of `float(loss)`), found by
    following the stack back over the arguments' expressions; None where it is not followed (an instruction without
    a known effect, a jump target). A callable loaded after a PUSH_NULL (`step(x)` of a local or a closure's
    variable) is that load, where it is one instruction."""
    need = instructions[at].arg + 2  # (the values the call takes: see _value_effect; `out.numpy`'s LOAD_METHOD
    # pushes two)
    made = after = None  # (the instruction that pushed the callable above a PUSH_NULL; the one after PUSH_NULL)
    for ins in reversed(instructions[:at]):
        effect = _value_effect(ins)
        if effect is None:
            return None
        if effect[1] >= need:
            if ins.opname == "PUSH_NULL" and need == 1:  # (a load of its own, not `f.g`'s attribute of a load)
                return made if made is after and _value_effect(made) == (0, 1) else None
            return ins if effect[1] == need else None
        if ins.is_jump_target:
            return None
        if need == 2 and made is None and effect[1]:
            made = ins
        need += effect[0] - effect[1]
        after = ins
    return None


def _increment(instructions, i):
    """`obj.n += 1` (`-=`, by a number constant) at instructions[i:] (COPY, LOAD_ATTR n, LOAD_CONST, BINARY_OP, SWAP,
    STORE_ATTR n) as an _Increment; None for another augmented assignment."""
    if i + 5 >= len(instructions):
        return None
    load, const, binop, swap, store = instructions[i + 1:i + 6]
    if const.opname != "LOAD_CONST" or const.argval.__class__ not in (int, float) or binop.opname != "BINARY_OP" or \
            binop.argrepr not in ("+=", "-=") or swap.opname != "SWAP" or store.opname != "STORE_ATTR" or \
            store.argval != load.argval:
        return None
    return _Increment(binop.argrepr, const.argval)


class _Increment:
    """At the end of a chain's path, after an attribute: the code only moves it by a constant (`obj.n += 1`), which a
    replay can repeat (constants._Counters)."""
    __slots__ = ("op", "const")

    def __init__(self, op, const):
        self.op, self.const = op, const

    def __eq__(self, other):
        return other.__class__ is _Increment and (self.op, self.const, type(self.const)) == \
            (other.op, other.const, type(other.const))

    def __hash__(self):
        return hash((self.op, self.const))

    def __repr__(self):
        return f"<{self.op} {self.const!r}>"

    def apply(self, value):
        return value + self.const if self.op == "+=" else value - self.const


_USED = "<used>"  # at the end of a chain's path: the object is used as a value (see _chains)
_STORED = "<stored>"  # at the end of a chain's path, after an attribute: the code assigns (or deletes) that attribute
# a chain's kind: the code assigns (or deletes) attribute `name` of an object that is no chain the scan can follow (a
# call's result, an item at a computed key, a local assigned from either or a loop's variable): (STORED_ON_VALUE,
# attr, origins), origins the local's (_made_by) when each value it holds is known, else ()
STORED_ON_VALUE = "stored on a value"
# a chain's kind: the code rebinds global or closure variable `name` (`global`, `nonlocal`) and does not read it (a
# name it reads is guarded by its value, which the rebinding changes): (REBOUND, name, ())
REBOUND = "rebound"
_SUBSCRIPT = "<item>"  # at the end of a chain's path: an item of it is read with a computed key (see _chains)
_BARE = "<called()>"  # at the end of a chain's path: it is called without arguments (see _chains)
_EACH = "<each>"  # at the end of a callee's path (_passes): each item of it, a loop's variable (`for b in self.blocks`)
UNRESOLVED = ("unresolved", None, ())  # a callee (_passes) that is no chain: `type(self).f(a)`, `self.blocks[0](x, a)`
_LOADS = ("LOAD_FAST", "LOAD_CONST", "LOAD_GLOBAL", "LOAD_DEREF", "LOAD_NAME")
_MAX_ALIASED = 256  # chains made by reading locals as their sources (`a = a.next` in a loop would not end)
_MAX_SUBSTITUTIONS = 8  # in a row for one chain


def _augmented_store(instructions, i, attr):
    """The index of the STORE_ATTR that ends `obj.attr += v`, whose LOAD_ATTR is at i (the value's expression in
    between stores no attribute)."""
    for j in range(i + 1, len(instructions)):
        if instructions[j].opname == "STORE_ATTR" and instructions[j].argval == attr:
            return j
    return None


def _unalias(chains, aliases, cells, params, top, made_by):
    """The chains with each one rooted at an alias read from its source(s) instead (an alias of an alias too, at
    most _MAX_SUBSTITUTIONS in a row: `a = a.next` in a loop); a parameter assigned from a chain is read as itself
    too (`cfg = cfg.sub`: the argument, then its sub). Local roots that are not aliases are kept only in the top code
    (`self`, the compiled function's parameters). An attribute stored on a local that is no alias is STORED_ON_VALUE,
    with the origins of the local's values (_made_by) when each is known and the store is on the local itself."""
    out, todo, made = set(), [(c, 0) for c in chains], 0
    while todo:
        (kind, name, path), n = todo.pop()
        local = kind == "fast" or (kind == "deref" and name in cells)
        sources = aliases.get(name) if local else None
        if local and not sources and name not in params and path[-1:] and \
                (path[-1] is _STORED or path[-1].__class__ is _Increment):  # `s = make(); s.n += 1`
            origins = made_by.get(name, (None,)) if len(path) == 2 else (None,)  # (`s.sub.n = 1`: sub may be old)
            out.add((STORED_ON_VALUE, path[-2], () if None in origins else tuple(sorted(origins, key=repr))))
            continue
        if kind == REBOUND:
            out.add((kind, name, path))
            continue
        if not sources or name in params:
            if kind != "fast" or top:
                out.add((kind, name, path))
        for src_kind, src_name, src_path in sources or ():
            made += 1
            if made <= _MAX_ALIASED and n < _MAX_SUBSTITUTIONS:
                todo.append(((src_kind, src_name, src_path + path), n + 1))
    return out


_ITERATES = ("GET_ITER", "UNPACK_SEQUENCE", "UNPACK_EX")  # `for v in a`, `r0, r1 = a`, `first, *rest = a`
_READERS = frozenset(("float", "int", "bool", "complex", "iter", "next", "list", "tuple", "set", "frozenset", "dict",
                      "sum", "min", "max", "sorted", "any", "all", "enumerate", "zip", "map", "filter", "round", "str",
                      "repr", "format", "abs"))
_ARRAYS_AS_THEY_ARE = frozenset(("asarray", "asanyarray", "ascontiguousarray", "shape", "ndim", "size"))


def _reader(instructions, i):
    """Whether the name loaded at i is the first argument of a call that reads its values in Python: a builtin
    (`float(a)`, `list(a)`) or a NumPy or math function (`np.sum(a, axis=0)`, `np.array_equal(a, b)`,
    `np.linalg.norm(a)`, `math.fsum(a)`; not `np.asarray(a)`)."""
    prev = instructions[i - 1] if i else None
    if prev is None:
        return False
    if prev.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
        return prev.argval in _READERS
    j = i - 2  # (past a submodule's attributes: `np.linalg.norm(a)`, `np.fft.rfft(a)`)
    while j >= 0 and instructions[j].opname == "LOAD_ATTR":
        j -= 1
    return prev.opname in ("LOAD_ATTR", "LOAD_METHOD") and prev.argval not in _ARRAYS_AS_THEY_ARE and j >= 0 and \
        instructions[j].opname in ("LOAD_GLOBAL", "LOAD_NAME") and instructions[j].argval in ("np", "numpy", "math")


_UNARY = ("UNARY_NEGATIVE", "UNARY_INVERT", "UNARY_NOT", "UNARY_POSITIVE")


def _with_constant(instructions, i, start):
    """Whether the value of the chain that started at `start` and ended at i meets a constant in arithmetic or a
    comparison (`a > 0`, `a * 2`, `255.0 / a`): NumPy computes that on an array, outside the recorded operations."""
    ops = ("BINARY_OP", "COMPARE_OP")
    after = instructions[i + 1] if i + 1 < len(instructions) else None
    if instructions[i].is_jump_target or (after is not None and after.is_jump_target):
        return False  # (`(tl.as_tensor(a) if c else a) * 2`: the other branch's value meets the constant too)
    return (instructions[i].opname == "LOAD_CONST" and after is not None and after.opname in ops) or (
        start > 0 and instructions[start - 1].opname == "LOAD_CONST" and instructions[i].opname in ops)


def _indexed(instructions, i):
    """Whether the value a chain left on the stack, followed by the loads from i on, is the container of an item
    read (`a[i]`, `a[:1]`, `a[i, 0]`), not a part of the index (`x[a, 0]`)."""
    above = 0  # stack items above the chain's value
    for ins in instructions[i:]:
        if ins.opname in _LOADS:
            above += 1
        elif ins.opname in ("BUILD_SLICE", "BUILD_TUPLE"):
            if ins.arg > above:
                return False  # (the value is part of the index)
            above -= ins.arg - 1
        else:
            return ins.opname == "BINARY_SUBSCR" and above == 1
    return False


def _subscript(instructions, i):
    """Whether the constant loaded at i is the key of an item read: `cfg["lr"]`, or `cfg["n"] += 1` (COPY COPY)."""
    for ins in instructions[i + 1:i + 4]:
        if ins.opname == "BINARY_SUBSCR":
            return True
        if ins.opname != "COPY":
            return False
    return False


# Stack effects (values popped, pushed) of the instructions an argument expression is made of; any other instruction,
# or a jump target, ends what is known of the stack (_passes then finds no call for the values below it).
_EFFECTS = {"LOAD_FAST": (0, 1), "LOAD_CONST": (0, 1), "LOAD_DEREF": (0, 1), "LOAD_CLOSURE": (0, 1),
            "LOAD_NAME": (0, 1), "PUSH_NULL": (0, 1), "LOAD_ATTR": (1, 1), "LOAD_METHOD": (1, 2),
            "BINARY_OP": (2, 1), "BINARY_SUBSCR": (2, 1), "COMPARE_OP": (2, 1), "IS_OP": (2, 1),
            "CONTAINS_OP": (2, 1), "UNARY_NEGATIVE": (1, 1), "UNARY_NOT": (1, 1), "UNARY_INVERT": (1, 1),
            "UNARY_POSITIVE": (1, 1), "PRECALL": (0, 0), "KW_NAMES": (0, 0), "NOP": (0, 0), "RESUME": (0, 0),
            "POP_TOP": (1, 0), "STORE_FAST": (1, 0), "STORE_DEREF": (1, 0), "STORE_GLOBAL": (1, 0),
            "RETURN_VALUE": (1, 0)}


def _stack_effect(ins):
    """(values popped, values pushed) by instruction `ins` of an argument expression (_EFFECTS and those whose
    effect depends on their argument), or None for an instruction the stack is not followed through."""
    op = ins.opname
    if op == "LOAD_GLOBAL":
        return 0, 1 + (ins.arg & 1)  # (with NULL: `NULL + f`)
    if op in ("BUILD_TUPLE", "BUILD_LIST", "BUILD_SET", "BUILD_SLICE", "BUILD_STRING"):
        return ins.arg, 1
    if op == "COPY":
        return 0, 1
    if op == "MAKE_FUNCTION":  # (its code, and a tuple for each of defaults, annotations, closure it takes)
        return 1 + bin(ins.arg & 15).count("1"), 1
    return _EFFECTS.get(op)


def _pop(stack, n, i):
    """Pop the top n entries (start, what) of the followed stack for instruction i: (those entries, the start of the
    expression i completes: the earliest of theirs, or i)."""
    popped = stack[len(stack) - n:] if n else []
    del stack[len(stack) - n:]
    return popped, min([i] + [s for s, _ in popped])


@functools.lru_cache(maxsize=1024)
def _passes(code, names):
    """{(callee chain, argument, name)}: where `code` passes one of its locals or globals `names` on as an argument of
    a call, itself and not inside an expression (`helper(x, a)`, `self.prep(a)`, `fn(scale=a)`): the chain of the called
    object as _callee writes it ((kind, name, attribute path), the last attribute may be the method called) and the
    argument's position (int) or keyword (str). A local assigned one of `names` (`b = a`) is followed as it; a local
    assigned a chain or a function made here (`prep = self.prep`, `def norm(b): ...`) is called as that; a called
    object that is no chain (a call's result, an item: `type(self).f(a)`, `self.blocks[0](x, a)`) is UNRESOLVED. A
    call the stack cannot be followed through (`*args`, a conditional expression among the arguments) is not found."""
    instructions, found, stack, kw = _instructions(code), set(), [], ()
    tracked, calls = set(names), {}  # (the locals holding one of names; {local: the callee chains assigned to it})
    for i, ins in enumerate(instructions):
        op = ins.opname
        if ins.is_jump_target:
            stack = []  # (what is below comes from more than one path)
        if op == "KW_NAMES":
            kw = code.co_consts[ins.arg]
        if op == "CALL":
            n = ins.arg
            if len(stack) >= n + 2:
                start = stack[-n - 2][0]
                callee = _callee(instructions[start:stack[-n][0] if n else i])
                callees = {callee} if callee is not None else {UNRESOLVED}  # (where it goes is not known)
                if callee is not None and callee[0] in ("fast", "deref"):  # `prep(a)` after `prep = self.prep`
                    callees.update((k, name, path + callee[2]) for k, name, path in calls.get(callee[1], ()))
                for k, (_, name) in enumerate(stack[len(stack) - n:]):
                    if name is not None:
                        found.update((c, k if k < n - len(kw) else kw[k - (n - len(kw))], name) for c in callees)
                del stack[len(stack) - n - 2:]
                stack.append((start, None))
            else:
                stack = []
            kw = ()
            continue
        if op == "STORE_FAST" and i > 2 and instructions[i - 1].opname == "FOR_ITER" and \
                instructions[i - 2].opname == "GET_ITER":  # `for block in self.blocks`: block(x, a) calls each item
            j = i - 3
            while j > 0 and instructions[j].opname == "LOAD_ATTR":
                j -= 1
            source = _callee(instructions[j:i - 2])
            if source is not None:
                calls.setdefault(ins.argval, set()).add(source[:2] + (source[2] + (_EACH,),))
            stack = []
            continue
        effect = _stack_effect(ins)
        if effect is None or len(stack) < effect[0]:
            stack = []
            continue
        popped, start = _pop(stack, effect[0], i)
        if op in ("STORE_FAST", "STORE_DEREF"):
            if popped[0][1] is not None:  # `b = a`
                tracked.add(ins.argval)
            else:
                source = _callee(instructions[start:i])
                if source is not None:
                    calls.setdefault(ins.argval, set()).add(source)
        own = ins.argval if op in ("LOAD_FAST", "LOAD_DEREF", "LOAD_GLOBAL") and ins.argval in tracked else None
        stack.extend([(start, own)] * effect[1])
    return frozenset(found)


def _callee(span):
    """The chain a called object was loaded by (`f`, `self.prep`, `mod.fn`: (kind, name, attributes)); ('code', code,
    ()) for a function made from `code` (`def norm(b)` inside, a lambda); ('super', None, (name,)) for
    `super().name`; or None."""
    span = [ins for ins in span if ins.opname != "PUSH_NULL"]
    if len(span) >= 2 and span[-1].opname == "MAKE_FUNCTION" and span[-2].opname == "LOAD_CONST" and \
            isinstance(span[-2].argval, types.CodeType):
        return "code", span[-2].argval, ()
    if [ins.opname for ins in span] in (["LOAD_GLOBAL", "PRECALL", "CALL", "LOAD_METHOD"],
                                        ["LOAD_GLOBAL", "PRECALL", "CALL", "LOAD_ATTR"]) and \
            span[0].argval == "super" and span[2].arg == 0:
        return "super", None, (span[3].argval,)
    if not span or span[0].opname not in _ROOTS or any(ins.opname not in ("LOAD_ATTR", "LOAD_METHOD")
                                                            for ins in span[1:]):
        return None
    return _KIND[span[0].opname], span[0].argval, tuple(ins.argval for ins in span[1:])
