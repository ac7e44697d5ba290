"""Checkpoints (vibetensor.torch.save / load, serialization.save_file / load_file) in the safetensors
format: round trips of every dtype and layout, interop both ways with the `safetensors` package and
torch modules, clear errors on corrupt files that leave them untouched, atomic writes that keep the
old file when a save fails midway, and a model + optimizer checkpoint that resumes training exactly.
"""
import io
import json
import os
from collections import OrderedDict

import numpy as np
import pytest
import safetensors
import safetensors.torch as st
import torch

import vibetensor.torch as vt
from oracle import assert_same, make_pair, to_numpy
from vibetensor.torch import serialization

DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64",
          "complex64"]
LAYOUTS = ["contiguous", "transposed", "strided", "expanded"]
SHAPES = [(3, 4), (), (0,), (2, 0, 3), (5,)]


def _same_bits(a, b):
    """Equal dtype, shape and values (NaN equals NaN)."""
    assert a.dtype is b.dtype and tuple(a.shape) == tuple(b.shape)
    x, y = to_numpy(a), to_numpy(b)
    assert x.tobytes() == y.tobytes() or np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_dtype_and_layout(dtype, tmp_path):
    tensors = {f"{layout}{i}": make_pair(shape, dtype, layout, seed=i, special=True)[1]
               for layout in LAYOUTS for i, shape in enumerate(SHAPES) if len(shape) >= 2 or layout == "contiguous"}
    path = tmp_path / "t.safetensors"
    vt.save(tensors, path)
    back = vt.load(path)
    assert list(back) == list(tensors)
    for k, t in tensors.items():
        _same_bits(back[k], t)
        assert back[k].is_contiguous()
    vt.save(tensors["contiguous0"], path)  # a bare tensor
    _same_bits(vt.load(path), tensors["contiguous0"])


def test_nested_structure_and_leaves_survive(tmp_path):
    w = vt.randn(2, 3, requires_grad=True)
    obj = {"model": OrderedDict([("fc.weight", vt.ones(2, 2)), ("fc.bias", vt.zeros(2))]),
           "state": {0: {"step": vt.tensor(3.0), "buf": [vt.arange(3), None]}, 7: {}},
           "hyper": {"lr": 1e-3, "betas": (0.9, 0.999), "name": "adam", "nesterov": False, "inf": float("inf")},
           "leaf": w, "dtype": vt.bfloat16, "device": vt.device("cpu"), "list": [1, 2.5, "x", (None,)],
           "a.b": vt.ones(1), "a": {"b": vt.zeros(1)}}  # colliding flattened names
    path = tmp_path / "ck.pt"
    vt.save(obj, path)
    back = vt.load(path)
    assert type(back["model"]) is OrderedDict and list(back["model"]) == ["fc.weight", "fc.bias"]
    assert list(back["state"]) == [0, 7] and back["state"][7] == {} and back["state"][0]["buf"][1] is None
    assert back["hyper"] == obj["hyper"] and back["list"] == obj["list"]
    assert back["dtype"] is vt.bfloat16 and back["device"] == vt.device("cpu")
    assert back["leaf"].requires_grad and back["leaf"].is_leaf and not back["model"]["fc.bias"].requires_grad
    assert back["a.b"].item() == 1.0 and back["a"]["b"].item() == 0.0
    _same_bits(back["state"][0]["buf"][0], obj["state"][0]["buf"][0])


def test_file_objects_and_map_location():
    buf = io.BytesIO()
    vt.save({"x": vt.arange(4.0)}, buf)
    buf.seek(0)
    assert vt.load(buf, map_location="cpu")["x"].tolist() == [0.0, 1.0, 2.0, 3.0]
    buf.seek(0)
    assert vt.load(buf, map_location={"cuda:0": "cpu"}, weights_only=False)["x"].device == vt.device("cpu")


def test_unsupported_objects_raise_before_writing(tmp_path):
    path = tmp_path / "x.pt"
    with pytest.raises(TypeError, match="object of type"):
        vt.save({"f": lambda: 0}, path)
    with pytest.raises(TypeError, match="complex128"):
        vt.save(vt.zeros(2, dtype=vt.complex128), path)
    assert os.listdir(tmp_path) == []


# -- interop with safetensors and torch ----------------------------------------------------------------------

def _torch_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.ReLU(), torch.nn.Linear(8, 3),
                               torch.nn.BatchNorm1d(3))


def _vt_net():
    return vt.nn.Sequential(vt.nn.Linear(4, 8), vt.nn.LayerNorm(8), vt.nn.ReLU(), vt.nn.Linear(8, 3),
                            vt.nn.BatchNorm1d(3))


