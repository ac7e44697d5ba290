"""Issue 7 parity extras against torch, beside the module/optimiser tables of test_nn_modules.py and
test_optim.py:

- binary_cross_entropy_with_logits in every argument form: the legacy positional flags, weight and
  pos_weight broadcasting (up to the input's shape but never beyond it), mixed dtypes (the loss keeps
  the target's dtype), and the torch.* top-level forms, whose omitted `reduction` means 'none';
- scaled_dot_product_attention with dropout: our keep-mask is recovered from the output with an
  identity value, handed to torch's math attention as its dropout_mask, and outputs and gradients
  compared (causal, boolean and additive masks);
- nn.Dropout and F.dropout in training mode: zeros or x / (1 - p), with the gradient through the same mask.
"""
import warnings

import numpy as np
import pytest
import torch

import vibetensor.torch as vt



def to_np(t):
    return np.array(t.detach().numpy(), copy=True)


def arrays(seed):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((3, 4)).astype(np.float32), "t": rng.uniform(0, 1, (3, 4)).astype(np.float32),
            "w": rng.uniform(0.5, 2, (4,)).astype(np.float32), "pw": rng.uniform(0.5, 2, (4,)).astype(np.float32),
            "w31": rng.uniform(0.5, 2, (3, 1)).astype(np.float32),
            "w214": rng.uniform(0.5, 2, (2, 1, 4)).astype(np.float32)}


def tensors(lib, seed):
    """The same inputs in lib; x requires grad."""
    ts = {k: lib.from_numpy(a.copy()) for k, a in arrays(seed).items()}
    ts["x"].requires_grad_(True)
    return ts


def F(lib):
    return lib.nn.functional


# (id, fn(lib, inputs dict))
BCE_FORMS = [
    ("default_mean", lambda L, a: F(L).binary_cross_entropy_with_logits(a["x"], a["t"])),
    ("weight_positional", lambda L, a: F(L).binary_cross_entropy_with_logits(a["x"], a["t"], a["w"])),
    ("size_average_false", lambda L, a: F(L).binary_cross_entropy_with_logits(a["x"], a["t"], None, False)),
    ("reduce_false", lambda L, a: F(L).binary_cross_entropy_with_logits(a["x"], a["t"], None, None, False)),
    ("reduction_positional", lambda L, a: F(L).binary_cross_entropy_with_logits(a["x"], a["t"], a["w"], None, None,
                                                                                "sum")),
    ("pos_weight_positional", lambda L, a: F(L).binary_cross_entropy_with_logits(
        a["x"], a["t"], None, None, None, "none", a["pw"])),
    ("weight_and_pos_weight", lambda L, a: F(L).binary_cross_entropy_with_logits(
        a["x"], a["t"], a["w31"], pos_weight=a["pw"])),
    ("pos_weight_column", lambda L, a: F(L).binary_cross_entropy_with_logits(
        a["x"], a["t"], pos_weight=a["w31"], reduction="none")),
    ("weight_beyond_input", lambda L, a: F(L).binary_cross_entropy_with_logits(
        a["x"], a["t"], a["w214"], reduction="none")),
    ("pos_weight_beyond_input", lambda L, a: F(L).binary_cross_entropy_with_logits(
        a["x"], a["t"], pos_weight=a["w214"])),
    ("float64_target", lambda L, a: F(L).binary_cross_entropy_with_logits(a["x"], a["t"].double())),
    ("float64_input", lambda L, a: F(L).binary_cross_entropy_with_logits(a["x"].double(), a["t"], reduction="none")),
    ("float64_weights", lambda L, a: F(L).binary_cross_entropy_with_logits(
        a["x"], a["t"], a["w"].double(), pos_weight=a["pw"].double())),
    ("target_shape", lambda L, a: F(L).binary_cross_entropy_with_logits(a["x"], a["t"][0])),
    ("module_positional", lambda L, a: L.nn.BCEWithLogitsLoss(a["w"], None, None, "none", a["pw"])(a["x"], a["t"])),
    ("module_legacy_reduce", lambda L, a: L.nn.BCEWithLogitsLoss(None, None, False)(a["x"], a["t"])),
    # torch.* forms: (input, target, weight, pos_weight, reduction: int); omitted reduction -> none
    ("top_default", lambda L, a: L.binary_cross_entropy_with_logits(a["x"], a["t"])),
    ("top_pos_weight", lambda L, a: L.binary_cross_entropy_with_logits(a["x"], a["t"], None, a["pw"])),
    ("top_mean", lambda L, a: L.binary_cross_entropy_with_logits(a["x"], a["t"], a["w"], a["pw"], 1)),
    ("top_sum_keyword", lambda L, a: L.binary_cross_entropy_with_logits(a["x"], a["t"], reduction=2)),
    ("top_kl_div_default", lambda L, a: L.kl_div(a["x"], a["t"])),
    ("top_kl_div_mean", lambda L, a: L.kl_div(a["x"], a["t"], 1)),
    # binary_cross_entropy: its weight too is multiplied into the input-shaped loss, in the input's dtype
    ("bce_weight_float64", lambda L, a: F(L).binary_cross_entropy(a["x"].sigmoid(), a["t"], a["w"].double())),
    ("bce_weight_long", lambda L, a: F(L).binary_cross_entropy(a["x"].sigmoid(), a["t"], a["w"].long() + 1,
                                                                reduction="sum")),
    ("bce_weight_column_none", lambda L, a: F(L).binary_cross_entropy(a["x"].sigmoid(), a["t"], a["w31"],
                                                                       reduction="none")),
    ("bce_weight_beyond_input", lambda L, a: F(L).binary_cross_entropy(a["x"].sigmoid(), a["t"], a["w214"])),
    ("bce_weight_incompatible", lambda L, a: F(L).binary_cross_entropy(a["x"].sigmoid(), a["t"], a["w214"][0, 0, :3])),
    ("bce_weight_incompatible_2d", lambda L, a: F(L).binary_cross_entropy(a["x"].sigmoid(), a["t"], a["w214"][0])),
    ("logits_weight_incompatible", lambda L, a: F(L).binary_cross_entropy_with_logits(a["x"], a["t"],
                                                                                       a["w"][:3])),
    ("logits_pos_weight_incompatible", lambda L, a: F(L).binary_cross_entropy_with_logits(
        a["x"], a["t"], pos_weight=a["w214"][:, :, :2])),
    ("bce_float64_input", lambda L, a: F(L).binary_cross_entropy(a["x"].double().sigmoid(), a["t"].double(),
                                                                  a["w"])),
]


