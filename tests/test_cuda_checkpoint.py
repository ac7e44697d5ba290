"""Checkpoints with CUDA tensors (marker `cuda`): saved from the GPU, loaded with every kind of
map_location (None, "cpu", "cuda", a device, a dict, a callable), safetensors files written by torch
loaded onto the GPU and ours read by torch there, and a CUDA training run resumed from a checkpoint
loaded on the CPU. Two-GPU cases (cuda:1 <-> cuda:0): tests/test_cuda_multi_gpu.py."""
import numpy as np
import pytest
import safetensors.torch as st
import torch

import vibetensor.torch as vt
from oracle import assert_same, make_pair, to_numpy
from vibetensor.torch import serialization

pytestmark = pytest.mark.cuda

CPU, GPU = vt.device("cpu"), vt.device("cuda", 0)


def _same_bits(a, b):
    assert a.dtype is b.dtype and tuple(a.shape) == tuple(b.shape)
    x, y = to_numpy(a), to_numpy(b)
    assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f") or x.tobytes() == y.tobytes()


def _checkpoint():
    """A nested object with CUDA tensors of several dtypes and layouts, a CPU tensor and a leaf that requires grad."""
    gpu = {f"{dtype}_{layout}": make_pair((5, 7), dtype, layout, seed=i)[1].cuda()
           for i, (dtype, layout) in enumerate([("float32", "transposed"), ("bfloat16", "strided"),
                                                ("int64", "contiguous"), ("bool", "expanded"),
                                                ("float16", "contiguous")])}
    gpu["float32_gpu_view"] = vt.arange(40.0).cuda().view(5, 8)[1:, ::3]  # non-dense, made on the GPU
    param = vt.arange(6.0).cuda().requires_grad_(True)
    return {"gpu": gpu, "cpu": vt.arange(3, dtype=vt.int32), "param": param, "step": 7}


MAP_LOCATIONS = [  # (id, map_location, device of the saved CUDA tensors, device of the saved CPU tensor)
    ("none", None, GPU, CPU),
    ("cpu", "cpu", CPU, CPU),
    ("cuda", "cuda", GPU, GPU),
    ("cuda:0", "cuda:0", GPU, GPU),
    ("device", vt.device("cuda", 0), GPU, GPU),
    ("dict_to_cpu", {"cuda:0": "cpu"}, CPU, CPU),
    ("dict_to_gpu", {"cpu": vt.device("cuda", 0)}, GPU, GPU),
    ("callable_keep_on_cpu", lambda storage, location: storage, CPU, CPU),
    ("callable_cuda", lambda storage, location: storage.cuda(), GPU, GPU),
    ("callable_none", lambda storage, location: None, GPU, CPU),
]


@pytest.mark.parametrize("map_location,gpu_to,cpu_to", [m[1:] for m in MAP_LOCATIONS], ids=[m[0] for m in MAP_LOCATIONS])
def test_saved_on_cuda_loads_where_map_location_says(map_location, gpu_to, cpu_to, tmp_path):
    obj = _checkpoint()
    path = tmp_path / "ck.pt"
    vt.save(obj, path)
    back = vt.load(path, map_location=map_location)
    assert sorted(back["gpu"]) == sorted(obj["gpu"]) and back["step"] == 7
    for k, t in obj["gpu"].items():
        assert back["gpu"][k].device == gpu_to, k
        _same_bits(back["gpu"][k], t)
    assert back["cpu"].device == cpu_to
    _same_bits(back["cpu"], obj["cpu"])
    p = back["param"]
    assert p.device == gpu_to and p.requires_grad and p.is_leaf
    _same_bits(p.detach(), obj["param"].detach())


def test_missing_gpu_ordinal_raises_torchs_error(tmp_path):
    path = tmp_path / "ck.pt"
    vt.save({"x": vt.ones(2, device="cuda")}, path)
    n = vt.cuda.device_count()
    with pytest.raises(RuntimeError, match=f"CUDA device {n} but torch.cuda.device_count"):
        vt.load(path, map_location=f"cuda:{n}")
    with pytest.raises(RuntimeError, match=f"CUDA device {n} but"):
        vt.load(path, map_location={"cuda:0": f"cuda:{n}"})
    assert vt.load(path)["x"].device == GPU  # the file and the runtime are fine afterwards