def _outputs(t_net, v_net):
    t_x, v_x = make_pair((5, 4), "float32")
    t_net.train(), v_net.train()
    t_net(t_x), v_net(v_x)  # moves the BatchNorm running statistics: buffers must match too
    t_net.eval(), v_net.eval()
    return t_net(t_x), v_net(v_x)


@pytest.mark.parametrize("reader", ["load", "load_file"])
def test_torch_safetensors_file_loads_into_our_module(reader, tmp_path):
    t_net = _torch_net()
    path = tmp_path / "torch.safetensors"
    st.save_file(t_net.state_dict(), str(path))
    state = vt.load(path) if reader == "load" else serialization.load_file(path)
    v_net = _vt_net()
    v_net.load_state_dict(state)  # strict: the same keys
    assert set(state) == set(t_net.state_dict())
    t_out, v_out = _outputs(t_net, v_net)
    assert_same(v_out, t_out.detach())


@pytest.mark.parametrize("writer", ["save", "save_file"])
def test_our_file_loads_into_torch_module(writer, tmp_path):
    v_net = _vt_net()
    path = tmp_path / "ours.safetensors"
    if writer == "save":
        vt.save(v_net.state_dict(), path)
    else:
        serialization.save_file(dict(v_net.state_dict()), path, metadata={"step": "7"})
        with safetensors.safe_open(str(path), "pt") as f:
            assert f.metadata() == {"step": "7"}
    t_net = _torch_net()
    t_net.load_state_dict(st.load_file(str(path)))
    t_out, v_out = _outputs(t_net, v_net)
    assert_same(v_out, t_out.detach())


def test_every_dtype_reads_in_safetensors(tmp_path):
    pairs = {d: make_pair((2, 3), d, "transposed", seed=1) for d in DTYPES}
    path = tmp_path / "all.safetensors"
    serialization.save_file({d: v for d, (_, v) in pairs.items()}, path)
    theirs = st.load_file(str(path))
    for d, (t, _) in pairs.items():
        assert theirs[d].dtype == t.dtype and torch.equal(theirs[d], t.contiguous())
    back = serialization.load_file(path)
    for d, (_, v) in pairs.items():
        _same_bits(back[d], v)


# -- corrupt files: a clear error naming the file, and the file untouched ------------------------------------------

def _valid_bytes(tmp_path):
    path = tmp_path / "good.pt"
    vt.save({"w": vt.arange(12.0).reshape(3, 4), "b": vt.ones(3, dtype=vt.int64), "n": 5}, path)
    return path.read_bytes()


def _header_with(data, edit):
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    edit(header)
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data[8 + n:]