@pytest.mark.parametrize("line", BCE_FORMS, ids=[b[0] for b in BCE_FORMS])
def test_binary_cross_entropy_forms(line):
    """Same value, shape and dtype as torch, and the same input gradient; or the same error and message."""
    name, fn = line
    t_in, v_in = tensors(torch, 0), tensors(vt, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            t_out = fn(torch, t_in)
        except Exception as e:
            with pytest.raises(type(e)) as ours:
                fn(vt, v_in)
            assert str(ours.value) == str(e)
            return
        v_out = fn(vt, v_in)
    assert tuple(v_out.shape) == tuple(t_out.shape) and str(v_out.dtype) == str(t_out.dtype)
    np.testing.assert_allclose(to_np(v_out), to_np(t_out), rtol=1e-5, atol=1e-6)
    g = np.random.default_rng(1).standard_normal(tuple(t_out.shape))
    t_out.backward(torch.from_numpy(g).to(t_out.dtype))
    v_out.backward(vt.from_numpy(g).to(v_out.dtype))
    np.testing.assert_allclose(to_np(v_in["x"].grad), to_np(t_in["x"].grad), rtol=1e-5, atol=1e-6)


# -- scaled_dot_product_attention with dropout ----------------------------------------------------------------------
B, H, L_, S, E = 2, 2, 4, 6, 5
SDPA_DROPOUT = [  # (id, dropout_p, mask kind)
    ("plain", 0.3, "none"),
    ("causal", 0.5, "causal"),
    ("bool_mask", 0.25, "bool"),
    ("float_mask", 0.4, "float"),
    ("p_one", 1.0, "none"),
]


def _sdpa_inputs(mask_kind, seed=0):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in [(B, H, L_, E), (B, H, S, E), (B, H, S, 3)])
    mask = None
    if mask_kind == "bool":
        mask = rng.uniform(size=(L_, S)) > 0.3
        mask[:, 0] = True  # no fully masked row
    elif mask_kind == "float":
        mask = rng.standard_normal((B, 1, L_, S)).astype(np.float32)
    return q, k, v, mask


