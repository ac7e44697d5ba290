"""torch.optim.Optimizer: parameter groups, per-parameter state, torch's state_dict format
(parameters named by integer position across groups)."""
import warnings
from collections import OrderedDict, defaultdict
from copy import deepcopy
from itertools import chain

from vibetensor.autograd.grad_mode import enable_grad, no_grad
from vibetensor.autograd.graph import GRAD
from vibetensor.tensor.tensor import Tensor

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()


def _typename(obj):
    from vibetensor.torch.nn.modules.module import typename
    return typename(obj)


_get_grad_slot, _set_grad_slot = GRAD.__get__, GRAD.__set__  # .grad's raw slot (an unset one raises)


def with_grads(params):
    """(the params whose .grad is not None, their grads). Reads the raw slot: the .grad property's
    checks cost more than the read, and are needed only where the slot is empty (the property
    warns for a non-leaf tensor, as torch; it is asked then)."""
    ps, gs = [], []
    for p in params:
        try:
            g = _get_grad_slot(p)
        except (AttributeError, TypeError):  # unset slot; not a tensor (p.grad below raises as torch)
            g = None
        if g is None and p.grad is None:  # (always None then: the property reads the same slot)
            continue
        ps.append(p)
        gs.append(g)
    return ps, gs


def _step_value(step_t):
    """The step count for the bias corrections: a host float on CPU (free), the tensor elsewhere
    (so the step stays asynchronous)."""
    return float(step_t.item()) if step_t.device.type == "cpu" else step_t


