"""Review of 10a4b07 (Python-int list/range indices as constants of a compiled step) and 32194e7 (an index tensor read
live by a compiled step; vmap of indexing with per-sample index tensors). Every case is compared with eager (tl.compile)
or with the per-sample loop (vmap), bit for bit, values and gradients."""
import io
import itertools

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import func

RNG = np.random.default_rng(20)


def _z(i):
    return np.random.default_rng(i).standard_normal((6, 4)).astype(np.float32)


def _same_as_eager(step, changes):
    """Run the compiled step and eager side by side; `changes[i]` (or None) runs before call i."""
    f = tl.compile(step)
    for i, change in enumerate(changes):
        if change is not None:
            change()
        z1, z2 = tl.tensor(_z(i), requires_grad=True), tl.tensor(_z(i), requires_grad=True)
        got, want = f(z1), step(z2)
        assert np.array_equal(got.numpy(), want.numpy()), (i, f.stats)
        assert np.array_equal(z1.grad.numpy(), z2.grad.numpy()), (i, f.stats)
    return f.stats


def _loss_of(index):
    def step(z):
        out = (z[index()] * 2).sum()
        out.backward()
        return out.detach()
    return step


# ---------------- (1) Python-int index lists as constants: sources of the ints that are guarded ----------------
ROWS, CFG, PAIR = [0, 1], {"rows": [0, 1]}, ([0, 1], [1, 2])


class _Holder:
    idx = None


HOLDER = _Holder()
HOLDER.idx = [0, 1]


def _mutate(obj, fn):
    return lambda: fn(obj)


# each index source is mutated in place, appended to or rebound between calls: compiled == eager at every call
@pytest.mark.parametrize("index, changes", [
    (lambda: ROWS, [None, None, None, _mutate(ROWS, lambda r: r.__setitem__(0, 3)), None,
                    _mutate(ROWS, lambda r: r.append(5)), None]),
    (lambda: [v + 1 for v in ROWS], [None, None, None, _mutate(ROWS, lambda r: r.__setitem__(1, 4)), None]),
    (lambda: range(len(ROWS)), [None, None, None, _mutate(ROWS, lambda r: r.append(2)), None]),
    (lambda: CFG["rows"], [None, None, None, _mutate(CFG, lambda c: c["rows"].append(4)), None,
                           _mutate(CFG, lambda c: c.__setitem__("rows", [2])), None]),
    (lambda: PAIR, [None, None, None, _mutate(PAIR, lambda p: p[0].__setitem__(0, 5)), None]),
    (lambda: HOLDER.idx, [None, None, None, _mutate(HOLDER, lambda h: h.idx.__setitem__(1, 5)), None,
                          _mutate(HOLDER, lambda h: setattr(h, "idx", [2, 2, 2])), None]),
], ids=["global list", "comprehension over a global", "range(len(global list))", "dict item", "tuple of lists",
        "object attribute"])
def test_python_index_sources_changed_between_calls_are_seen(index, changes):
    saved = (list(ROWS), {"rows": list(CFG["rows"])}, [list(p) for p in PAIR], list(HOLDER.idx))
    try:
        _same_as_eager(_loss_of(index), changes)
    finally:
        ROWS[:], PAIR[0][:], PAIR[1][:] = saved[0], saved[2][0], saved[2][1]
        CFG.clear(), CFG.update(saved[1])
        HOLDER.idx = saved[3]


# a list index inside the compiled step's setitem (a global list changed between calls) replays as eager
def test_setitem_with_a_global_list_index_follows_the_list():
    def step(z):
        y = z * 1
        y[ROWS] = 5.0
        y[[0, 2]] = y[[0, 2]] * 3
        out = y.sum()
        out.backward()
        return out.detach()
    try:
        stats = _same_as_eager(step, [None, None, None, lambda: ROWS.__setitem__(0, 4), None])
    finally:
        ROWS[:] = [0, 1]
    assert stats["replays"] == 3, stats