def _ours(q, k, v, mask, p, causal, seed):
    vt.manual_seed(seed)
    return vt.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)


@pytest.mark.parametrize("name,p,mask_kind", SDPA_DROPOUT, ids=[s[0] for s in SDPA_DROPOUT])
def test_sdpa_dropout_against_torch_math(name, p, mask_kind):
    q, k, v, mask = _sdpa_inputs(mask_kind)
    causal = mask_kind == "causal"
    vmask = None if mask is None else vt.from_numpy(mask.copy())
    if mask is not None and mask.dtype == bool:  # torch's math kernel takes the additive form of a bool mask
        mask = np.where(mask, 0.0, -np.inf).astype(np.float32)
    tmask = None if mask is None else torch.from_numpy(mask.copy())
    # the value eye(S) makes the output the dropped, rescaled attention weights: its zeros are the dropped ones
    eye = np.broadcast_to(np.eye(S, dtype=np.float32), (B, H, S, S)).copy()
    weights = to_np(_ours(vt.from_numpy(q), vt.from_numpy(k), vt.from_numpy(eye), vmask, p, causal, seed=11))
    keep = weights != 0
    probs = to_np(torch.ops.aten._scaled_dot_product_attention_math(
        torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(eye), tmask, is_causal=causal)[0])
    kept = keep & (probs > 0)
    if p < 1.0:
        np.testing.assert_allclose(weights[kept], probs[kept] / (1 - p), rtol=1e-5)
        live = probs > 0
        assert abs(kept.sum() / live.sum() - (1 - p)) < 0.2  # about 1 - p of the weights survive
    else:
        assert not keep.any()
    # the same seed draws the same mask: outputs and gradients equal torch's math attention with that mask
    vq, vk, vv = (vt.from_numpy(a.copy()).requires_grad_(True) for a in (q, k, v))
    tq, tk, tv = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (q, k, v))
    v_out = _ours(vq, vk, vv, vmask, p, causal, seed=11)
    if p < 1.0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Dropout mask should only be used for testing purposes."
            t_out = torch.ops.aten._scaled_dot_product_attention_math(tq, tk, tv, tmask, p, causal,
                                                                      torch.from_numpy(keep))[0]
    else:  # everything dropped: torch's public function gives zeros (its math kernel would scale by inf)
        t_out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, tmask, p, causal)
    np.testing.assert_allclose(to_np(v_out), to_np(t_out), rtol=1e-4, atol=1e-5)
    g = np.random.default_rng(3).standard_normal(tuple(t_out.shape)).astype(np.float32)
    t_out.backward(torch.from_numpy(g))
    v_out.backward(vt.from_numpy(g))
    for vx, tx, n in ((vq, tq, "q"), (vk, tk, "k"), (vv, tv, "v")):
        np.testing.assert_allclose(to_np(vx.grad), to_np(tx.grad), rtol=1e-4, atol=1e-5, err_msg=n)


def test_sdpa_dropout_off_in_eval_forms():
    """dropout_p=0 is deterministic and equals torch; a different seed gives a different mask."""
    q, k, v, _ = _sdpa_inputs("none")
    ours = to_np(_ours(vt.from_numpy(q), vt.from_numpy(k), vt.from_numpy(v), None, 0.0, False, seed=1))
    theirs = to_np(torch.nn.functional.scaled_dot_product_attention(*(torch.from_numpy(a) for a in (q, k, v))))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    a = to_np(_ours(vt.from_numpy(q), vt.from_numpy(k), vt.from_numpy(v), None, 0.5, False, seed=1))
    b = to_np(_ours(vt.from_numpy(q), vt.from_numpy(k), vt.from_numpy(v), None, 0.5, False, seed=2))
    assert not np.array_equal(a, b)