class Optimizer:
    def __init__(self, params, defaults):
        self.defaults = defaults
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, but "
                            "got " + _typename(params))
        self.state = defaultdict(dict)
        self._lists = {}  # tuple(params) -> per-role state lists of the multi-tensor paths
        self.param_groups = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__["_lists"] = {}
        self.__dict__.setdefault("_optimizer_step_pre_hooks", OrderedDict())
        self.__dict__.setdefault("_optimizer_step_post_hooks", OrderedDict())

    def __repr__(self):
        s = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            s += f"\nParameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    s += f"    {key}: {group[key]}\n"
        return s + ")"

    def add_param_group(self, param_group):
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of "
                            "tensors in sets will change between runs. Please use a list instead.")
        else:
            param_group["params"] = list(params)
        for param in param_group["params"]:
            if not isinstance(param, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is " + _typename(param))
            if not self.defaults.get("differentiable", None) and not (param.is_leaf or param._retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            param_group.setdefault(name, default)
        params = param_group["params"]
        if len(params) != len({id(p) for p in params}):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this will "
                          "cause an error; see github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)
        seen = {id(p) for group in self.param_groups for p in group["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none=True):
        if set_to_none:  # the raw slot: None needs none of the .grad setter's checks
            for group in self.param_groups:
                for p in group["params"]:
                    _set_grad_slot(p, None)
            return
        from vibetensor.torch.nn.modules.module import _zero_grads
        _zero_grads(chain.from_iterable(group["params"] for group in self.param_groups), set_to_none)

    # -- step -------------------------------------------------------------------------------------

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for hook in list(self._optimizer_step_pre_hooks.values()):
            res = hook(self, (), {})
            if res is not None:
                raise RuntimeError(f"{hook} must return None or a tuple of (new_args, new_kwargs), but got {res}.")
        with no_grad():
            for group in self.param_groups:
                params = with_grads(group["params"])[0]
                if params:
                    self._update_group(group, params)
        for hook in list(self._optimizer_step_post_hooks.values()):
            hook(self, (), {})
        return loss

    def _update_group(self, group, params):
        raise NotImplementedError(f"{type(self).__name__} does not implement step")

    def _state_lists(self, params, roles, init):
        """[state[p][role] for p in params] per role, cached per parameter tuple: the state tensors are
        the optimiser's own and keep their identity from step to step (load_state_dict resets)."""
        key = (tuple(params), roles)
        lists = self._lists.get(key)
        if lists is None:
            states = []
            for p in params:
                st = self.state[p]
                if not st:
                    init(p, st)
                states.append(st)
            lists = self._lists[key] = tuple([st.get(r) for st in states] for r in roles)
            if len(self._lists) > 64:
                self._lists.clear()
        return lists

    def register_step_pre_hook(self, hook):
        from vibetensor.torch.nn.modules.module import _add_hook
        return _add_hook(self._optimizer_step_pre_hooks, hook)

    def register_step_post_hook(self, hook):
        from vibetensor.torch.nn.modules.module import _add_hook
        return _add_hook(self._optimizer_step_post_hooks, hook)

    # -- state_dict -------------------------------------------------------------------------------

    def state_dict(self):
        param_mappings = {}
        start_index = 0

        def pack_group(group):
            nonlocal start_index
            packed = {k: v for k, v in group.items() if k != "params"}
            param_mappings.update({id(p): i for i, p in enumerate(group["params"], start_index)
                                   if id(p) not in param_mappings})
            packed["params"] = [param_mappings[id(p)] for p in group["params"]]
            start_index += len(packed["params"])
            return packed

        param_groups = [pack_group(g) for g in self.param_groups]
        packed_state = {(param_mappings[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        return {"state": packed_state, "param_groups": param_groups}

    @staticmethod
    def _cast(param, value, key=None):
        """State loaded for `param` moves to its device; float state takes its dtype (not 'step')."""
        if isinstance(value, Tensor):
            if key == "step":
                return value
            if param.dtype.is_floating_point:
                return value.to(dtype=param.dtype, device=param.device)
            return value.to(device=param.device)
        if isinstance(value, dict):
            return {k: Optimizer._cast(param, v, key=k) for k, v in value.items()}
        return value

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match the size of optimizer's "
                             "group")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))
        state = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = self._cast(param, v)
            else:
                state[k] = v
        new_groups = []
        for group, new_group in zip(groups, saved_groups):
            new_group["params"] = group["params"]
            if "param_names" in group and "param_names" not in new_group:
                new_group["param_names"] = group["param_names"]
            new_groups.append(new_group)
        self.__setstate__({"state": state, "param_groups": new_groups})


# -- the multi-tensor paths (shared by the optimisers) ------------------------------------------------

FUSED_DEVICES = ("cuda", "cpu")


def _implementation(group, params, has_fused):
    """'fused', 'foreach' or 'single' for one step of a group, as torch chooses, except that on
    CUDA the default (foreach=None, fused=None) is the fused multi-tensor kernel where the
    optimiser has one: a constant number of launches for any number of parameters. Capturable
    CUDA steps take it too (their step counts and lr are read on the device)."""
    if group.get("fused"):
        return "fused"
    if group.get("differentiable"):
        return "single"
    on_cuda = params[0]._device.type == "cuda"
    if on_cuda and has_fused and group.get("capturable"):
        return "fused"
    foreach = group.get("foreach")
    if foreach:
        return "foreach"
    if on_cuda and foreach is None:
        return "fused" if has_fused and group.get("fused") is None else "foreach"
    return "single"


def _check_fused_params(params):
    for p in params:
        if p._device.type not in FUSED_DEVICES or not p.dtype.is_floating_point:
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported "
                               f"devices: {list(FUSED_DEVICES)} but {p.dtype} and {p._device.type}")


def _check_tensor_lr(lr, foreach, capturable):
    if isinstance(lr, Tensor):
        if foreach and not capturable:
            raise ValueError("lr as a Tensor is not supported for capturable=False and foreach=True")
        if lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")


def _host_value(x):
    """A CPU tensor's value as a Python number (free); anything else as given."""
    return x.item() if isinstance(x, Tensor) and x._device.type == "cpu" else x


def _check(cond, message):
    if not cond:
        raise ValueError(message)


def _grad(p, maximize):
    return -p.grad if maximize else p.grad