CORRUPTIONS = {
    "empty": lambda d: b"",
    "short_length": lambda d: d[:5],
    "header_truncated": lambda d: d[:20],
    "data_truncated": lambda d: d[:-7],
    "huge_header_length": lambda d: (10 ** 12).to_bytes(8, "little") + d[8:],
    "not_json": lambda d: d[:8] + b"\xff" * (len(d) - 8),
    "header_not_object": lambda d: (2).to_bytes(8, "little") + b"[]" + d[10:],
    "offsets_wrong_size": lambda d: _header_with(d, lambda h: h["w"].update(data_offsets=[0, 8])),
    "offsets_past_end": lambda d: _header_with(d, lambda h: h["b"].update(data_offsets=[10 ** 6, 10 ** 6 + 24])),
    "bad_shape": lambda d: _header_with(d, lambda h: h["w"].update(shape=[-3, -4])),
    "unknown_dtype": lambda d: _header_with(d, lambda h: h["w"].update(dtype="F8_E4M3")),
    "missing_field": lambda d: _header_with(d, lambda h: h["w"].pop("shape")),
    "structure_not_json": lambda d: _header_with(d, lambda h: h["__metadata__"].update(vibetensor="{oops")),
    "structure_unknown_tensor": lambda d: _header_with(
        d, lambda h: h["__metadata__"].update(vibetensor=json.dumps({"T": "nope"}))),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corrupt_file_gives_clear_error_and_stays_untouched(name, tmp_path):
    bad = CORRUPTIONS[name](_valid_bytes(tmp_path))
    path = tmp_path / f"{name}.pt"
    path.write_bytes(bad)
    readers = (vt.load,) if name.startswith("structure") else (vt.load, serialization.load_file)  # (load_file
    for reader in readers:                                           # reads tensors only, as safetensors' does)
        with pytest.raises(serialization.CheckpointError, match=str(path)) as info:
            reader(path)
        assert isinstance(info.value, RuntimeError)
    assert path.read_bytes() == bad


def test_failed_save_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    vt.save({"w": vt.ones(3)}, path)
    old = path.read_bytes()
    calls = []

    def failing(t):  # the second tensor's conversion fails, after the first was written
        calls.append(t)
        if len(calls) == 2:
            raise RuntimeError("conversion failed")
        return real(t)
    real = serialization._tensor_bytes
    monkeypatch.setattr(serialization, "_tensor_bytes", failing)
    with pytest.raises(RuntimeError, match="conversion failed"):
        vt.save({"a": vt.zeros(1000), "b": vt.zeros(1000), "c": vt.zeros(3)}, path)
    assert path.read_bytes() == old and os.listdir(tmp_path) == ["ck.pt"]  # no temporary file left behind
    assert vt.load(path)["w"].tolist() == [1.0, 1.0, 1.0]


# -- resume training from a checkpoint -----------------------------------------------------------------------

def _train(net, opt, sched, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = vt.tensor(rng.standard_normal((6, 4)), dtype=vt.float32)
        y = vt.tensor(rng.integers(0, 3, 6))
        opt.zero_grad()
        vt.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        sched.step()


def _setup(params_from=None):
    vt.manual_seed(1)
    net = _vt_net()
    opt = vt.optim.AdamW(net.parameters(), lr=0.01, weight_decay=0.1, amsgrad=True)
    sched = vt.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    return net, opt, sched


def test_model_and_optimizer_checkpoint_resumes_identically(tmp_path):
    net, opt, sched = _setup()
    _train(net, opt, sched, 3, seed=0)
    path = tmp_path / "resume.pt"
    vt.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "epoch": 3}, path)
    _train(net, opt, sched, 4, seed=1)  # the run that never stopped

    net2, opt2, sched2 = _setup()
    vt.manual_seed(123)
    _train(net2, opt2, sched2, 1, seed=5)  # a different state, overwritten by the checkpoint
    ck = vt.load(path)
    net2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optimizer"])
    sched2.load_state_dict(ck["scheduler"])
    assert ck["epoch"] == 3
    _train(net2, opt2, sched2, 4, seed=1)  # the resumed run
    for (k, a), (_, b) in zip(net.state_dict().items(), net2.state_dict().items()):
        assert a.tolist() == b.tolist(), k
    assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]


# -- map_location (the CUDA side: tests/test_cuda_checkpoint.py) --------------------------------------------------

def test_callable_map_location_gets_each_tensor_and_its_saved_device():
    buf = io.BytesIO()
    vt.save({"x": vt.arange(3.0), "y": [vt.ones(2)]}, buf)
    seen = []

    def keep(storage, location):
        seen.append((tuple(storage.shape), location))
        return storage
    buf.seek(0)
    back = vt.load(buf, map_location=keep)
    assert back["x"].tolist() == [0.0, 1.0, 2.0] and back["y"][0].tolist() == [1.0, 1.0]
    assert sorted(seen) == [((2,), "cpu"), ((3,), "cpu")]
    buf.seek(0)
    assert vt.load(buf, map_location=lambda s, loc: None)["x"].device == vt.device("cpu")  # None: the saved device
    buf.seek(0)
    with pytest.raises(TypeError, match="map_location returned str"):
        vt.load(buf, map_location=lambda s, loc: "cpu")


def _saved_on(path, location):
    """A checkpoint that says its tensor was saved on `location` (written here without that device)."""
    structure = {"D": [[{"V": "w"}, {"T": "w", "device": location}]], "ordered": False}
    serialization._write(path, {"w": vt.arange(4.0)}, {"vibetensor": json.dumps(structure), "format": "pt"})


@pytest.mark.parametrize("location", ["cuda:0", "cuda:99"])
def test_cuda_checkpoint_on_a_machine_without_that_device(location, tmp_path):
    """torch.load's errors when the saved device is missing; map_location="cpu" or a dict loads it anyway."""
    path = tmp_path / "gpu.pt"
    _saved_on(path, location)
    if not vt.cuda.is_available():
        message = "torch.cuda.is_available[(][)] is False"
    elif location == "cuda:99":
        message = f"CUDA device 99 but torch.cuda.device_count[(][)] is {vt.cuda.device_count()}"
    else:
        message = None
    if message is None:  # a GPU machine has cuda:0
        assert vt.load(path)["w"].device == vt.device("cuda", 0)
    else:
        with pytest.raises(RuntimeError, match=message):
            vt.load(path)
    assert vt.load(path, map_location="cpu")["w"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert vt.load(path, map_location={location: "cpu"})["w"].device == vt.device("cpu")
    assert vt.load(path, map_location={location: vt.device("cpu")})["w"].device == vt.device("cpu")
    assert vt.load(path, map_location=lambda s, loc: s)["w"].device == vt.device("cpu")
