"""nn modules against torch: one table line per module configuration.

Each line builds the module in both libraries, copies torch's initial weights into ours through
load_state_dict (our RNG differs), checks the state_dict keys are torch's, runs the same inputs and
compares outputs, input gradients, parameter gradients and buffers (running statistics) afterwards.
The Module API (registration, state_dict errors, conversion, hooks, repr, containers) and nn.init
have their own tests below.
"""
import copy
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch

import vibetensor.torch as vt


pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def to_vt(t):
    return vt.from_numpy(t.detach().numpy().copy())


def to_np(t):
    return np.array(t.detach().numpy(), copy=True)


def copy_weights(tm, vm):
    sd = OrderedDict((k, to_vt(v)) for k, v in tm.state_dict().items())
    vm.load_state_dict(sd)


# -- input specs: the same values in both libraries --------------------------------------------------------
def F(*shape):  # float input, differentiated
    return ("f", shape)


def C(*shape):  # float input, not differentiated
    return ("c", shape)


def P(*shape):  # probabilities in (0, 1), not differentiated
    return ("p", shape)


def I(high, *shape):  # int64 indices in [0, high)
    return ("i", shape, high)


def M(array):  # a fixed mask or tensor
    return ("m", np.asarray(array))


def build_inputs(specs, seed):
    rng = np.random.default_rng(seed)
    pairs = []
    for spec in specs:
        kind = spec[0]
        if kind == "i":
            a = rng.integers(0, spec[2], size=spec[1]).astype(np.int64)
        elif kind == "m":
            a = spec[1]
        elif kind == "p":
            a = rng.uniform(0.05, 0.95, spec[1]).astype(np.float32)
        else:
            a = rng.standard_normal(spec[1]).astype(np.float32)
        t, v = torch.from_numpy(a.copy()), vt.from_numpy(a.copy())
        if kind == "f":
            t.requires_grad_(True)
            v.requires_grad_(True)
        pairs.append((t, v))
    return pairs


CAUSAL = np.triu(np.ones((4, 4), dtype=bool), 1)
KPM = np.array([[False, False, False, True, True], [False, False, False, False, False]])
KPM4 = np.array([[False, False, True, True], [False, False, False, False]])

def _containers(nn, L):
    """Sequential, ModuleList, ModuleDict and ParameterList inside one module (their state_dict keys)."""
    class Containers(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.GELU())])
            self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Linear(4, 2, bias=False)})
            self.scales = nn.ParameterList([nn.Parameter(L.ones(2)), nn.Parameter(L.full((2,), 0.5))])

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.heads["a"](x) * self.scales[0] + self.heads["b"](x) * self.scales[1]
    return Containers()