# -- dropout in training mode ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("form", ["module", "functional", "module_inplace"])
def test_dropout_training(form, p):
    x_np = np.random.default_rng(0).uniform(0.5, 2.0, (40, 50)).astype(np.float32)
    x = vt.from_numpy(x_np.copy()).requires_grad_(True)
    vt.manual_seed(5)
    if form == "module":
        m = vt.nn.Dropout(p)
        assert m.training
        y = m(x)
    elif form == "functional":
        y = vt.nn.functional.dropout(x, p)
    else:
        y = vt.nn.Dropout(p, inplace=True)(x * 1)
    out = to_np(y)
    kept = out != 0
    np.testing.assert_allclose(out[kept], x_np[kept] / (1 - p), rtol=1e-6)
    assert abs(kept.mean() - (1 - p)) < 0.05
    y.backward(vt.ones(y.shape))
    np.testing.assert_allclose(to_np(x.grad), kept / (1 - p), rtol=1e-6)
    m = vt.nn.Dropout(p).eval()
    assert np.array_equal(to_np(m(x)), x_np)


# -- 20 training steps of small models: modules, losses, optimisers, schedulers and clipping together ----------------
def _convnet(nn):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 4, 3), nn.GroupNorm(2, 4), nn.SiLU(), nn.AvgPool2d(2, ceil_mode=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def _tiny_lm(nn):
    class TinyLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(11, 8)
            # bias=False: the key projection's bias has a zero gradient (softmax ignores a per-row shift),
            # which AdamW would turn into steps of pure rounding noise
            self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True,
                                                                            activation="gelu", bias=False), 2,
                                                 enable_nested_tensor=False)
            self.norm = nn.RMSNorm(8)
            self.head = nn.Linear(8, 11)

        def forward(self, tokens, mask):  # (B, T) -> (B, T, V)
            return self.head(self.norm(self.encoder(self.embed(tokens), mask=mask)))
    return TinyLM()


def _conv_data(rng):
    return rng.standard_normal((6, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, (6,))


def _lm_data(rng):
    return rng.integers(0, 11, (2, 5)), rng.integers(0, 11, (2, 5))


CAUSAL5 = np.triu(np.full((5, 5), -np.inf, dtype=np.float32), 1)
TRAIN = [  # (id, model(nn), batch(rng), loss(lib, model, x, y), optimiser(lib, params), scheduler or None, clip)
    ("convnet_sgd_steplr", _convnet, _conv_data,
     lambda L, m, x, y: L.nn.CrossEntropyLoss(weight=L.tensor([1.0, 2.0, 0.5]))(m(x), y),
     lambda L, ps: L.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
     lambda S, o: S.StepLR(o, 5, 0.5), None),
    ("tiny_lm_adamw_onecycle_clip", _tiny_lm, _lm_data,
     lambda L, m, x, y: L.nn.functional.cross_entropy(m(x, L.from_numpy(CAUSAL5.copy())).flatten(0, 1),
                                                      y.flatten(), label_smoothing=0.1),
     lambda L, ps: L.optim.AdamW(ps, lr=0.01, weight_decay=0.05),
     lambda S, o: S.OneCycleLR(o, max_lr=0.02, total_steps=20), 0.5),
]


def _train(lib, line, model):
    name, _, batch, loss_fn, make_opt, make_sched, clip = line
    opt = make_opt(lib, model.parameters())
    sched = make_sched(lib.optim.lr_scheduler, opt) if make_sched else None
    rng, trace = np.random.default_rng(0), []
    for _ in range(20):
        x, y = (lib.from_numpy(np.ascontiguousarray(a)) for a in batch(rng))
        opt.zero_grad()
        loss = loss_fn(lib, model, x, y)
        loss.backward()
        if clip is not None:
            lib.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if sched is not None:
            sched.step()
        trace.append((loss.item(), {k: to_np(v) for k, v in model.state_dict().items()}))
    return trace


@pytest.mark.parametrize("line", TRAIN, ids=[t[0] for t in TRAIN])
def test_training_steps_match_torch(line):
    """Loss, parameters and buffers (BatchNorm running statistics) equal torch's after every one of 20 steps."""
    torch.manual_seed(0)
    tm, vm = line[1](torch.nn), line[1](vt.nn)
    vm.load_state_dict({k: vt.from_numpy(to_np(v)) for k, v in tm.state_dict().items()})
    for step, ((t_loss, t_sd), (v_loss, v_sd)) in enumerate(zip(_train(torch, line, tm), _train(vt, line, vm))):
        assert v_loss == pytest.approx(t_loss, rel=1e-4, abs=1e-5), step
        for k, t in t_sd.items():
            np.testing.assert_allclose(v_sd[k], t, rtol=1e-3, atol=1e-4, err_msg=f"step {step + 1}: {k}")
