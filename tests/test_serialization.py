"""tl.save / tl.load: safetensors round trips, atomic writes, every bad-file case, pickles, fuzzing, interop."""
import io
import json
import os
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite.serialization import CheckpointError


def raw_file(header, data=b"", header_len=None):
    """Bytes of a safetensors file with the given header (dict or raw bytes) and data section."""
    hb = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(hb) if header_len is None else header_len) + hb + data


def write(tmp_path, content, name="bad.safetensors"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def module_state():
    rng = np.random.default_rng(0)
    return {
        "fc.weight": tl.tensor(rng.standard_normal((4, 3)).astype(np.float32)),
        "fc.bias": tl.tensor(np.zeros(4, np.float32)),
        "bn.num_batches_tracked": tl.tensor(np.array(7, np.int64)),
        "half": tl.tensor(rng.standard_normal(5).astype(np.float16)),
        "double": tl.tensor(rng.standard_normal((2, 1, 2))),
        "mask": tl.tensor(np.array([True, False, True])),
        "ints": tl.tensor(np.arange(6, dtype=np.int32).reshape(2, 3)),
        "bytes": np.arange(5, dtype=np.uint8),
        "empty": tl.tensor(np.zeros((0, 3), np.float32)),
        "transposed": tl.tensor(np.arange(6.0).reshape(2, 3).T),  # non-contiguous
    }


def assert_same(loaded, original):
    assert list(loaded) == list(original)
    for key, value in original.items():
        want = value.numpy() if isinstance(value, tl.Tensor) else value
        got = loaded[key]
        assert isinstance(got, tl.Tensor), key
        assert got.dtype == want.dtype and got.shape == want.shape, key
        np.testing.assert_array_equal(got.numpy(), want)


# -- round trips -------------------------------------------------------------------------------------------------
def test_module_state_dict_round_trip_is_a_plain_safetensors_file(tmp_path):
    sd = module_state()
    tl.save(sd, tmp_path / "m.safetensors")
    loaded = tl.load(tmp_path / "m.safetensors")
    assert_same(loaded, sd)
    loaded["fc.bias"].data += 1  # loaded arrays are writable
    raw = (tmp_path / "m.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    assert n % 8 == 0 and "__metadata__" not in header
    assert header["fc.weight"] == {"dtype": "F32", "shape": [4, 3], "data_offsets": header["fc.weight"]["data_offsets"]}
    assert header["mask"]["dtype"] == "BOOL" and header["half"]["dtype"] == "F16"


def test_optimizer_and_nested_checkpoint_round_trip(tmp_path):
    p = tl.tensor(np.ones((2, 2), np.float32), requires_grad=True)
    opt = tl.optim.Adam([p], lr=0.01, betas=(0.8, 0.9), amsgrad=True)
    sched = tl.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    p.grad = tl.tensor(np.full((2, 2), 0.5, np.float32))
    opt.step()
    sched.step()
    ckpt = {"model": {"w": p}, "optim": opt.state_dict(), "sched": sched.state_dict(), "epoch": 3,
            "note": "ünïcode", "history": [1.5, float("inf"), None, True], "ids": {0: "a", "0": "b"}}
    tl.save(ckpt, tmp_path / "ckpt.safetensors")
    back = tl.load(tmp_path / "ckpt.safetensors")
    assert back["epoch"] == 3 and back["note"] == "ünïcode" and back["ids"] == {0: "a", "0": "b"}
    assert back["history"] == [1.5, float("inf"), None, True]
    osd = back["optim"]
    assert list(osd["state"]) == [0]  # integer keys stay integers
    assert osd["param_groups"][0]["betas"] == (0.8, 0.9)  # tuples stay tuples
    assert osd["param_groups"][0] == opt.state_dict()["param_groups"][0]
    for name, value in opt.state_dict()["state"][0].items():
        assert osd["state"][0][name].dtype == value.dtype
        np.testing.assert_array_equal(osd["state"][0][name].numpy(), value.numpy())
    assert back["sched"] == sched.state_dict()
    np.testing.assert_array_equal(back["model"]["w"].numpy(), p.numpy())


def test_other_top_level_objects_and_file_objects():
    for obj in ([tl.tensor([1.0]), 2], tl.tensor(np.eye(2)), {}, {"a": 1}, ("x", None)):
        buf = io.BytesIO()
        tl.save(obj, buf)
        back = tl.load(io.BytesIO(buf.getvalue()))
        if isinstance(obj, tl.Tensor):
            np.testing.assert_array_equal(back.numpy(), obj.numpy())
        elif isinstance(obj, list):
            assert back[1] == 2 and back[0].tolist() == [1.0]
        else:
            assert back == obj


def test_tensor_names_do_not_collide():
    buf = io.BytesIO()
    tl.save({"a": {"b": tl.tensor([1.0])}, "a/b": tl.tensor([2.0]), 1: [tl.tensor([3.0])], "1": [tl.tensor([4.0])]},
            buf)
    back = tl.load(io.BytesIO(buf.getvalue()))
    assert [back["a"]["b"].item(), back["a/b"].item(), back[1][0].item(), back["1"][0].item()] == [1, 2, 3, 4]


def test_save_rejects_what_it_cannot_store(tmp_path):
    with pytest.raises(TypeError, match="complex128"):
        tl.save({"z": np.zeros(2, complex)}, tmp_path / "x")
    with pytest.raises(TypeError, match="cannot store a function at f"):
        tl.save({"f": lambda: 0}, tmp_path / "x")
    with pytest.raises(TypeError, match="dict keys must be str or int"):
        tl.save({(1, 2): 3}, tmp_path / "x")
    assert not (tmp_path / "x").exists() and os.listdir(tmp_path) == []


def test_save_is_atomic_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    tl.save({"w": tl.tensor([1.0, 2.0])}, path)
    before = path.read_bytes()
    from tinygrad_lite import serialization

    real_write = serialization._write

    def crash(f, header, arrays):
        real_write(f, header, arrays[:0])
        raise KeyboardInterrupt("simulated crash mid-save")

    monkeypatch.setattr(serialization, "_write", crash)
    with pytest.raises(KeyboardInterrupt):
        tl.save({"w": tl.tensor([3.0, 4.0, 5.0])}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.safetensors"]
    monkeypatch.undo()
    tl.save({"w": tl.tensor([3.0])}, str(path))  # str paths work too, and overwrite
    assert tl.load(str(path))["w"].tolist() == [3.0]


# -- bad files ---------------------------------------------------------------------------------------------------
def test_missing_file_is_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        tl.load(tmp_path / "nope.safetensors")
    with pytest.raises(OSError):
        tl.load(tmp_path)  # a directory


GOOD_HEADER = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


def entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


BAD_FILES = [
    ("empty", b"", "only 0 bytes"),
    ("short", b"\x05\x00\x00", "only 3 bytes"),
    ("truncated data", raw_file(GOOD_HEADER, b"\x00" * 7), "outside the data section"),
    ("header longer than file", raw_file(GOOD_HEADER, b"\x00" * 8, header_len=10 ** 6), "does not fit the file"),
    ("huge header length", raw_file(GOOD_HEADER, b"\x00" * 8, header_len=2 ** 64 - 1), "does not fit the file"),
    ("invalid json", raw_file(b'{"w": {"dtype": "F32",,}}'), "not valid JSON"),
    ("not utf-8", raw_file(b'{"\xff\xfe": 1}'), "not valid UTF-8"),
    ("not an object", raw_file(b"[1, 2]  "), "start with '{'"),
    ("json list entry", raw_file({"w": [1, 2]}), "expected an object"),
    ("unknown dtype", raw_file({"w": entry("Q7")}, b"\x00" * 8), "unknown or unsupported dtype 'Q7'"),
    ("bf16", raw_file({"w": entry("BF16", offsets=(0, 4))}, b"\x00" * 4), "unsupported dtype 'BF16'"),
    ("shape/offset mismatch", raw_file({"w": entry(shape=(3,))}, b"\x00" * 8), "needs 12 bytes"),
    ("negative dim", raw_file({"w": entry(shape=(-2,))}, b"\x00" * 8), "non-negative integers"),
    ("float dim", raw_file({"w": entry(shape=(2.0,))}, b"\x00" * 8), "non-negative integers"),
    ("huge shape", raw_file({"w": entry(shape=(2 ** 20, 2 ** 10), offsets=(0, 8))}, b"\x00" * 8), "needs 4294967296"),
    ("impossible shape", raw_file({"w": entry(shape=(2 ** 40, 2 ** 40), offsets=(0, 8))}, b"\x00" * 8), "too large"),
    ("huge zero-size shape", raw_file({"w": entry(shape=(2 ** 62, 2 ** 62, 0), offsets=(0, 0))}), "too large"),
    ("offsets out of range", raw_file({"w": entry(offsets=(8, 16))}, b"\x00" * 8), "outside the data section"),
    ("reversed offsets", raw_file({"w": entry(offsets=(8, 0))}, b"\x00" * 8), "outside the data section"),
    ("offsets not ints", raw_file({"w": entry(offsets=("0", 8))}, b"\x00" * 8), "two integers"),
    ("overlap", raw_file({"a": entry(), "b": entry(shape=(1,), offsets=(4, 8))}, b"\x00" * 8), "overlaps"),
    ("hole", raw_file({"w": entry(offsets=(4, 12))}, b"\x00" * 12), "hole of 4 bytes"),
    ("trailing bytes", raw_file(GOOD_HEADER, b"\x00" * 12), "4 bytes after the last tensor"),
    ("duplicate tensor", raw_file(b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                                  b'"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', b"\x00" * 8),
     "key 'w' twice"),
    ("duplicate field", raw_file(b'{"w": {"dtype": "F32", "dtype": "I32", "shape": [2], "data_offsets": [0, 8]}}',
                                 b"\x00" * 8), "key 'dtype' twice"),
    ("bad bool", raw_file({"m": entry("BOOL", (2,), (0, 2))}, b"\x01\x02"), "other than 0 and 1"),
    ("metadata not strings", raw_file({"__metadata__": {"a": 1}}), "mapping strings to strings"),
    ("structure bad json", raw_file({"__metadata__": {"tinygrad_lite.structure": "{"}}), "structure metadata is not"),
    ("structure missing tensor", raw_file({"__metadata__": {"tinygrad_lite.structure": '{"tensor": "x"}'}}),
     "refers to tensor 'x'"),
    ("structure unknown node", raw_file({"__metadata__": {"tinygrad_lite.structure": '{"exec": "rm"}'}}),
     "unknown node"),
    ("structure deep", raw_file({"__metadata__": {"tinygrad_lite.structure": '{"list": [' * 300 + "]}" * 300}}),
     "nested"),
    ("huge int literal", raw_file(b'{"w": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 8]}}',
                                  b"\x00" * 8), "not valid JSON"),
    ("random bytes", bytes(np.random.default_rng(3).integers(0, 256, 300, dtype=np.uint8)), "does not fit"),
    ("npy file", b"\x93NUMPY\x01\x00v\x00" + b" " * 118 + b"\n", "numpy.load"),
]


@pytest.mark.parametrize("name,content,message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_raise_a_clear_checkpoint_error(tmp_path, name, content, message):
    path = write(tmp_path, content)
    with pytest.raises(CheckpointError, match=message) as info:
        tl.load(path)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)


PICKLE_MSG = "looks like a pickle / PyTorch .pt file; tinygrad_lite only loads safetensors"


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pickles_are_recognised(tmp_path, protocol):
    path = write(tmp_path, pickle.dumps({"w": [1.0, 2.0]}, protocol=protocol), "model.pt")
    with pytest.raises(CheckpointError, match=PICKLE_MSG):
        tl.load(path)


def test_zip_archives_like_torch_save_are_recognised(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": 1}))
    with pytest.raises(CheckpointError, match=PICKLE_MSG + ".*zip"):
        tl.load(path)


class Exploit:
    """Unpickling this creates a file: the proof that a loader executed code."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_pickle_is_rejected_without_executing(tmp_path):
    proof_dir = tmp_path / "proof"
    proof_dir.mkdir()
    pickle.loads(pickle.dumps(Exploit(str(proof_dir / "pwned")))).close()
    assert (proof_dir / "pwned").exists()  # the payload is real: unpickling does run it
    side_effect = tmp_path / "pwned"
    for protocol in (2, 4):
        path = write(tmp_path, pickle.dumps({"state": Exploit(str(side_effect))}, protocol=protocol), "evil.pt")
        with pytest.raises(CheckpointError, match=PICKLE_MSG):
            tl.load(path)
    assert not side_effect.exists()


@pytest.mark.oracle
def test_real_torch_save_files_are_rejected_with_the_pickle_message(tmp_path, torch):
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(CheckpointError, match=PICKLE_MSG):
        tl.load(path)
    torch.save(torch.nn.Linear(2, 2).state_dict(), path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match=PICKLE_MSG):
        tl.load(path)


def test_lying_header_does_not_allocate(tmp_path):
    header = {"w": entry(shape=(2 ** 31, 2 ** 10), offsets=(0, 2 ** 43))}
    path = write(tmp_path, raw_file(header, b"\x00" * 64))
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="outside the data section"):
            tl.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


# -- fuzzing -----------------------------------------------------------------------------------------------------
def _valid_checkpoint():
    buf = io.BytesIO()
    tl.save({"model": {"w": tl.tensor(np.arange(6, dtype=np.float32).reshape(2, 3)),
                       "m": tl.tensor(np.array([True, False]))},
             "step": 3, "groups": [{"lr": 0.1, "params": [0, 1]}]}, buf)
    return buf.getvalue()


VALID = _valid_checkpoint()


def _mutate(data, kind, pos, value, size):
    n = struct.unpack("<Q", data[:8])[0]
    if kind == "flip":
        b = bytearray(data)
        b[pos % len(b)] ^= value or 1
        return bytes(b)
    if kind == "truncate":
        return data[:pos % len(data)]
    if kind == "header_len":
        return struct.pack("<Q", (n + value * size) % 2 ** 64) + data[8:]
    if kind == "append":
        return data + bytes([value]) * (size % 64)
    header = json.loads(data[8:8 + n])
    name = ["model/w", "model/m"][pos % 2]
    if kind == "shape":
        header[name]["shape"] = [value * 2 ** (size % 64), size]
    elif kind == "offsets":
        header[name]["data_offsets"] = [pos % 64, value * size]
    elif kind == "dtype":
        header[name]["dtype"] = ["F16", "F64", "I8", "U8", "BOOL", "I64", "XX"][value % 7]
    hb = json.dumps(header).encode()
    return struct.pack("<Q", len(hb)) + hb + data[8 + n:]


@pytest.mark.parametrize("examples", [400, pytest.param(3000, marks=pytest.mark.slow)])
def test_fuzz_mutated_checkpoints_load_or_raise_checkpoint_error(tmp_path, examples):
    from hypothesis import given, settings, strategies as st

    assert tl.load(io.BytesIO(VALID))["step"] == 3
    path = tmp_path / "fuzz.safetensors"
    outcomes = {"loaded": 0, "rejected": 0, "peak": 0}

    @settings(max_examples=examples, deadline=None, database=None)
    @given(kind=st.sampled_from(["flip", "truncate", "header_len", "append", "shape", "offsets", "dtype"]),
           pos=st.integers(0, 10 ** 6), value=st.integers(0, 255), size=st.integers(0, 2 ** 70))
    def check(kind, pos, value, size):
        path.write_bytes(_mutate(VALID, kind, pos, value, size))
        tracemalloc.start()  # (the load's own allocations: tracing Hypothesis's too made the test 5x slower)
        try:
            obj = tl.load(path)
        except (CheckpointError, OSError) as e:
            assert str(path) in str(e) or isinstance(e, OSError)
            outcomes["rejected"] += 1
            return
        finally:
            outcomes["peak"] = max(outcomes["peak"], tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        outcomes["loaded"] += 1
        for t in _tensors(obj):  # whatever loads is well-formed data
            assert isinstance(t, tl.Tensor) and t.numpy().size == int(np.prod(t.shape))
            if t.dtype == tl.bool:
                assert set(np.unique(t.numpy().view(np.uint8))) <= {0, 1}

    check()
    assert outcomes["rejected"] > examples // 4 and outcomes["loaded"] > 0
    peak = outcomes["peak"]  # lying headers allocate nothing
    assert 0 < peak < 32 << 20, f"loading mutated 1 KB files peaked at {peak} bytes"


def test_fuzz_arbitrary_structure_metadata_never_escapes_checkpoint_error():
    from hypothesis import given, settings, strategies as st

    leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | \
        st.sampled_from(["tensor", "dict", "list", "tuple", "w"])
    json_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["tensor", "dict", "list", "tuple", "x"]), inner, max_size=2), max_leaves=12)
    data = np.zeros(2, np.float32).tobytes()

    @settings(max_examples=200, deadline=None, database=None)
    @given(structure=json_values)
    def check(structure):
        header = {"__metadata__": {"tinygrad_lite.structure": json.dumps(structure)}, "w": entry()}
        try:
            tl.load(io.BytesIO(raw_file(header, data)))
        except CheckpointError:
            pass

    check()


def _tensors(obj):
    if isinstance(obj, tl.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


# -- interop with the reference implementation -------------------------------------------------------------------
def test_files_interchange_with_the_safetensors_package(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([True, False]),
              "c": np.arange(3, dtype=np.int64), "d": np.ones((2, 0), np.float64), "e": np.float16([1.5, -2])}
    st_numpy.save_file(arrays, str(tmp_path / "theirs.safetensors"), metadata={"format": "np"})
    ours = tl.load(tmp_path / "theirs.safetensors")
    assert sorted(ours) == sorted(arrays)
    for k, v in arrays.items():
        assert ours[k].dtype == v.dtype
        np.testing.assert_array_equal(ours[k].numpy(), v)
    tl.save(arrays, tmp_path / "ours.safetensors")
    theirs = st_numpy.load_file(str(tmp_path / "ours.safetensors"))
    for k, v in arrays.items():
        assert theirs[k].dtype == v.dtype
        np.testing.assert_array_equal(theirs[k], v)
    tl.save({"optim": {"state": {0: {"step": tl.tensor(np.float32(2))}}}, "epoch": 1}, tmp_path / "nested.safetensors")
    with safe_open(str(tmp_path / "nested.safetensors"), framework="np") as f:
        assert list(f.keys()) == ["optim/state/0/step"] and f.metadata()["format"] == "tinygrad_lite"