# (id, ctor(nn, lib), input specs, forward(m, *inputs) or None, mode)
LINES = [
    ("linear", lambda nn, L: nn.Linear(5, 3), [F(4, 5)], None, "train"),
    ("linear_nobias_3d", lambda nn, L: nn.Linear(5, 3, bias=False), [F(2, 4, 5)], None, "train"),
    ("bilinear", lambda nn, L: nn.Bilinear(3, 4, 2), [F(5, 3), F(5, 4)], None, "train"),
    ("identity", lambda nn, L: nn.Identity(), [F(3, 2)], None, "train"),
    ("flatten", lambda nn, L: nn.Flatten(), [F(2, 3, 4)], None, "train"),
    ("unflatten", lambda nn, L: nn.Unflatten(1, (2, 3)), [F(4, 6)], None, "train"),
    ("embedding", lambda nn, L: nn.Embedding(10, 4), [I(10, 3, 5)], None, "train"),
    ("embedding_pad", lambda nn, L: nn.Embedding(10, 4, padding_idx=0), [I(3, 3, 5)], None, "train"),
    ("layernorm", lambda nn, L: nn.LayerNorm(6), [F(3, 6)], None, "train"),
    ("layernorm_2d_noaffine", lambda nn, L: nn.LayerNorm([4, 6], elementwise_affine=False), [F(2, 4, 6)], None,
     "train"),
    ("layernorm_nobias", lambda nn, L: nn.LayerNorm(6, bias=False), [F(3, 6)], None, "train"),
    ("groupnorm_nobias", lambda nn, L: nn.GroupNorm(2, 4, bias=False), [F(2, 4, 3)], None, "train"),
    ("batchnorm1d_nobias", lambda nn, L: nn.BatchNorm1d(4, bias=False), [F(5, 4)], None, "train"),
    ("rmsnorm", lambda nn, L: nn.RMSNorm(6), [F(3, 6)], None, "train"),
    ("rmsnorm_eps", lambda nn, L: nn.RMSNorm([2, 6], eps=1e-3), [F(3, 2, 6)], None, "train"),
    ("groupnorm", lambda nn, L: nn.GroupNorm(2, 4), [F(2, 4, 3, 3)], None, "train"),
    ("batchnorm1d", lambda nn, L: nn.BatchNorm1d(4), [F(5, 4)], None, "train"),
    ("batchnorm1d_3d", lambda nn, L: nn.BatchNorm1d(4), [F(5, 4, 3)], None, "train"),
    ("batchnorm1d_cma", lambda nn, L: nn.BatchNorm1d(4, momentum=None), [F(5, 4)], None, "train"),
    ("batchnorm1d_nostats", lambda nn, L: nn.BatchNorm1d(4, track_running_stats=False), [F(5, 4)], None, "train"),
    ("batchnorm1d_nostats_eval", lambda nn, L: nn.BatchNorm1d(4, track_running_stats=False), [F(5, 4)], None,
     "eval"),
    ("batchnorm2d", lambda nn, L: nn.BatchNorm2d(3), [F(2, 3, 4, 4)], None, "train"),
    ("batchnorm2d_eval", lambda nn, L: nn.BatchNorm2d(3, affine=False), [F(2, 3, 4, 4)], None, "eval"),
    ("instancenorm2d", lambda nn, L: nn.InstanceNorm2d(3, affine=True), [F(2, 3, 4, 4)], None, "train"),
    ("dropout_eval", lambda nn, L: nn.Dropout(0.5), [F(3, 4)], None, "eval"),
    ("dropout_p0", lambda nn, L: nn.Dropout(0.0), [F(3, 4)], None, "train"),
    ("relu", lambda nn, L: nn.ReLU(), [F(3, 4)], None, "train"),
    ("relu6", lambda nn, L: nn.ReLU6(), [F(3, 4)], None, "train"),
    ("hardtanh", lambda nn, L: nn.Hardtanh(-0.5, 0.7), [F(3, 4)], None, "train"),
    ("gelu", lambda nn, L: nn.GELU(), [F(3, 4)], None, "train"),
    ("gelu_tanh", lambda nn, L: nn.GELU(approximate="tanh"), [F(3, 4)], None, "train"),
    ("silu", lambda nn, L: nn.SiLU(), [F(3, 4)], None, "train"),
    ("mish", lambda nn, L: nn.Mish(), [F(3, 4)], None, "train"),
    ("tanh", lambda nn, L: nn.Tanh(), [F(3, 4)], None, "train"),
    ("sigmoid", lambda nn, L: nn.Sigmoid(), [F(3, 4)], None, "train"),
    ("logsigmoid", lambda nn, L: nn.LogSigmoid(), [F(3, 4)], None, "train"),
    ("softsign", lambda nn, L: nn.Softsign(), [F(3, 4)], None, "train"),
    ("tanhshrink", lambda nn, L: nn.Tanhshrink(), [F(3, 4)], None, "train"),
    ("softmax", lambda nn, L: nn.Softmax(dim=1), [F(3, 4)], None, "train"),
    ("softmin", lambda nn, L: nn.Softmin(dim=0), [F(3, 4)], None, "train"),
    ("logsoftmax", lambda nn, L: nn.LogSoftmax(dim=-1), [F(2, 3, 4)], None, "train"),
    ("leakyrelu", lambda nn, L: nn.LeakyReLU(0.2), [F(3, 4)], None, "train"),
    ("elu", lambda nn, L: nn.ELU(alpha=0.5), [F(3, 4)], None, "train"),
    ("celu", lambda nn, L: nn.CELU(alpha=0.7), [F(3, 4)], None, "train"),
    ("selu", lambda nn, L: nn.SELU(), [F(3, 4)], None, "train"),
    ("softplus", lambda nn, L: nn.Softplus(beta=2.0, threshold=1.0), [F(3, 4)], None, "train"),
    ("hardswish", lambda nn, L: nn.Hardswish(), [F(3, 4)], None, "train"),
    ("hardsigmoid", lambda nn, L: nn.Hardsigmoid(), [F(3, 4)], None, "train"),
    ("hardshrink", lambda nn, L: nn.Hardshrink(0.3), [F(3, 4)], None, "train"),
    ("softshrink", lambda nn, L: nn.Softshrink(0.3), [F(3, 4)], None, "train"),
    ("threshold", lambda nn, L: nn.Threshold(0.1, 20.0), [F(3, 4)], None, "train"),
    ("glu", lambda nn, L: nn.GLU(), [F(3, 4)], None, "train"),
    ("prelu", lambda nn, L: nn.PReLU(3), [F(2, 3, 4)], None, "train"),
    ("conv1d", lambda nn, L: nn.Conv1d(3, 4, 3, padding=1), [F(2, 3, 8)], None, "train"),
    ("conv1d_groups_circular", lambda nn, L: nn.Conv1d(4, 6, 3, stride=2, dilation=2, groups=2, padding=2,
                                                        padding_mode="circular"), [F(2, 4, 9)], None, "train"),
    ("conv2d_stride", lambda nn, L: nn.Conv2d(3, 4, 3, stride=2, padding=1), [F(2, 3, 7, 7)], None, "train"),
    ("conv2d_same_groups", lambda nn, L: nn.Conv2d(4, 4, 3, groups=2, padding="same", bias=False),
     [F(2, 4, 5, 5)], None, "train"),
    ("conv2d_dilation", lambda nn, L: nn.Conv2d(2, 3, 3, dilation=2), [F(1, 2, 7, 7)], None, "train"),
    ("conv2d_reflect", lambda nn, L: nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), [F(2, 2, 5, 5)], None,
     "train"),
    ("convtranspose2d", lambda nn, L: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1),
     [F(2, 3, 4, 4)], None, "train"),
    ("convtranspose2d_size", lambda nn, L: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1), [F(2, 3, 4, 4)],
     lambda m, x: m(x, output_size=[8, 8]), "train"),
    ("maxpool2d", lambda nn, L: nn.MaxPool2d(2), [F(2, 3, 6, 6)], None, "train"),
    ("maxpool2d_pad", lambda nn, L: nn.MaxPool2d(3, stride=2, padding=1), [F(2, 3, 7, 7)], None, "train"),
    ("maxpool2d_ceil_dilation", lambda nn, L: nn.MaxPool2d(2, stride=2, dilation=2, ceil_mode=True),
     [F(2, 3, 7, 7)], None, "train"),
    ("avgpool2d", lambda nn, L: nn.AvgPool2d(2), [F(2, 3, 6, 6)], None, "train"),
    ("avgpool2d_nopad", lambda nn, L: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
     [F(2, 3, 7, 7)], None, "train"),
    ("adaptiveavgpool2d", lambda nn, L: nn.AdaptiveAvgPool2d((2, 3)), [F(2, 3, 7, 8)], None, "train"),
    ("adaptiveavgpool2d_1", lambda nn, L: nn.AdaptiveAvgPool2d(1), [F(2, 3, 5, 5)], None, "train"),
    ("mha", lambda nn, L: nn.MultiheadAttention(8, 2), [F(4, 2, 8), F(5, 2, 8), F(5, 2, 8)], None, "train"),
    ("mha_self_batch_first", lambda nn, L: nn.MultiheadAttention(8, 2, batch_first=True), [F(2, 4, 8)],
     lambda m, x: m(x, x, x), "train"),
    ("mha_causal_noweights", lambda nn, L: nn.MultiheadAttention(8, 2), [F(4, 2, 8), M(CAUSAL)],
     lambda m, x, mask: m(x, x, x, attn_mask=mask, need_weights=False), "train"),
    ("mha_causal_weights", lambda nn, L: nn.MultiheadAttention(8, 4), [F(4, 2, 8), M(CAUSAL)],
     lambda m, x, mask: m(x, x, x, attn_mask=mask, average_attn_weights=False), "train"),
    ("mha_kpm", lambda nn, L: nn.MultiheadAttention(8, 2, batch_first=True),
     [F(2, 4, 8), F(2, 5, 8), M(KPM)], lambda m, q, kv, kpm: m(q, kv, kv, key_padding_mask=kpm), "train"),
    ("mha_kpm_noweights", lambda nn, L: nn.MultiheadAttention(8, 2, batch_first=True),
     [F(2, 4, 8), F(2, 5, 8), M(KPM)],
     lambda m, q, kv, kpm: m(q, kv, kv, key_padding_mask=kpm, need_weights=False), "train"),
    ("mha_kdim_vdim", lambda nn, L: nn.MultiheadAttention(8, 2, kdim=6, vdim=5), [F(4, 2, 8), F(3, 2, 6),
                                                                                 F(3, 2, 5)], None, "train"),
    ("mha_bias_kv_zero_attn", lambda nn, L: nn.MultiheadAttention(8, 2, add_bias_kv=True, add_zero_attn=True),
     [F(4, 2, 8)], lambda m, x: m(x, x, x), "train"),
    ("mha_float_mask_3d", lambda nn, L: nn.MultiheadAttention(8, 2), [F(4, 2, 8), C(4, 4, 4)],
     lambda m, x, mask: m(x, x, x, attn_mask=mask), "train"),
    ("mha_is_causal", lambda nn, L: nn.MultiheadAttention(8, 2, batch_first=True), [F(2, 4, 8), M(CAUSAL)],
     lambda m, x, mask: m(x, x, x, attn_mask=mask, is_causal=True, need_weights=False), "train"),
    ("mha_unbatched", lambda nn, L: nn.MultiheadAttention(8, 2), [F(4, 8)], lambda m, x: m(x, x, x), "train"),
    ("encoder_layer", lambda nn, L: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), [F(4, 2, 8)], None,
     "train"),
    ("encoder_layer_normfirst_gelu", lambda nn, L: nn.TransformerEncoderLayer(
        8, 2, 16, dropout=0.0, activation="gelu", batch_first=True, norm_first=True), [F(2, 4, 8), M(CAUSAL),
                                                                                      M(KPM4)],
     lambda m, x, mask, kpm: m(x, src_mask=mask, src_key_padding_mask=kpm), "train"),
    ("encoder_layer_eval", lambda nn, L: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3, batch_first=True),
     [F(2, 4, 8)], None, "eval"),
    ("encoder", lambda nn, L: nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0), 2,
                                                    norm=nn.LayerNorm(8), enable_nested_tensor=False),
     [F(4, 2, 8), M(CAUSAL)], lambda m, x, mask: m(x, mask=mask), "train"),
    ("decoder_layer", lambda nn, L: nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0), [F(4, 2, 8), F(5, 2, 8),
                                                                                       M(CAUSAL)],
     lambda m, t, mem, mask: m(t, mem, tgt_mask=mask), "train"),
    ("encoder_layer_is_causal", lambda nn, L: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
     [F(2, 4, 8), M(np.where(CAUSAL, -np.inf, 0.0).astype(np.float32))],
     lambda m, x, mask: m(x, src_mask=mask, is_causal=True), "train"),
    ("decoder_layer_masks", lambda nn, L: nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True,
                                                                     activation="gelu"),
     [F(2, 4, 8), F(2, 5, 8), M(CAUSAL), M(KPM4), M(KPM)],
     lambda m, t, mem, mask, tkpm, mkpm: m(t, mem, tgt_mask=mask, tgt_key_padding_mask=tkpm,
                                           memory_key_padding_mask=mkpm, tgt_is_causal=True), "train"),
    ("decoder_layer_normfirst", lambda nn, L: nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, norm_first=True,
                                                                         batch_first=True),
     [F(2, 4, 8), F(2, 5, 8)], None, "train"),
    ("sequential", lambda nn, L: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 2)),
     [F(6, 4)], None, "train"),
    ("containers", _containers, [F(3, 4)], None, "train"),
    # losses
    ("cross_entropy", lambda nn, L: nn.CrossEntropyLoss(), [F(4, 5), I(5, 4)], None, "train"),
    ("cross_entropy_smooth_ignore", lambda nn, L: nn.CrossEntropyLoss(label_smoothing=0.1, ignore_index=1),
     [F(6, 5), I(5, 6)], None, "train"),
    ("cross_entropy_weight", lambda nn, L: nn.CrossEntropyLoss(weight=L.tensor([1.0, 2.0, 0.5, 1.0, 3.0])),
     [F(6, 5), I(5, 6)], None, "train"),
    ("cross_entropy_sum_3d", lambda nn, L: nn.CrossEntropyLoss(reduction="sum"), [F(2, 5, 3), I(5, 2, 3)], None,
     "train"),
    ("cross_entropy_probs", lambda nn, L: nn.CrossEntropyLoss(), [F(4, 5), P(4, 5)], None, "train"),
    ("cross_entropy_weight_smooth_ignore", lambda nn, L: nn.CrossEntropyLoss(
        weight=L.tensor([1.0, 2.0, 0.5, 1.0, 3.0]), label_smoothing=0.2, ignore_index=2), [F(8, 5), I(5, 8)], None,
     "train"),
    ("cross_entropy_weight_smooth_none_3d", lambda nn, L: nn.CrossEntropyLoss(
        weight=L.tensor([0.3, 2.0, 1.0]), label_smoothing=0.1, ignore_index=0, reduction="none"),
     [F(2, 3, 4), I(3, 2, 4)], None, "train"),
    ("cross_entropy_probs_smooth_weight", lambda nn, L: nn.CrossEntropyLoss(
        weight=L.tensor([1.0, 2.0, 0.5, 1.0, 3.0]), label_smoothing=0.3), [F(4, 5), P(4, 5)], None, "train"),
    ("nll_ignore_sum_3d", lambda nn, L: nn.NLLLoss(ignore_index=1, reduction="sum"), [F(2, 3, 4), I(3, 2, 4)], None,
     "train"),
    ("nll", lambda nn, L: nn.NLLLoss(), [F(4, 5), I(5, 4)], None, "train"),
    ("nll_weight_none", lambda nn, L: nn.NLLLoss(weight=L.tensor([1.0, 2.0, 0.5]), reduction="none"),
     [F(4, 3), I(3, 4)], None, "train"),
    ("mse", lambda nn, L: nn.MSELoss(), [F(3, 4), C(3, 4)], None, "train"),
    ("mse_sum", lambda nn, L: nn.MSELoss(reduction="sum"), [F(3, 4), C(3, 4)], None, "train"),
    ("l1", lambda nn, L: nn.L1Loss(), [F(3, 4), C(3, 4)], None, "train"),
    ("l1_none", lambda nn, L: nn.L1Loss(reduction="none"), [F(3, 4), C(3, 4)], None, "train"),
    ("smooth_l1", lambda nn, L: nn.SmoothL1Loss(beta=0.5), [F(3, 4), C(3, 4)], None, "train"),
    ("smooth_l1_default_sum", lambda nn, L: nn.SmoothL1Loss(reduction="sum"), [F(3, 4), C(3, 4)], None, "train"),
    ("huber", lambda nn, L: nn.HuberLoss(delta=0.7), [F(3, 4), C(3, 4)], None, "train"),
    ("bce", lambda nn, L: nn.BCELoss(), [P(3, 4), P(3, 4)], lambda m, x, y: m(x.sigmoid() * 0 + x, y), "train"),
    ("bce_weight", lambda nn, L: nn.BCELoss(weight=L.tensor([1.0, 2.0, 0.5, 1.0])), [P(3, 4), P(3, 4)], None,
     "train"),
    ("bce_none", lambda nn, L: nn.BCELoss(reduction="none"), [P(3, 4), P(3, 4)], None, "train"),
    ("bce_grad", lambda nn, L: nn.BCELoss(), [F(3, 4), P(3, 4)], lambda m, x, y: m(x.sigmoid(), y), "train"),
    ("bce_weight_grad", lambda nn, L: nn.BCELoss(weight=L.tensor([1.0, 2.0, 0.5, 1.0]), reduction="sum"),
     [F(3, 4), P(3, 4)], lambda m, x, y: m(x.sigmoid(), y), "train"),
    ("bce_logits", lambda nn, L: nn.BCEWithLogitsLoss(), [F(3, 4), P(3, 4)], None, "train"),
    ("bce_logits_weight_posweight_sum", lambda nn, L: nn.BCEWithLogitsLoss(
        weight=L.tensor([[0.5], [1.0], [2.0]]), pos_weight=L.tensor([1.0, 2.0, 0.5, 3.0]), reduction="sum"),
     [F(3, 4), P(3, 4)], None, "train"),
    ("bce_logits_posweight", lambda nn, L: nn.BCEWithLogitsLoss(pos_weight=L.tensor([1.0, 2.0, 0.5, 3.0])),
     [F(3, 4), P(3, 4)], None, "train"),
    ("kldiv_batchmean", lambda nn, L: nn.KLDivLoss(reduction="batchmean"), [F(3, 4), P(3, 4)], None, "train"),
    ("kldiv_none", lambda nn, L: nn.KLDivLoss(reduction="none"), [F(3, 4), P(3, 4)], None, "train"),
    ("kldiv_logtarget", lambda nn, L: nn.KLDivLoss(reduction="sum", log_target=True), [F(3, 4), C(3, 4)], None,
     "train"),
]


