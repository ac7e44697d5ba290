"""Identity, Linear, Bilinear (torch's default initialisation: kaiming_uniform_(a=sqrt(5)))."""
import math

import vibetensor.torch as torch
from vibetensor.torch.nn import functional as F
from vibetensor.torch.nn import init
from vibetensor.torch.nn.modules.module import Module
from vibetensor.torch.nn.parameter import Parameter

__all__ = ["Identity", "Linear", "Bilinear"]


def _weight_and_bias(module, weight_shape, out_features, bias, device, dtype):
    """module.weight of weight_shape and module.bias of (out_features,) or None, left for
    reset_parameters to fill (Linear, Bilinear, Conv)."""
    module.weight = Parameter(torch.empty(weight_shape, device=device, dtype=dtype))
    if bias:
        module.bias = Parameter(torch.empty(out_features, device=device, dtype=dtype))
    else:
        module.register_parameter("bias", None)


def _kaiming_reset(weight, bias, skip_empty_bias=False):
    """torch's default Linear/Conv initialisation: weight kaiming_uniform_(a=sqrt(5)), bias uniform in
    +-1/sqrt(fan_in). With fan_in 0, Linear draws the bias from [0, 0]; Conv (skip_empty_bias) leaves it."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        if fan_in != 0 or not skip_empty_bias:
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(bias, -bound, bound)


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        _weight_and_bias(self, (out_features, in_features), out_features, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self):
        _kaiming_reset(self.weight, self.bias)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class NonDynamicallyQuantizableLinear(Linear):
    pass


class Bilinear(Module):
    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        _weight_and_bias(self, (out_features, in1_features, in2_features), out_features, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.weight.size(1))
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        # y[..., o] = sum_ij x1[..., i] W[o, i, j] x2[..., j] + b[o]
        t = torch.matmul(input1.unsqueeze(-2).unsqueeze(-3), self.weight).squeeze(-2)  # (..., o, j)
        y = (t * input2.unsqueeze(-2)).sum(-1)  # (..., o)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")