# ints from a dynamic=True argument, from int() of a tensor, and from .item() keep each call's value
@pytest.mark.parametrize("fn, dynamic", [
    (lambda z, n: z[[int(n), 0]] * 2, True),
    (lambda z, n: z[range(n + 1)] * 2, True),
    (lambda z, n: z[[0] * (n + 1)] * 2, True),
    (lambda z, n: z[[n + 1, 0]] * 2, True),
    (lambda z, n: z[[int(n.item()), 0]] * 2, False),
    (lambda z, n: z[[int(n), int(n[None][0])]] * 2, False),
])
def test_ints_from_arguments_in_index_lists_are_each_calls_own(fn, dynamic):
    f = tl.compile(fn, dynamic=dynamic)
    z = tl.tensor(_z(0))
    for n in (0, 1, 2, 3, 1, 2, 2, 0):
        a = n if dynamic else tl.tensor(n)
        assert np.array_equal(f(z, a).numpy(), fn(z, a).numpy()), (n, f.stats)


# Was: a nested list of Python ints (x[[[0, 1]]]) was taken for outside data: the step ran eagerly every call, and
# vmap refused it ("cannot batch this function") (fixed: shape._python_ints looks into nested lists)
def test_a_nested_python_list_index_replays_and_batches():
    stats = _same_as_eager(_loss_of(lambda: [[0, 1], [2, 2]]), [None] * 5)
    assert stats["replays"] == 4 and stats["eager_calls"] == 0, stats
    x = tl.tensor(RNG.standard_normal((3, 5, 2)))
    got = func.vmap(lambda u: u[[[0, 4]], 1])(x)
    assert np.array_equal(got.numpy(), np.stack([x.numpy()[b][[[0, 4]], 1] for b in range(3)]))


# eager errors for bad list indices are unchanged by the constant path (also inside a compiled step)
@pytest.mark.parametrize("index, match", [
    ([7], "index 7 is out of bounds for axis 0 with size 6"), (range(7), "index 6 is out of bounds"),
    ([True, False], "boolean index did not match"), ([1.0], "must be integer or bool"),
])
def test_bad_list_indices_raise_eagers_error_in_a_compiled_step(index, match):
    for fn in (lambda z: z[index] * 2, tl.compile(lambda z: z[index] * 2)):
        with pytest.raises(IndexError, match=match):
            fn(tl.tensor(_z(0)))


# Was: the step's Python reads a global NumPy array's values into the index list: the array was guarded by identity
# only, so changing it in place replayed the recorded rows (the same hole as `z * float(A[0])`, which predated
# 10a4b07) (fixed: an array whose values the code reads in Python is guarded by value, values.ArrayValues)
A = np.array([0, 1])


def test_index_list_read_out_of_a_global_numpy_array_follows_it():
    try:
        _same_as_eager(_loss_of(lambda: A.tolist()), [None, None, None, lambda: A.__setitem__(0, 3), None])
    finally:
        A[:] = [0, 1]


# range(len(W)) of a global tensor that no operation of the step uses. Was: W's shape was no guard, so W.data of
# another length replayed the recorded range (as `z[:len(W)]` did before 10a4b07); a tensor the scan finds is now
# kept with its shape and dtype (values.TensorMeta; fixed)
W = tl.tensor(np.zeros(3, np.float32))


def test_range_of_the_length_of_a_global_tensor_follows_its_data():
    def grow():
        W.data = tl.tensor(np.zeros(5, np.float32))
    try:
        _same_as_eager(_loss_of(lambda: range(len(W))), [None, None, None, grow, None])
    finally:
        W.data = tl.tensor(np.zeros(3, np.float32))


# an index list from a global iterator (next(C)). Was: the iterator's state was no guard, the first list replayed
# (the same for a plain int index z[next(C)]); a step that advances an iterator now runs eagerly (fixed)
def test_index_list_from_a_global_iterator_follows_it():
    counter = itertools.count()
    f = tl.compile(lambda z: z[[next(counter) % 4]].sum())
    z = tl.tensor(np.arange(24, dtype=np.float32).reshape(6, 4))
    got = [f(z).item() for _ in range(4)]
    assert got == [z.numpy()[[k]].sum() for k in range(4)], (got, f.stats)