def _outputs(out):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if o is not None]


def _run(lib, m, inputs, fwd):
    """Forward, then loss = sum(out_i * w_i) with fixed random weights shaped like the outputs."""
    out = fwd(m, *inputs) if fwd is not None else m(*inputs)
    outs = _outputs(out)
    rng = np.random.default_rng(2)
    weights = [rng.standard_normal(tuple(o.shape)).astype(np.float32) for o in outs]
    loss = None
    for o, w in zip(outs, weights):
        term = (o * (lib.from_numpy(w.copy()) if lib is vt else torch.from_numpy(w.copy()))).sum()
        loss = term if loss is None else loss + term
    return outs, loss


@pytest.mark.parametrize("line", LINES, ids=[line[0] for line in LINES])
def test_module_forward_backward(line):
    name, ctor, specs, fwd, mode = line
    torch.manual_seed(0)
    tm, vm = ctor(torch.nn, torch), ctor(vt.nn, vt)
    assert list(vm.state_dict().keys()) == list(tm.state_dict().keys())
    copy_weights(tm, vm)
    (tm.train if mode == "train" else tm.eval)()
    (vm.train if mode == "train" else vm.eval)()
    pairs = build_inputs(specs, seed=1)
    t_in, v_in = [p[0] for p in pairs], [p[1] for p in pairs]
    t_outs, t_loss = _run(torch, tm, t_in, fwd)
    v_outs, v_loss = _run(vt, vm, v_in, fwd)
    atol = 2e-4 if "encoder" in name or "decoder" in name or "mha" in name else 2e-5
    assert len(v_outs) == len(t_outs)
    for t, v in zip(t_outs, v_outs):
        assert tuple(v.shape) == tuple(t.shape)
        np.testing.assert_allclose(to_np(v), to_np(t), rtol=1e-4, atol=atol)
    if t_loss is not None and t_loss.requires_grad:
        t_loss.backward()
        v_loss.backward()
        for (t, v) in pairs:
            if t.requires_grad:
                np.testing.assert_allclose(to_np(v.grad), to_np(t.grad), rtol=1e-4, atol=atol)
        t_params, v_params = dict(tm.named_parameters()), dict(vm.named_parameters())
        assert list(v_params) == list(t_params)
        for k, tp in t_params.items():
            if tp.grad is None:
                assert v_params[k].grad is None, k
            else:
                np.testing.assert_allclose(to_np(v_params[k].grad), to_np(tp.grad), rtol=1e-4, atol=atol, err_msg=k)
    for (k, tb), (k2, vb) in zip(tm.state_dict().items(), vm.state_dict().items()):
        assert k == k2
        np.testing.assert_allclose(to_np(vb), to_np(tb), rtol=1e-5, atol=1e-6, err_msg=k)


