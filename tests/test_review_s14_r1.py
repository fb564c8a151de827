"""Review s14_r1: regression tests for defects found in today's merges (tl.Size, state_dict sharing storage,
grad_fn names, range indexing, tl.multinomial), each checked against PyTorch's behaviour."""
import io

import numpy as np
import pytest

import tinygrad_lite as tl


def test_size_survives_save_load():
    # torch.save/torch.load (weights_only too) keep a torch.Size a torch.Size; it came back a plain tuple
    buf = io.BytesIO()
    tl.save({"shape": tl.ones(2, 3).shape, "l": [tl.Size([1])], "t": (2, 3)}, buf)
    buf.seek(0)
    out = tl.load(buf)
    assert type(out["shape"]) is tl.Size and out["shape"] == (2, 3)
    assert type(out["l"][0]) is tl.Size
    assert type(out["t"]) is tuple
    assert repr(out["shape"]) == "torch.Size([2, 3])"