# ---------------- (2a) an index tensor read live by a compiled step ----------------
J = tl.tensor([0, 1])
MASK = tl.tensor([True, False, True, False, True, True])


def _rebind_j():
    global J
    J = tl.tensor([4, 4, 1])


# a global index tensor (or mask) changed in place, rebound, or given .data of another shape or dtype: as eager
@pytest.mark.parametrize("index, changes", [
    (lambda: J, [None, None, None, lambda: J.__setitem__(0, 3), None, _rebind_j, None,
                 lambda: setattr(J, "data", tl.tensor([5, 0, 2, 2])), None, lambda: setattr(J, "data", tl.tensor([2])),
                 None, lambda: setattr(J, "data", tl.tensor(np.array([1, 3], np.int32))), None,
                 lambda: setattr(J, "data", tl.tensor([[1, 3], [0, 0]])), None]),
    (lambda: MASK, [None, None, None, lambda: MASK.__setitem__(1, True), None,
                    lambda: setattr(MASK, "data", tl.tensor([False] * 6)), None]),
], ids=["index tensor", "mask tensor"])
def test_a_global_index_tensor_is_read_live(index, changes):
    global J
    saved = J, J.data, MASK.data
    try:
        _same_as_eager(_loss_of(index), changes)
    finally:
        J = saved[0]
        J.data, MASK.data = saved[1], saved[2]


# an index tensor out of range after an in-place write: the replay raises eager's error
def test_a_global_index_tensor_made_out_of_range_raises_eagers_error():
    j = tl.tensor([0, 1])
    f = tl.compile(lambda z: (z[j] * 2).sum())
    z = tl.tensor(_z(0))
    for _ in range(3):
        f(z)
    j[0] = 9
    with pytest.raises(IndexError, match="getitem: index 9 is out of bounds for axis 0 with size 6"):
        f(z)


# ONNX: an index tensor that is an input of the graph stays an input (not frozen), one held by a module a constant
def test_onnx_export_of_indexing_with_a_tensor(ort):
    import onnx
    buf = io.BytesIO()
    tl.onnx.export(lambda x, i: x[:, i] * 2, (tl.tensor(_z(0)), tl.tensor([0, 2])), buf)
    onnx.checker.check_model(onnx.load_from_string(buf.getvalue()), full_check=True)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    feeds = dict(zip([i.name for i in sess.get_inputs()], [_z(1), np.array([3, 3])]))
    assert np.array_equal(sess.run(None, feeds)[0], _z(1)[:, [3, 3]] * 2)


# ---------------- (2b) vmap of indexing ----------------
X = tl.tensor(RNG.standard_normal((3, 5, 4, 2)))
JS = tl.tensor(RNG.integers(-5, 5, (3, 2)))


def _loop(fn, *args):
    return np.stack([fn(*[a[b] for a in args]).numpy() for b in range(args[0].shape[0])])


def _matches_loop(fn, *args):
    got, want = func.vmap(fn)(*args).numpy(), _loop(fn, *args)
    assert got.shape == want.shape and np.array_equal(got, want), (got.shape, want.shape)

    def loss(*a):
        return (fn(*a) ** 2).sum()
    got, want = func.vmap(func.grad(loss))(*args).numpy(), _loop(func.grad(loss), *args)
    assert np.array_equal(got, want)


# Was: a shared list index and an int apart (u[[0, 1], :, 0]: NumPy puts the advanced dims first, in front of the
# batch in the batched array) gave a silently wrong vmap result: the int was not counted among the advanced indices
# (fixed: batching.adjacent counts it; such an index takes per_sample_index's arange path)
@pytest.mark.parametrize("fn", [
    lambda u: u[[0, 1], :, 0], lambda u: u[0, :, [1, 0]], lambda u: u[[0, 1], :, [0, 1]],
    lambda u: u[[True, False, True, False, True], :, 1],
], ids=["list : int", "int : list", "list : list", "mask : int"])
def test_vmap_of_shared_advanced_indices_apart(fn):
    _matches_loop(fn, X)