def to_torch_state(vm):
    return OrderedDict((k, torch.from_numpy(to_np(v))) for k, v in vm.state_dict().items())


@pytest.mark.parametrize("line", LINES, ids=[line[0] for line in LINES])
def test_state_dict_into_torch(line):
    """The other direction: a module initialised by vibetensor loads (strict) into torch.nn's twin, which then
    computes the same outputs and buffer updates."""
    name, ctor, specs, fwd, mode = line
    vt.manual_seed(7)
    torch.manual_seed(7)
    vm, tm = ctor(vt.nn, vt), ctor(torch.nn, torch)
    assert repr(tm.load_state_dict(to_torch_state(vm))) == "<All keys matched successfully>"
    for (k, tv), (k2, vv) in zip(tm.state_dict().items(), vm.state_dict().items()):
        assert k == k2 and str(tv.dtype) == str(vv.dtype), k
        np.testing.assert_array_equal(to_np(tv), to_np(vv), err_msg=k)
    (tm.train if mode == "train" else tm.eval)()
    (vm.train if mode == "train" else vm.eval)()
    pairs = build_inputs(specs, seed=4)
    with torch.no_grad(), vt.no_grad():
        t_outs = _outputs(fwd(tm, *[p[0] for p in pairs]) if fwd else tm(*[p[0] for p in pairs]))
        v_outs = _outputs(fwd(vm, *[p[1] for p in pairs]) if fwd else vm(*[p[1] for p in pairs]))
    atol = 2e-4 if "encoder" in name or "decoder" in name or "mha" in name else 2e-5
    assert len(v_outs) == len(t_outs)
    for t, v in zip(t_outs, v_outs):
        assert tuple(v.shape) == tuple(t.shape)
        np.testing.assert_allclose(to_np(v), to_np(t), rtol=1e-4, atol=atol)
    for (k, tb), vb in zip(tm.state_dict().items(), vm.state_dict().values()):
        np.testing.assert_allclose(to_np(vb), to_np(tb), rtol=1e-5, atol=1e-6, err_msg=k)