def _torch_tensors():
    g = torch.Generator().manual_seed(0)
    return {"w": torch.randn(3, 4, generator=g).cuda(), "idx": torch.arange(5).cuda(),
            "h": torch.randn(2, 3, generator=g).to(torch.bfloat16).cuda(), "mask": torch.rand(4, generator=g).cuda() > 0.5,
            "t": torch.randn(4, 3, generator=g).cuda().t()}  # non-contiguous: safetensors writes it row-major


LOADERS = [
    ("load_file_cuda", lambda path: serialization.load_file(path, device="cuda")),
    ("load_file_ordinal", lambda path: serialization.load_file(path, device=0)),
    ("load_map_location", lambda path: vt.load(path, map_location="cuda")),
]


@pytest.mark.parametrize("load", [x[1] for x in LOADERS], ids=[x[0] for x in LOADERS])
def test_torch_written_safetensors_file_loads_onto_cuda(load, tmp_path):
    path = tmp_path / "torch.safetensors"
    theirs = _torch_tensors()
    st.save_file({k: v.contiguous().cpu() for k, v in theirs.items()}, path)
    back = load(path)
    assert sorted(back) == sorted(theirs)
    for k, v in theirs.items():
        assert back[k].device == GPU, k
        assert_same(back[k], v, rtol=0, atol=0)


def test_our_cuda_checkpoint_loads_in_torch_on_cuda(tmp_path):
    path = tmp_path / "ours.safetensors"
    t, v = make_pair((4, 6), "float32", "transposed", seed=3)
    tb, vb = make_pair((6,), "bfloat16", seed=4)
    serialization.save_file({"w": v.cuda(), "b": vb.cuda()}, path)
    back = st.load_file(path, device="cuda:0")
    assert back["w"].is_cuda and torch.equal(back["w"].cpu(), t.contiguous())
    assert back["b"].dtype == torch.bfloat16 and torch.equal(back["b"].cpu(), tb)


def _nets():
    torch.manual_seed(0)
    tnet = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    vnet = vt.nn.Sequential(vt.nn.Linear(4, 8), vt.nn.Tanh(), vt.nn.Linear(8, 3))
    vnet.load_state_dict({k: vt.from_numpy(p.detach().numpy().copy()) for k, p in tnet.state_dict().items()})
    return tnet, vnet


def test_state_dict_from_our_gpu_model_into_torchs_gpu_model(tmp_path):
    tnet, vnet = _nets()
    vnet = vnet.to("cuda")
    path = tmp_path / "net.safetensors"
    vt.save(vnet.state_dict(), path)
    tnet = tnet.cuda()
    tnet.load_state_dict(st.load_file(path, device="cuda:0"))
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    assert_same(vnet(vt.from_numpy(x).cuda()), tnet(torch.from_numpy(x).cuda()), rtol=1e-5, atol=1e-5)


def _train(net, opt, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = vt.from_numpy(rng.standard_normal((6, 4)).astype(np.float32)).cuda()
        y = vt.from_numpy(rng.integers(0, 3, 6)).cuda()
        opt.zero_grad()
        vt.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()


@pytest.mark.parametrize("map_location", ["cpu", "cuda", None])
def test_cuda_training_resumes_from_a_checkpoint(map_location, tmp_path):
    """Model + AdamW on the GPU, checkpointed after 3 steps; a fresh model and optimiser on the GPU load it
    (also through the CPU: optimiser state moves to its parameters' device) and 4 more steps equal the
    run that never stopped."""
    net = _nets()[1].to("cuda")
    opt = vt.optim.AdamW(net.parameters(), lr=0.01, weight_decay=0.1)
    _train(net, opt, 3, seed=0)
    path = tmp_path / "resume.pt"
    vt.save({"model": net.state_dict(), "optimizer": opt.state_dict()}, path)
    _train(net, opt, 4, seed=1)

    net2 = _nets()[1].to("cuda")
    opt2 = vt.optim.AdamW(net2.parameters(), lr=0.01, weight_decay=0.1)
    _train(net2, opt2, 1, seed=5)  # a different state, overwritten by the checkpoint
    ck = vt.load(path, map_location=map_location)
    net2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optimizer"])
    _train(net2, opt2, 4, seed=1)
    for (k, a), (_, b) in zip(net.state_dict().items(), net2.state_dict().items()):
        assert b.device == GPU, k
        np.testing.assert_allclose(a.cpu().numpy(), b.cpu().numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