# Was: a per-sample index with Ellipsis or None raised NotImplementedError (fixed: Ellipsis becomes its slices,
# None a dim before or between the advanced ones, a shared boolean mask its nonzero() arrays)
@pytest.mark.parametrize("fn", [
    lambda u, j: u[..., j % 2], lambda u, j: u[j, ...], lambda u, j: u[None, j], lambda u, j: u[j, None],
    lambda u, j: u[:, None, j % 4], lambda u, j: u[j, None, 1], lambda u, j: u[[True, False, True, True, False], j[0] % 4],
], ids=["...j", "j...", "None j", "j None", ": None j", "j None 1", "mask j"])
def test_vmap_of_per_sample_indices_with_ellipsis_none_and_masks(fn):
    _matches_loop(fn, X, JS)


# Was: a per-sample index out of range (in a sample other than the recorded first) raised NumPy's IndexError on the
# batched array, naming axis 1 (fixed: the batching rule checks each sample's indices, with eager's words)
def test_vmap_per_sample_index_out_of_range_names_the_sample():
    bad = tl.tensor(np.array([[0, 4], [1, 9], [2, 3]]))
    with pytest.raises(IndexError, match=r"getitem: index 9 is out of bounds for axis 0 with size 5 \(sample 1"):
        func.vmap(lambda u, j: u[j])(X, bad)
    with pytest.raises(IndexError, match=r"index -6 is out of bounds for axis 1 with size 4 \(sample 2"):
        func.vmap(func.grad(lambda u, j: u[:, j].sum()))(X, tl.tensor(np.array([[0], [1], [-6]])))


# Was: item assignment with a per-sample index under vmap(grad) raised ("index_put gets a per-sample array as an
# attribute"), as did a tensor value with shared indices apart (fixed: index_put's batching rule takes
# per_sample_index's path, the value's dims moved to the batched index's order)
@pytest.mark.parametrize("write", [
    lambda w, j, v: w.__setitem__((j % 5, slice(None), 0), v),
    lambda w, j, v: w.__setitem__((1, j % 4), v[:, 0:1]),
    lambda w, j, v: w.__setitem__((slice(None), j % 4, 1), v[0, 0]),
    lambda w, j, v: w.__setitem__(([0, 2], slice(None), 1), v),
], ids=["j : 0", "1 j", ": j 1", "list : 1"])
def test_vmap_grad_of_setitem_with_per_sample_or_apart_indices(write):
    v = tl.tensor(RNG.standard_normal((3, 2, 4)))

    def loss(u, j, val):
        w = u * 1
        write(w, j, val)
        return (w ** 2).sum()
    for argnums in (0, 2):
        g = func.grad(loss, argnums=argnums)
        assert np.array_equal(func.vmap(g)(X, JS, v).numpy(), _loop(g, X, JS, v))


# verified: nested vmap, jacrev/jacfwd inside vmap, repeated indices, 0-d and int32 per-sample indices
@pytest.mark.parametrize("make", [
    lambda: (func.vmap(func.vmap(lambda u, j: u[j] * 2)), "nested"),
    lambda: (func.jacrev(lambda u, j: u[j, 1:3].sin()), "loop"),
    lambda: (func.jacfwd(lambda u, j: u[:, j % 4].sin()), "loop"),
    lambda: (func.grad(lambda u, j: (u[j] * u[j]).sum()), "loop"),
    lambda: (func.grad(lambda u, j: (u[:, j[0] % 4] ** 2).sum()), "loop"),
], ids=["vmap(vmap)", "jacrev", "jacfwd", "repeated", "0-d"])
def test_vmap_of_per_sample_indexing_matches_the_loop(make):
    fn, kind = make()
    j = tl.tensor(np.array([[1, 1], [0, -1], [4, 4]], np.int32))
    if kind == "nested":
        x2 = tl.tensor(RNG.standard_normal((2, 3, 5, 4)))
        j2 = tl.tensor(RNG.integers(-5, 5, (2, 3, 2)))
        want = np.stack([_loop(lambda u, i: u[i] * 2, x2[a], j2[a]) for a in range(2)])
        assert np.array_equal(fn(x2, j2).numpy(), want)
    else:
        assert np.array_equal(func.vmap(fn)(X, j).numpy(), _loop(fn, X, j))