# -- the Module API --------------------------------------------------------------------------------------------

def _net(nn):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
            self.heads = nn.ModuleList([nn.Linear(8, 3) for _ in range(2)])
            self.table = nn.ModuleDict({"emb": nn.Embedding(5, 2)})
            self.scale = nn.Parameter(torch.ones(1) if nn is torch.nn else vt.ones(1))
            self.register_buffer("steps", (torch if nn is torch.nn else vt).zeros(2))
            self.register_buffer("cache", (torch if nn is torch.nn else vt).zeros(3), persistent=False)
            self.shared = self.heads[0]

        def forward(self, x):
            return self.heads[0](self.features(x).flatten(1)[:, :8]) * self.scale
    return Net()


def test_names_match_torch():
    tm, vm = _net(torch.nn), _net(vt.nn)
    assert [n for n, _ in vm.named_parameters()] == [n for n, _ in tm.named_parameters()]
    assert [n for n, _ in vm.named_parameters(remove_duplicate=False)] == \
        [n for n, _ in tm.named_parameters(remove_duplicate=False)]
    assert [n for n, _ in vm.named_buffers()] == [n for n, _ in tm.named_buffers()]
    assert [n for n, _ in vm.named_modules()] == [n for n, _ in tm.named_modules()]
    assert [n for n, _ in vm.named_children()] == [n for n, _ in tm.named_children()]
    assert [n for n, _ in vm.named_parameters(recurse=False)] == ["scale"]
    assert list(vm.state_dict().keys()) == list(tm.state_dict().keys())
    assert list(vm.state_dict(keep_vars=True)["scale"].shape) == [1]
    assert vm.state_dict(keep_vars=True)["scale"] is vm.scale
    assert vm.state_dict()["scale"] is not vm.scale and not vm.state_dict()["scale"].requires_grad
    assert len(list(vm.parameters())) == len(list(tm.parameters()))
    assert vm.get_submodule("features.1") is vm.features[1]
    assert vm.get_parameter("heads.1.bias") is vm.heads[1].bias
    assert vm.get_buffer("features.1.running_mean") is vm.features[1].running_mean


def test_state_dict_round_trip_and_errors():
    tm, vm = _net(torch.nn), _net(vt.nn)
    copy_weights(tm, vm)
    vm2 = _net(vt.nn)
    result = vm2.load_state_dict(vm.state_dict())
    assert repr(result) == repr(tm.load_state_dict(tm.state_dict())) == "<All keys matched successfully>"
    for k, v in vm2.state_dict().items():
        np.testing.assert_array_equal(to_np(v), to_np(vm.state_dict()[k]))
    vt.manual_seed(1)
    vm3, tm3 = _net(vt.nn), _net(torch.nn)  # ours -> torch: non-persistent buffers and shared modules included
    assert repr(tm3.load_state_dict(to_torch_state(vm3))) == "<All keys matched successfully>"
    for (k, tv), vv in zip(tm3.state_dict().items(), vm3.state_dict().values()):
        np.testing.assert_array_equal(to_np(tv), to_np(vv), err_msg=k)
    # missing / unexpected / size mismatch: the same messages as torch
    for edit in (lambda sd: sd.pop("scale"), lambda sd: sd.__setitem__("extra.w", sd["scale"]),
                 lambda sd: sd.__setitem__("heads.0.bias", sd["heads.0.bias"][:2])):
        tsd, vsd = tm.state_dict(), vm.state_dict()
        edit(tsd)
        edit(vsd)
        with pytest.raises(RuntimeError) as te:
            tm.load_state_dict(tsd)
        with pytest.raises(RuntimeError) as ve:
            vm.load_state_dict(vsd)
        assert str(ve.value).replace("Net", "X") == str(te.value).replace("Net", "X")
    tsd, vsd = tm.state_dict(), vm.state_dict()
    tsd.pop("scale")
    vsd.pop("scale")
    tsd["bogus"] = tsd["steps"]
    vsd["bogus"] = vsd["steps"]
    tres, vres = tm.load_state_dict(tsd, strict=False), vm.load_state_dict(vsd, strict=False)
    assert vres.missing_keys == tres.missing_keys and vres.unexpected_keys == tres.unexpected_keys


