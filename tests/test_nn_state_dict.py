"""state_dict / load_state_dict: shared storage, in-place loading, strictness, PyTorch-style errors, all-or-nothing."""
import numpy as np
import pytest

import tinygrad_lite as tl
from tinygrad_lite import nn


def _model():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))


def _snapshot(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_state_dict_values_are_detached_and_share_storage_in_order():
    model = _model()
    sd = model.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                        "1.num_batches_tracked", "3.weight", "3.bias"]
    assert all(isinstance(v, tl.Tensor) and not v.requires_grad for v in sd.values())
    before = model[3].weight.numpy().copy()
    sd["3.weight"].data += 1  # as PyTorch: the values share the parameters' storage, so this changes the model
    assert np.array_equal(model[3].weight.numpy(), before + 1)
    kept = model.state_dict(keep_vars=True)
    assert kept["3.weight"] is model[3].weight
    assert list(model.state_dict(prefix="net.")) [0] == "net.0.weight"


def test_round_trip_into_a_fresh_model_copies_in_place():
    src, dst = _model(), _model()
    src(tl.randn(4, 1, 4, 4))  # move the running statistics
    params = {k: p for k, p in dst.named_parameters()}
    arrays = {k: p.numpy() for k, p in params.items()}
    sd = {k: v.numpy().copy() for k, v in src.state_dict().items()}  # copies: the values share src's storage
    result = dst.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == [] and repr(result) == \
        "<All keys matched successfully>"
    for k, p in dst.named_parameters():
        assert p is params[k] and p.numpy() is arrays[k]  # same objects, same arrays
    for k, v in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[k].numpy(), v.numpy())
    sd["3.bias"][...] = 123.0  # no reference to the caller's arrays is kept
    assert not np.any(dst[3].bias.numpy() == 123.0)
    x = tl.randn(2, 1, 4, 4)
    src.eval(), dst.eval()
    np.testing.assert_array_equal(src(x).numpy(), dst(x).numpy())


def test_loading_casts_to_the_parameter_dtype_and_accepts_tensors():
    m = nn.Linear(2, 2)
    m.load_state_dict({"weight": np.ones((2, 2), dtype=np.float64), "bias": tl.tensor([1, 2])})
    assert m.weight.dtype == np.float32 and m.bias.dtype == np.float32 and m.bias.numpy().tolist() == [1.0, 2.0]
    bn = nn.BatchNorm1d(2)
    sd = {k: v.numpy() for k, v in bn.state_dict().items()}
    sd["num_batches_tracked"] = np.array(7.0)
    bn.load_state_dict(sd)
    assert bn.num_batches_tracked.dtype == np.int64 and int(bn.num_batches_tracked.item()) == 7


def test_strict_errors_name_every_problem_in_pytorch_style():
    model = _model()
    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    del sd["1.running_var"], sd["3.bias"]
    sd["3.extra"] = np.zeros(1)
    sd["0.weight"] = np.zeros((2, 1, 3, 4), dtype=np.float32)
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(sd)
    msg = str(info.value)
    assert msg.startswith("Error(s) in loading state_dict for Sequential:\n\t")
    assert 'Missing key(s) in state_dict: "1.running_var", "3.bias".' in msg
    assert 'Unexpected key(s) in state_dict: "3.extra".' in msg
    assert ("size mismatch for 0.weight: copying a param with shape (2, 1, 3, 4) from checkpoint, the shape in "
            "current model is (2, 1, 3, 3).") in msg


def test_loading_is_all_or_nothing():
    model = _model()
    before = _snapshot(model)
    good = {k: np.full(v.shape, 5.0) for k, v in model.state_dict().items()}
    for bad_key, bad_value in [("3.bias", np.zeros(4)), ("3.bias", "not an array"), ("3.bias", np.array(["a", "b"]))]:
        sd = dict(good)
        sd[bad_key] = bad_value
        with pytest.raises(RuntimeError):
            model.load_state_dict(sd)
        after = _snapshot(model)
        assert all(np.array_equal(before[k], after[k]) for k in before), "a failed load changed the model"
    sd = dict(good)
    del sd["0.bias"]
    with pytest.raises(RuntimeError, match="Missing"):
        model.load_state_dict(sd)
    assert np.array_equal(_snapshot(model)["0.weight"], before["0.weight"])


def test_non_strict_returns_missing_and_unexpected_keys_but_still_rejects_shapes():
    m = nn.Linear(3, 2)
    res = m.load_state_dict({"weight": np.zeros((2, 3)), "other": np.ones(1)}, strict=False)
    assert res.missing_keys == ["bias"] and res.unexpected_keys == ["other"]
    assert res == (["bias"], ["other"]) and np.all(m.weight.numpy() == 0)
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        m.load_state_dict({"weight": np.zeros((3, 2))}, strict=False)
    with pytest.raises(TypeError, match="dict-like"):
        m.load_state_dict([("weight", np.zeros((2, 3)))])


def test_buffers_optional_parameters_and_persistence():
    m = nn.Linear(3, 2, bias=False)
    assert list(m.state_dict()) == ["weight"]
    with pytest.raises(RuntimeError, match='Unexpected key\\(s\\) in state_dict: "bias"'):
        m.load_state_dict({"weight": np.zeros((2, 3)), "bias": np.zeros(2)})
    bn = nn.BatchNorm1d(3, track_running_stats=False)
    assert list(bn.state_dict()) == ["weight", "bias"]

    class WithBuffers(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("saved", tl.ones(2))
            self.register_buffer("scratch", tl.ones(2), persistent=False)
    w = WithBuffers()
    assert list(w.state_dict()) == ["saved"]
    w.load_state_dict({"saved": np.zeros(2)})
    assert w.saved.numpy().tolist() == [0.0, 0.0] and w.scratch.numpy().tolist() == [1.0, 1.0]


def test_load_bumps_versions_so_stale_graphs_refuse_backward():
    m = nn.Linear(2, 1)
    out = m(tl.randn(3, 2, requires_grad=True)).sum()
    m.load_state_dict({"weight": np.zeros((1, 2)), "bias": np.zeros(1)})
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        out.backward()


def test_optimizer_keeps_working_after_load():
    m = nn.Linear(2, 1)
    opt = tl.optim.SGD(m.parameters(), lr=0.1)
    m.load_state_dict({"weight": np.ones((1, 2)), "bias": np.zeros(1)})
    loss = m(tl.ones(1, 2)).sum()
    loss.backward()
    opt.step()
    np.testing.assert_allclose(m.weight.numpy(), [[0.9, 0.9]], rtol=1e-6)