def test_setattr_errors_and_delattr():
    for nn in (torch.nn, vt.nn):
        lib = torch if nn is torch.nn else vt
        m = nn.Linear(2, 2)
        with pytest.raises(TypeError) as e:
            m.weight = lib.zeros(2, 2)
        assert "cannot assign 'torch.FloatTensor' as parameter 'weight' (torch.nn.Parameter or None expected)" \
            in str(e.value)
        with pytest.raises(KeyError):
            m.register_buffer("weight", lib.zeros(1))
        with pytest.raises(KeyError):
            m.register_parameter("a.b", None)
        with pytest.raises(TypeError):
            m.add_module("x", 3)
        m.bias = None
        assert m.bias is None and "bias" in m._parameters
        del m.weight
        assert "weight" not in m._parameters
        with pytest.raises(AttributeError, match="'Linear' object has no attribute 'nothing'"):
            m.nothing


def test_train_eval_requires_grad_zero_grad():
    vm = _net(vt.nn)
    vm.eval()
    assert not any(m.training for m in vm.modules())
    vm.train()
    assert all(m.training for m in vm.modules())
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        vm.train("yes")
    vm(vt.randn(2, 1, 5, 5)).sum().backward()
    assert vm.heads[0].weight.grad is not None
    vm.zero_grad(set_to_none=False)
    assert float(vm.heads[0].weight.grad.abs().sum()) == 0.0
    vm.zero_grad()
    assert vm.heads[0].weight.grad is None
    vm.requires_grad_(False)
    assert not any(p.requires_grad for p in vm.parameters())


def test_to_keeps_parameter_identity():
    vm = _net(vt.nn)
    w = vm.heads[0].weight
    opt_params = list(vm.parameters())
    vm.double()
    assert vm.heads[0].weight is w and isinstance(w, vt.nn.Parameter) and w.dtype == vt.float64
    assert vm.features[1].num_batches_tracked.dtype == vt.int64  # integer buffers keep their type
    assert vm.steps.dtype == vt.float64
    vm.to(vt.float32)
    assert w.dtype == vt.float32 and list(vm.parameters())[0] is opt_params[0]
    vm.to("cpu", dtype=vt.float16)
    assert w.dtype == vt.float16
    vm.float()
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point or complex dtypes"):
        vm.to(vt.int32)
    vm(vt.randn(2, 1, 5, 5)).sum().backward()
    assert w.grad.dtype == vt.float32


def test_apply_and_hooks():
    calls = []
    for nn, lib in ((torch.nn, torch), (vt.nn, vt)):
        m = nn.Linear(3, 2)
        log = []
        h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
        h2 = m.register_forward_hook(lambda mod, args, out: out + 1)
        x = lib.ones(1, 3)
        with lib.no_grad():
            m.weight.fill_(1.0)
            m.bias.fill_(0.0)
        log.append(m(x).tolist())
        h1.remove()
        log.append(m(x).tolist())
        h2.remove()
        log.append(m(x).tolist())
        m.register_forward_pre_hook(lambda mod, args, kwargs: ((args[0] * 3,), kwargs), with_kwargs=True)
        log.append(m(x).tolist())
        m.apply(lambda mod: log.append(type(mod).__name__))
        calls.append(log)
    assert calls[0] == calls[1]


def test_full_backward_hook():
    results = []
    for nn, lib in ((torch.nn, torch), (vt.nn, vt)):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        if lib is vt:
            copy_weights(tm, m)
        else:
            tm = m
        seen = []

        def hook(mod, grad_input, grad_output):
            seen.append(([g.tolist() if g is not None else None for g in grad_input],
                         [g.tolist() for g in grad_output]))
            return (grad_input[0] * 2,)
        m[1].register_full_backward_hook(hook)
        x = lib.from_numpy(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)).requires_grad_(True)
        m(x).sum().backward()
        results.append((seen, x.grad.tolist()))
    (ts, tg), (vs, vg) = results
    np.testing.assert_allclose(np.array(vs[0][0][0]), np.array(ts[0][0][0]), rtol=1e-5)
    np.testing.assert_allclose(np.array(vs[0][1][0]), np.array(ts[0][1][0]), rtol=1e-5)
    np.testing.assert_allclose(np.array(vg), np.array(tg), rtol=1e-5)


def _reprs(nn, lib):
    return [
        nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Dropout(0.1), nn.LayerNorm(8), nn.GELU("tanh"),
                      nn.Softmax(dim=-1), nn.LeakyReLU(0.2), nn.ELU(), nn.Softplus(), nn.Embedding(5, 3, padding_idx=1),
                      nn.Flatten(), nn.Unflatten(1, (2, 4)), nn.Identity()),
        nn.Sequential(OrderedDict([("conv", nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)),
                                   ("bn", nn.BatchNorm2d(8)), ("pool", nn.MaxPool2d(2)), ("avg", nn.AvgPool2d(2)),
                                   ("ad", nn.AdaptiveAvgPool2d((1, 1))), ("gn", nn.GroupNorm(2, 8)),
                                   ("ct", nn.ConvTranspose2d(8, 4, 3, stride=2, output_padding=1)),
                                   ("c1", nn.Conv1d(2, 2, 3, padding="same", padding_mode="circular")),
                                   ("rms", nn.RMSNorm(4))])),
        nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU()]),
        nn.ParameterList([nn.Parameter(lib.zeros(2, 3)), nn.Parameter(lib.zeros(4))]),
        nn.ParameterDict({"a": nn.Parameter(lib.zeros(2))}),
        nn.TransformerEncoderLayer(8, 2, 16),
        nn.TransformerDecoderLayer(8, 2, 16),
        nn.CrossEntropyLoss(),
    ]


def test_repr_matches_torch():
    for t, v in zip(_reprs(torch.nn, torch), _reprs(vt.nn, vt)):
        assert repr(v) == repr(t)
    p_t = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    p_v = vt.nn.Parameter(vt.tensor([1.0, 2.0]))
    assert repr(p_v) == repr(p_t)
    assert isinstance(p_v, vt.nn.Parameter) and isinstance(p_v, vt.Tensor) and p_v.requires_grad


def test_containers():
    for nn, lib in ((torch.nn, torch), (vt.nn, vt)):
        s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        assert len(s) == 3 and isinstance(s[-1], nn.Linear) and isinstance(s[1:], nn.Sequential) and len(s[1:]) == 2
        s.append(nn.Tanh())
        del s[0]
        assert [type(m).__name__ for m in s] == ["ReLU", "Linear", "Tanh"]
        assert list(s._modules) == ["0", "1", "2"]
        with pytest.raises(IndexError):
            s[5]
        ml = nn.ModuleList([nn.Linear(1, 1)])
        ml.extend([nn.ReLU(), nn.Tanh()])
        ml.insert(1, nn.Sigmoid())
        assert [type(m).__name__ for m in ml] == ["Linear", "Sigmoid", "ReLU", "Tanh"]
        assert len(ml[1:3]) == 2
        md = nn.ModuleDict({"b": nn.ReLU(), "a": nn.Tanh()})
        md["c"] = nn.Sigmoid()
        assert list(md.keys()) == ["b", "a", "c"] and "a" in md and len(md) == 3
        md.pop("b")
        assert list(md) == ["a", "c"]
        pl = nn.ParameterList([lib.zeros(2), nn.Parameter(lib.ones(3))])
        assert isinstance(pl[0], nn.Parameter) and len(pl) == 2
        pl.append(lib.zeros(1))
        assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2"]
        pd = nn.ParameterDict({"x": lib.zeros(2)})
        pd["y"] = lib.ones(1)
        assert isinstance(pd["y"], nn.Parameter) and list(pd.keys()) == ["x", "y"]
        assert [n for n, _ in pd.named_parameters()] == ["x", "y"]


def test_deepcopy_module():
    m = vt.nn.Linear(3, 2)
    m2 = copy.deepcopy(m)
    assert m2.weight is not m.weight and isinstance(m2.weight, vt.nn.Parameter)
    np.testing.assert_array_equal(to_np(m2.weight), to_np(m.weight))
    with vt.no_grad():
        m2.weight.fill_(0)
    assert float(m.weight.abs().sum()) > 0


def test_module_errors_match_torch():
    cases = [
        lambda nn, L: nn.Conv2d(3, 4, 3, groups=2),
        lambda nn, L: nn.Conv2d(3, 3, 3, padding="full"),
        lambda nn, L: nn.Conv2d(3, 3, 3, stride=2, padding="same"),
        lambda nn, L: nn.Dropout(1.5),
        lambda nn, L: nn.BatchNorm2d(3)(L.zeros(2, 3)),
        lambda nn, L: nn.BatchNorm1d(3)(L.zeros(2, 3, 4, 5)),
        lambda nn, L: nn.GroupNorm(3, 4),
        lambda nn, L: nn.Linear(2, 2)(L.zeros(3, 3)),
    ]
    for case in cases:
        with pytest.raises(Exception) as te:
            case(torch.nn, torch)
        with pytest.raises(Exception) as ve:
            case(vt.nn, vt)
        assert type(ve.value) is type(te.value), (ve.value, te.value)
        if isinstance(te.value, ValueError):
            assert str(ve.value) == str(te.value)


# -- nn.init ---------------------------------------------------------------------------------------------------

def test_calculate_gain():
    for args in [("linear",), ("conv2d",), ("sigmoid",), ("tanh",), ("relu",), ("leaky_relu",), ("leaky_relu", 0.2),
                 ("selu",)]:
        assert vt.nn.init.calculate_gain(*args) == torch.nn.init.calculate_gain(*args)
    for args in [("swish",), ("leaky_relu", "x")]:
        with pytest.raises(ValueError) as te:
            torch.nn.init.calculate_gain(*args)
        with pytest.raises(ValueError) as ve:
            vt.nn.init.calculate_gain(*args)
        assert str(ve.value) == str(te.value)


def _uniform_std(bound):
    return lambda fi, fo: bound(fi, fo) / math.sqrt(3.0)


def _trunc_normal_moments(mean, std, a, b):
    """Mean and standard deviation of N(mean, std^2) truncated to [a, b]."""
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    z = cdf(beta) - cdf(alpha)
    shift = (pdf(alpha) - pdf(beta)) / z
    var = 1 + (alpha * pdf(alpha) - beta * pdf(beta)) / z - shift ** 2
    return mean + std * shift, std * math.sqrt(var)


XAVIER_U = lambda fi, fo: 2.0 * math.sqrt(6.0 / (fi + fo))  # noqa: E731
KAIMING_U = lambda fi, fo: math.sqrt(6 / (1 + 5) / fi)  # noqa: E731
KAIMING_U_OUT = lambda fi, fo: math.sqrt(6.0 / fo)  # noqa: E731
TN1, TN2 = _trunc_normal_moments(0.0, 0.02, -0.04, 0.04), _trunc_normal_moments(0.5, 1.0, 0.0, 2.0)
# (fn, kwargs, shape, (low, high) bounds(fan_in, fan_out) or None, mean, std(fan_in, fan_out))
INITS = [
    ("uniform_", {"a": -0.3, "b": 0.5}, (200, 100), lambda fi, fo: (-0.3, 0.5), 0.1, lambda fi, fo: 0.8 / math.sqrt(12)),
    ("normal_", {"mean": 1.0, "std": 0.5}, (200, 100), None, 1.0, lambda fi, fo: 0.5),
    ("xavier_uniform_", {"gain": 2.0}, (200, 100), lambda fi, fo: (-XAVIER_U(fi, fo), XAVIER_U(fi, fo)), 0.0,
     _uniform_std(XAVIER_U)),
    ("xavier_normal_", {}, (200, 100), None, 0.0, lambda fi, fo: math.sqrt(2.0 / (fi + fo))),
    ("kaiming_uniform_", {"a": math.sqrt(5)}, (200, 100), lambda fi, fo: (-KAIMING_U(fi, fo), KAIMING_U(fi, fo)), 0.0,
     _uniform_std(KAIMING_U)),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}, (50, 20, 3, 3),
     lambda fi, fo: (-KAIMING_U_OUT(fi, fo), KAIMING_U_OUT(fi, fo)), 0.0, _uniform_std(KAIMING_U_OUT)),
    ("kaiming_normal_", {"nonlinearity": "relu"}, (200, 100), None, 0.0, lambda fi, fo: math.sqrt(2.0 / fi)),
    ("kaiming_normal_", {"a": 0.2, "mode": "fan_out", "nonlinearity": "leaky_relu"}, (50, 20, 3, 3), None, 0.0,
     lambda fi, fo: math.sqrt(2.0 / (1 + 0.04) / fo)),
    ("trunc_normal_", {"std": 0.02, "a": -0.04, "b": 0.04}, (200, 100), lambda fi, fo: (-0.04, 0.04), TN1[0],
     lambda fi, fo: TN1[1]),
    ("trunc_normal_", {"mean": 0.5, "std": 1.0, "a": 0.0, "b": 2.0}, (200, 100), lambda fi, fo: (0.0, 2.0), TN2[0],
     lambda fi, fo: TN2[1]),
]


@pytest.mark.parametrize("case", INITS, ids=[c[0] + str(i) for i, c in enumerate(INITS)])
def test_init_distributions(case):
    """Shape kept, reproducible under manual_seed, samples within the bounds (reaching them), mean and
    standard deviation those of the distribution (20000 samples: 5 % on std, 4 standard errors on the mean)."""
    name, kw, shape, bounds, mean, std = case
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    vt.manual_seed(3)
    x = vt.empty(shape)
    assert getattr(vt.nn.init, name)(x, **kw) is x and tuple(x.shape) == shape and x.dtype == vt.float32
    a = to_np(x).astype(np.float64)
    vt.manual_seed(3)
    np.testing.assert_array_equal(to_np(getattr(vt.nn.init, name)(vt.empty(shape), **kw)), a)
    if bounds is not None:
        low, high = bounds(fan_in, fan_out)
        width = high - low
        assert a.min() >= low - 1e-6 * width and a.max() <= high + 1e-6 * width
        assert a.min() < low + 0.01 * width and a.max() > high - 0.01 * width
    sigma = std(fan_in, fan_out)
    assert abs(a.std() - sigma) < 0.05 * sigma
    assert abs(a.mean() - mean) < 4 * sigma / math.sqrt(a.size)


def test_init_deterministic_and_errors():
    e = to_np(vt.nn.init.eye_(vt.empty(3, 5)))
    np.testing.assert_array_equal(e, np.eye(3, 5))
    d_t = torch.nn.init.dirac_(torch.empty(4, 2, 3, 3), groups=2)
    d_v = vt.nn.init.dirac_(vt.empty(4, 2, 3, 3), groups=2)
    np.testing.assert_array_equal(to_np(d_v), to_np(d_t))
    np.testing.assert_array_equal(to_np(vt.nn.init.constant_(vt.empty(2, 2), 0.3)), np.full((2, 2), 0.3, np.float32))
    assert float(vt.nn.init.ones_(vt.empty(3)).sum()) == 3.0 and float(vt.nn.init.zeros_(vt.ones(3)).sum()) == 0.0
    for shape in [(6, 4), (4, 6), (3, 2, 2)]:
        q = to_np(vt.nn.init.orthogonal_(vt.empty(shape), gain=2.0)).reshape(shape[0], -1).astype(np.float64)
        small = q @ q.T if shape[0] <= q.shape[1] else q.T @ q
        np.testing.assert_allclose(small, 4.0 * np.eye(small.shape[0]), atol=1e-5)
    p = vt.nn.Parameter(vt.empty(3, 4))
    vt.nn.init.xavier_uniform_(p)
    assert p.grad_fn is None and p.requires_grad
    for fn, args in [("xavier_uniform_", ((3,),)), ("kaiming_normal_", ((3, 4),), ), ("eye_", ((2, 2, 2),)),
                     ("orthogonal_", ((3,),)), ("dirac_", ((3, 3),))]:
        kw = {"mode": "fan_avg"} if fn == "kaiming_normal_" else {}
        with pytest.raises(ValueError) as te:
            getattr(torch.nn.init, fn)(torch.empty(*args[0]), **kw)
        with pytest.raises(ValueError) as ve:
            getattr(vt.nn.init, fn)(vt.empty(*args[0]), **kw)
        assert str(ve.value) == str(te.value)


def test_default_init_ranges():
    vt.manual_seed(0)
    lin = vt.nn.Linear(64, 32)
    bound = 1 / math.sqrt(64)
    w, b = to_np(lin.weight), to_np(lin.bias)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound and np.abs(b).max() <= bound
    emb = vt.nn.Embedding(100, 50, padding_idx=3)
    e = to_np(emb.weight)
    assert abs(e.std() - 1.0) < 0.05 and not e[3].any()
    conv = vt.nn.Conv2d(4, 8, 3)
    assert np.abs(to_np(conv.weight)).max() <= 1 / math.sqrt(36)
    mha = vt.nn.MultiheadAttention(8, 2)
    assert not to_np(mha.in_proj_bias).any() and not to_np(mha.out_proj.bias).any()
