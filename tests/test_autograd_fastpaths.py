"""The autograd host fast paths give what the slow paths give: a view op's gradient made as a direct
alias (derivatives._VIEW_GRADS) equals its formula's result (values, geometry, shared memory, view
bookkeeping, errors), and the formula still runs where a graph is built or op calls are watched; the
engine's and node-making fast paths (validation, flattening, nodes made without __init__, recorded
views, AccumulateGrad, remembered geometry) equal their general paths, and cases that must leave them do."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from vibetensor import dispatch
from vibetensor.autograd import derivatives as D
from vibetensor.autograd import engine as E
from vibetensor.autograd.graph import AccumulateGrad
from vibetensor.dispatch import DispatchKey

G = np.arange(24, dtype=np.float32)


def _grad(shape, layout):
    """A gradient of `shape` laid out as asked: contiguous, transposed (reversed strides) or at an offset."""
    n = int(np.prod(shape))
    if layout == "transposed":
        return vt.tensor(G[:n].copy()).view(shape[::-1]).permute(tuple(range(len(shape)))[::-1])
    if layout == "offset":
        return vt.tensor(np.arange(n + 6, dtype=np.float32))[6:].view(shape)
    return vt.tensor(G[:n].copy()).view(shape)


# (forward on a leaf x of x_shape, the gradient's shape, its layout, the node's name)
CASES = [
    (lambda x: x.view(24), (2, 3, 4), (24,), "contiguous", "ViewBackward0"),
    (lambda x: x.view(6, 4), (2, 3, 4), (6, 4), "offset", "ViewBackward0"),
    (lambda x: x.view(4, 6), (24,), (4, 6), "transposed", "ViewBackward0"),            # no view: the formula copies
    (lambda x: x.view(2, 12), (2, 3, 4), (2, 12), "transposed", "ViewBackward0"),     # a view of a transposed grad
    (lambda x: x.view(()), (1,), (), "contiguous", "ViewBackward0"),
    (lambda x: x.t().reshape(24), (4, 6), (24,), "contiguous", "UnsafeViewBackward0"),
    (lambda x: x.transpose(0, 2), (2, 3, 4), (4, 3, 2), "contiguous", "TransposeBackward0"),
    (lambda x: x.transpose(-1, 1), (2, 3, 4), (2, 4, 3), "transposed", "TransposeBackward0"),
    (lambda x: x.transpose(1, 1), (2, 3, 4), (2, 3, 4), "offset", "TransposeBackward0"),
    (lambda x: x.permute(2, 0, 1), (2, 3, 4), (4, 2, 3), "contiguous", "PermuteBackward0"),
    (lambda x: x.permute(-1, 0, -2), (2, 3, 4), (4, 2, 3), "transposed", "PermuteBackward0"),
    (lambda x: x.T, (4, 6), (6, 4), "offset", "PermuteBackward0"),
    (lambda x: x.permute(()), (), (), "contiguous", "PermuteBackward0"),
    (lambda x: x.t(), (4, 6), (6, 4), "transposed", "TBackward0"),
    (lambda x: x.t(), (24,), (24,), "contiguous", "TBackward0"),
    (lambda x: x.t(), (), (), "contiguous", "TBackward0"),
]


def _node(fwd, x_shape):
    x = vt.zeros(x_shape, requires_grad=True)
    return fwd(x).grad_fn


def _describe(t):
    info = t._view_info
    return (tuple(t.shape), t.stride(), t.storage_offset(), t.tolist(), t._base is not None,
            None if info is None else (info.creation_meta, info.view_fn))


@pytest.mark.parametrize("fwd, x_shape, g_shape, layout, name", CASES)
def test_view_grad_equals_formula(fwd, x_shape, g_shape, layout, name):
    node = _node(fwd, x_shape)
    assert node.name() == name
    g = _grad(g_shape, layout)
    with vt.no_grad():
        fast = node.apply([g])[0]
        slow = node._spec.formula(node, g, *node._args)
    assert node._spec.view_grad is not None
    assert _describe(fast) == _describe(slow)
    assert (fast._storage is g._storage) == (slow._storage is g._storage)
    assert fast._version is slow._version or fast._storage is not g._storage


def test_view_grad_of_a_no_grad_view_keeps_its_creation_meta():
    node = _node(lambda x: x.view(6, 4), (2, 3, 4))
    with vt.inference_mode():
        g = vt.ones(24).view(6, 4)   # a view made in inference mode: its views stay marked so
        fast = node.apply([g])[0]
        slow = node._spec.formula(node, g, *node._args)
    assert _describe(fast) == _describe(slow)


@pytest.mark.parametrize("fwd, x_shape, bad_shape", [
    (lambda x: x.view(24), (2, 3, 4), (23,)),
    (lambda x: x.view(2), (2,), ()),
    (lambda x: x.transpose(0, 2), (2, 3, 4), (3, 4)),
    (lambda x: x.t(), (4, 6), (2, 3, 4)),
    (lambda x: x.permute(1, 0), (4, 6), (24,)),
])
def test_view_grad_of_a_misfit_gradient_raises_the_formulas_error(fwd, x_shape, bad_shape):
    node = _node(fwd, x_shape)
    g = vt.ones(bad_shape)
    with vt.no_grad():
        with pytest.raises(Exception) as fast:
            node.apply([g])
        with pytest.raises(Exception) as slow:
            node._spec.formula(node, g, *node._args)
    assert type(fast.value) is type(slow.value) and str(fast.value) == str(slow.value)


def test_view_backward_through_a_hook_that_changes_the_gradient():
    def f(lib):
        x = lib.arange(12.0).reshape(3, 4).requires_grad_()
        y = x.t().reshape(12).view(2, 6)
        y.register_hook(lambda g: g * 2)
        (y * lib.arange(12.0).view(2, 6)).sum().backward()
        return x.grad
    np.testing.assert_array_equal(f(vt).numpy(), f(torch).numpy())


def test_view_backward_create_graph_builds_the_graph():
    def f(lib):
        x = lib.arange(6.0).reshape(2, 3).requires_grad_()
        y = (x.t().reshape(6) ** 2).sum()
        (g,) = lib.autograd.grad(y, x, create_graph=True)
        assert g.requires_grad
        (gg,) = lib.autograd.grad(g.sum(), x)
        return g.detach(), gg
    (g, gg), (tg, tgg) = f(vt), f(torch)
    np.testing.assert_array_equal(g.numpy(), tg.numpy())
    np.testing.assert_array_equal(gg.numpy(), tgg.numpy())


def test_view_backward_runs_through_the_dispatcher_while_a_wrapper_watches():
    """A profiler-like wrapper key sees the view ops of backward (the formula path runs)."""
    seen = []

    def watch(op, args, kwargs):
        seen.append(op.name)
        return op.redispatch(DispatchKey.Autograd if dispatch.local.grad_enabled and any(
            isinstance(a, vt.Tensor) and a.requires_grad for a in args) else None, *args, **kwargs)
    x = vt.ones(2, 3, requires_grad=True)
    y = x.view(6).t()
    loss = y.sum()
    old = dispatch.dispatcher._fallbacks.get(DispatchKey.Profiler)
    dispatch.register_fallback(DispatchKey.Profiler, watch)
    dispatch.set_wrapper_active(DispatchKey.Profiler, True)
    try:
        loss.backward()
    finally:
        dispatch.set_wrapper_active(DispatchKey.Profiler, False)
        if old is None:
            dispatch.dispatcher._fallbacks.pop(DispatchKey.Profiler, None)
        else:
            dispatch.register_fallback(DispatchKey.Profiler, old)
    assert "vt::t" in seen and "vt::reshape" in seen and "vt::view" in seen
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, 3), np.float32))


# -- the engine and node-making fast paths (session 5): each gives what its general path gives ----------


def _mul_node():
    """MulBackward0 of a (2, 3) float32 leaf times a (3,) float64 constant: one edge, one no-edge input."""
    return (vt.ones(2, 3, requires_grad=True) * vt.ones(3, dtype=vt.float64)).grad_fn


F32, F64 = vt.float32, vt.float64
# gradients for the mul node's two inputs -> what validate_outputs makes of each (None: dropped)
VALIDATE_CASES = [
    ((lambda: vt.ones(2, 3), lambda: None), ((2, 3), F32), None),                     # fits: the fast path
    ((lambda: vt.ones(2, 3), lambda: vt.ones(3, dtype=F64)), ((2, 3), F32), None),    # no edge: dropped
    ((lambda: vt.ones(4, 2, 3), lambda: None), ((2, 3), F32), None),                  # broadcast: summed
    ((lambda: vt.ones(1, 3), lambda: None), ((2, 3), F32), "invalid gradient"),       # misfit shape
    ((lambda: vt.ones(2, 3, dtype=F64), lambda: None), ((2, 3), F32), None),          # cast to the input's
    ((lambda: vt.nn.Parameter(vt.ones(2, 3), False), lambda: None), ((2, 3), F32), None),  # subclass: slow path
    ((lambda: 1.0, lambda: None), None, "expected a Tensor"),
]


@pytest.mark.parametrize("makers, expect, error", VALIDATE_CASES)
def test_validate_outputs_fast_path_equals_per_gradient_checks(makers, expect, error):
    node = _mul_node()
    outs = [m() for m in makers]
    before = list(outs)
    if error:
        with pytest.raises((RuntimeError, TypeError), match=error):
            E.validate_outputs(node, outs)
        return
    got = E.validate_outputs(node, outs)
    assert all(a is b for a, b in zip(outs, before))  # outs itself is never changed
    slow = [None if g is None else E._validate_output(node, i, g, node._in_meta[i], node.next_functions[i][0])
            for i, g in enumerate(outs)]
    fits = outs[0].__class__ is vt.Tensor and outs[0].shape == (2, 3) and outs[0].dtype == F32 and outs[1] is None
    assert (got is outs) == fits  # all fit: outs comes back as it is, else a corrected copy
    for g, s in zip(got, slow):
        assert (g is None) == (s is None)
        if g is not None:
            assert (tuple(g.shape), g.dtype) == (tuple(s.shape), s.dtype) == expect
            np.testing.assert_array_equal(g.numpy(), s.numpy())
    with pytest.raises(RuntimeError, match="incorrect number of gradients"):
        E.validate_outputs(node, outs[:1])


@pytest.mark.parametrize("layout, res", [
    ((True,), "g"), ((True, None), ("g0", None)), ((True, None, None), "g"),
    ((True, True, None), ("g0", "g1", "x")), ((True, True, None), ("g0",)),           # short: padded with None
    ((True, None, True, True, None), ("g0", None, "g2", "g3", None)),                   # tensors after a number
    ((True, (True, False, True)), ("g0", ("l0", None, "l2"))), ((None, (True,)), (None, None)),
])
def test_flatten_fast_path_equals_argument_by_argument(layout, res):
    assert list(D._flatten(layout, res)) == D._flatten_each(layout, res if type(res) is tuple else (res,))


def _all_slots(node):
    return [s for cls in type(node).__mro__ for s in getattr(cls, "__slots__", ()) if s != "__weakref__"]


@pytest.mark.parametrize("make", [
    lambda x: x * 2, lambda x: x.view(6), lambda x: x.t(), lambda x: x.split(1), lambda x: vt.cat([x, x]),
    lambda x: vt.nn.functional.layer_norm(x, (3,)), lambda x: (x * 1).mul_(2), lambda x: (x * 1)[0].mul_(2),
])
def test_nodes_made_without_init_have_every_slot_set(make):
    x = vt.ones(2, 3, requires_grad=True)
    out = make(x)
    node = (out[0] if isinstance(out, tuple) else out).grad_fn
    for name in _all_slots(node):
        getattr(node, name)  # AttributeError if a slot was left unset
    inner = getattr(node, "_fn", None)  # CopySlices wraps the op's node
    leaf = x.grad_fn if x.grad_fn is not None else (x * 1).grad_fn.next_functions[0][0]
    assert type(leaf) is AccumulateGrad
    for n in [leaf] + ([inner] if inner is not None else []):
        for name in _all_slots(n):
            getattr(n, name)


def _view_meta(t):
    info = t._view_info
    return None if info is None else (info.attr_version, info.creation_meta, info.view_fn)


# (the parent, from a leaf x; the recorded view op on it; how record_view would be told it was made)
VIEW_CASES = [
    (lambda x: x, lambda p: p.view(6), "DEFAULT"),                       # a view of a leaf
    (lambda x: x.view(6).view(2, 3), lambda p: p.t(), "DEFAULT"),        # a view of views
    (lambda x: x * 1, lambda p: p.view(6), "DEFAULT"),                   # a view of a non-leaf
    (lambda x: x.detach().requires_grad_(), lambda p: p.view(3, 2), "DEFAULT"),
    (lambda x: x, lambda p: p.split(1)[0], "MULTI_OUTPUT_NODE"),         # several outputs: the general path
]


@pytest.mark.parametrize("make_parent, view_op, how", VIEW_CASES)
def test_recorded_views_get_the_view_info_record_view_gives(make_parent, view_op, how):
    from vibetensor.autograd import view_history as VH
    from vibetensor.autograd.graph import alias_of
    x = vt.ones(2, 3, requires_grad=True)
    with vt.no_grad():
        nograd_parent = make_parent(x).view(6).view(2, 3)  # views of it stay marked NO_GRAD_MODE
    for parent in (make_parent(x),) + ((nograd_parent,) if nograd_parent.requires_grad else ()):
        v = view_op(parent)
        assert v.grad_fn is not None and v._base is not None
        twin = alias_of(v)
        VH.record_view(twin, parent, getattr(VH, how))
        assert _view_meta(v) == _view_meta(twin)


def test_a_stale_view_input_regenerates_its_edge():
    def f(lib):
        x = lib.ones(2, 3, requires_grad=True)
        b = x * 1
        v = b[0]
        b.mul_(2)          # v's grad_fn is stale now: the edge must come from the regenerated history
        (v * lib.arange(3.0)).sum().backward()
        return x.grad
    np.testing.assert_array_equal(f(vt).numpy(), f(torch).numpy())


def _leaf_hooks_trace(lib, node_hooks):
    order = []
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    acc = y.grad_fn.next_functions[0][0]
    x.register_hook(lambda g: order.append(("tensor", g.tolist())) or g * 2)
    if node_hooks:
        acc.register_prehook(lambda go: order.append(("pre", go[0].tolist())))
        # (the gradient stays stolen, not copied, although the engine holds it for this hook)
        acc.register_hook(lambda gi, go: order.append(("post", gi, go[0].tolist(),
                                                       go[0].data_ptr() == x.grad.data_ptr())))
    x.register_post_accumulate_grad_hook(lambda p: order.append(("acc", p.grad.tolist())))
    y.backward(lib.tensor([1.0, 1.0]))
    return order, x.grad.tolist()


@pytest.mark.parametrize("node_hooks", [False, True])
def test_accumulate_grad_fast_path_and_its_hooks(node_hooks):
    assert _leaf_hooks_trace(vt, node_hooks) == _leaf_hooks_trace(torch, node_hooks)


def test_node_extras_hold_hooks_and_a_removed_hook_leaves_the_node_working():
    x = vt.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    node = y.grad_fn
    assert node._extras is None and node._pre_hooks is None and node.tensor_pre_hooks() == ()
    seen = []
    handle = node.register_hook(lambda gi, go: seen.append(1))
    assert node._extras is not None and len(node._post_hooks) == 1
    handle.remove()
    y.sum().backward()
    assert seen == [] and x.grad.tolist() == [3.0, 3.0]
    node.metadata["k"] = 1
    assert node._metadata == {"k": 1}


def test_deliver_fills_buffers_of_nodes_fed_by_several_edges():
    def f(lib):
        x = lib.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
        a, b = (x * 2).split(2)     # SplitBackward0 gets two gradients, from nodes that run apart
        y = (a * a).sum() + (b.exp() * 2).sum() + (x * x).sum()
        y.backward()
        return x.grad
    np.testing.assert_allclose(f(vt).numpy(), f(torch).numpy(), rtol=1e-6)


def test_remembered_view_gradient_geometry_equals_the_formula():
    D._RESHAPES.clear()
    D._TRANSPOSES.clear()
    for _ in range(2):  # the second round answers from the caches
        for fwd, x_shape, g_shape, layout, name in CASES:
            if name not in ("ViewBackward0", "UnsafeViewBackward0", "TransposeBackward0"):
                continue
            node = _node(fwd, x_shape)
            g = _grad(g_shape, layout)
            with vt.no_grad():
                fast = node.apply([g])[0]
                slow = node._spec.formula(node, g, *node._args)
            assert _describe(fast) == _describe(slow)


def _contract_by_the_rule(g, leaf):
    """torch's Gradient Layout Contract, spelled out (what obeys_layout_contract answers)."""
    from vibetensor.tensor import memory_format as mf
    if not mf.is_non_overlapping_and_dense(leaf._shape, leaf._stride):
        return g.is_contiguous()
    return all((gs == ls) if n != 1 else gs != 0 for n, gs, ls in zip(g._shape, g._stride, leaf._stride))


@pytest.mark.parametrize("leaf, g", [
    (lambda: vt.ones(4, 3), lambda: vt.ones(4, 3)),                          # the usual: same strides
    (lambda: vt.ones(4, 3), lambda: vt.ones(3, 4).t()),                      # transposed: copied
    (lambda: vt.ones(3, 4).t(), lambda: vt.ones(3, 4).t()),                  # a dense transposed leaf
    (lambda: vt.ones(3, 4).t(), lambda: vt.ones(4, 3)),
    (lambda: vt.ones(4, 1), lambda: vt.ones(4, 1)),
    (lambda: vt.ones(4, 1), lambda: vt.ones(4).view(4, 1).expand(4, 1)),
    (lambda: vt.ones(1, 4), lambda: vt.ones(4).expand(1, 4)),
    (lambda: vt.ones(1, 4), lambda: vt.ones(5, 4)[:1]),                      # size-1 dim, another stride
    (lambda: vt.ones(4, 6)[:, ::2], lambda: vt.ones(4, 3)),                  # a leaf that is not dense
    (lambda: vt.ones(4, 6)[:, ::2], lambda: vt.ones(4, 6)[:, ::2]),
    (lambda: vt.ones(0, 3), lambda: vt.ones(0, 3)),
])
def test_layout_contract_fast_path_equals_the_rule(leaf, g):
    leaf, g = leaf(), g()
    for _ in range(2):  # the second answer comes from the remembered density
        assert E.obeys_layout_contract(g, leaf) == _contract_by_the_rule(g, leaf)


def _custom_backward_trace(lib, make_grad):
    """A Function whose backward returns make_grad(lib, x): the engine validates it on its way out."""
    class F(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            ctx.save_for_backward(x)
            return x * 2 + y.sum()

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return make_grad(lib, x), lib.ones(5, dtype=lib.float64)  # y needs no grad: dropped

    x = lib.ones(2, 3, requires_grad=True)
    loss = F.apply(x, lib.ones(5, dtype=lib.float64)).sum()
    errors = []
    for _ in range(2):  # a node whose gradient fails validation is not released: the retry fails alike
        try:
            loss.backward()
        except RuntimeError as e:
            errors.append(str(e).split(" - ")[-1])
    return errors, None if x.grad is None else (x.grad.dtype == lib.float32, x.grad.tolist())


@pytest.mark.parametrize("make_grad", [
    lambda lib, x: x * 3,                                      # fits
    lambda lib, x: (x * 3).expand(4, 2, 3),                    # broadcast: summed down
    lambda lib, x: (x * 3).double(),                           # float64: cast to the input's float32
    lambda lib, x: lib.ones(5),                                # misfit: the error, twice
])
def test_gradients_validated_as_they_are_delivered_match_torch(make_grad):
    assert _custom_backward_trace(vt, make_grad) == _custom_backward_trace(torch, make_grad)


@pytest.mark.parametrize("make", [
    lambda x, c: vt.nn.functional.linear(x, c),                # the weight needs no grad
    lambda x, c: vt.nn.functional.linear(c, x, x[0, :2]),
    lambda x, c: vt.nn.functional.layer_norm(x, (3,), c[0], None),
    lambda x, c: x * c, lambda x, c: vt.cat([c, x, c]), lambda x, c: x.sum(1, keepdim=True),
])
def test_needs_input_grad_fast_path_equals_argument_by_argument(make):
    x, c = vt.ones(2, 3, requires_grad=True), vt.ones(2, 3)
    node = make(x, c).grad_fn
    k, node._k = node._k, -1  # (-1: the argument-by-argument path)
    slow = node._compute_needs()
    node._k = k
    assert node._compute_needs() == slow


# -- session 6: flattening inlined in OpNode.apply (node._k), AccumulateGrad run without _run_special ----

@pytest.mark.parametrize("make", [
    lambda x, c: x * 2,                                        # (True, None): k = 1
    lambda x, c: x.sum(1, keepdim=True),                       # (True, None, None)
    lambda x, c: vt.nn.functional.linear(x, c, c[0]),          # (True, True, True): k = 3
    lambda x, c: vt.nn.functional.layer_norm(x, (3,), c[0], None),  # a tensor after a plain argument: k = -1
    lambda x, c: vt.cat([c, x, c]),                            # a list of tensors: k = -1
    lambda x, c: x.view(6),                                    # a view formula (fast alias) with k = 1
])
def test_apply_flattens_as_the_general_path(make):
    x, c = vt.ones(2, 3, requires_grad=True), vt.ones(3, 3)
    out = make(x, c)
    node = out.grad_fn
    assert node._k == D._edge_prefix(node._layout)
    g = vt.ones(tuple(out.shape))
    with vt.no_grad():
        fast = list(node.apply([g]))
        k, node._k = node._k, -1  # (-1: D._flatten, argument by argument)
        slow = list(node.apply([g]))
        node._k = k
    assert len(fast) == len(slow) == len(node.next_functions)
    for a, b in zip(fast, slow):
        assert (a is None) == (b is None)
        if a is not None:
            assert tuple(a.shape) == tuple(b.shape) and a.tolist() == b.tolist()


def test_accumulate_into_grad_steals_only_an_unshared_plain_gradient():
    leaf = vt.zeros(2, 3, requires_grad=True)
    g = vt.ones(2, 3)
    E.accumulate_into_grad(leaf, g)                     # nobody else holds g: it becomes .grad
    assert leaf.grad is g
    leaf, g = vt.zeros(2, 3, requires_grad=True), vt.ones(2, 3)
    keep = g
    E.accumulate_into_grad(leaf, g)                     # held elsewhere: copied
    assert leaf.grad is not keep and leaf.grad.tolist() == keep.tolist()
    for grad_mode in (False, True):                     # a gradient with a history: stolen only under create_graph
        leaf, g = vt.zeros(2, 3, requires_grad=True), vt.ones(2, 3, requires_grad=True) * 2
        with vt.set_grad_enabled(grad_mode):
            E.accumulate_into_grad(leaf, g)
        assert (leaf.grad is g) == grad_mode and (leaf.grad.grad_fn is not None) == grad_mode
        assert leaf.grad.tolist() == [[2.0] * 3] * 2


@pytest.mark.parametrize("hooked", [False, True])
def test_leaves_accumulate_alike_with_and_without_tensor_hooks(hooked):
    def f(lib):
        w = lib.ones(3, 2, requires_grad=True)
        b = lib.zeros(2, requires_grad=True)
        seen = []
        if hooked:
            w.register_hook(lambda g: seen.append(g.shape) or g * 2)
        for _ in range(2):  # the second backward adds into the .grad the first one stole
            (lib.arange(6.0).view(2, 3) @ w + b).square().sum().backward()
        return w.grad.tolist(), b.grad.tolist(), [tuple(s) for s in seen]
    assert f(vt) == f(torch)


# -- session 7: node layouts without a layout list, the engine's pushpop, inlined releases ------------------

def _layout_by_the_rule(args):
    """What _node records per positional argument: True (a tensor), flags (a list holding tensors), None."""
    out = []
    for a in args:
        if isinstance(a, vt.Tensor):
            out.append(True)
        elif type(a) in (list, tuple) and any(isinstance(b, vt.Tensor) for b in a):
            out.append(tuple(isinstance(b, vt.Tensor) for b in a))
        else:
            out.append(None)
    return tuple(out)


@pytest.mark.parametrize("name, make_args", [
    ("mul", lambda x, c: (x, 2.0)),                                     # tensors first: a shared prefix layout
    ("linear", lambda x, c: (x, c, c[:, 0])),
    ("layer_norm", lambda x, c: (x, (3,), c[0], None, 1e-5)),            # a tensor after a plain argument
    ("cat", lambda x, c: ([c, x, c], 0)),                                # a list of tensors first
    ("index_put_", lambda x, c: (x * 1, [vt.tensor([0, 1])], x)),       # a tensor after a list (in place)
    ("where", lambda x, c: (x > 0, x, c)),                               # a tensor that needs no gradient
])
def test_node_layout_equals_the_argument_by_argument_rule(name, make_args):
    x, c = vt.ones(2, 3, requires_grad=True), vt.ones(3, 3)[:2]
    args = make_args(x, c)
    out = dispatch.get(name)(*args)
    node = out.grad_fn
    assert node._layout == _layout_by_the_rule(args)
    assert node._k == D._edge_prefix(node._layout)
    needs = node.needs_input_grad
    k, node._k, node._needs = node._k, -1, None  # (-1: _compute_needs argument by argument)
    assert node.needs_input_grad == needs
    node._k = k


def test_engine_runs_nodes_in_torchs_order():
    """Ready nodes run latest-made first (the engine hands a node it just made ready straight back
    when it comes first, else queues it): the same order as torch's, chains and branches alike."""
    def f(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        a = x * 2
        b, c = a.exp(), a.sin()
        y = (b * c).sum() + (x * 3).sum() + a.sum() + c.cos().sum()
        order, stack, seen = [], [y.grad_fn], set()
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            node.register_prehook(lambda go, n=node: order.append(n.name()))
            stack.extend(nxt for nxt, _ in node.next_functions)
        y.backward()
        return order, x.grad.tolist()
    assert f(vt) == f(torch)


def test_backward_releases_saved_inputs_and_results():
    x = vt.ones(3, requires_grad=True)
    y = (x * x).exp()  # MulBackward0 saves both inputs; ExpBackward0 its result
    mul, exp = y.grad_fn.next_functions[0][0], y.grad_fn
    y.sum().backward()
    for node in (mul, exp):
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            node.saved_tensors if node is mul else node.result


@pytest.mark.parametrize("held", [False, True])
def test_buffered_gradients_add_in_place_only_when_nobody_else_holds_them(monkeypatch, held):
    """A node fed by several edges sums their gradients; as torch's InputBuffer, into the first one's
    memory when nothing else can see it (off the CPU: the test lets the CPU do it too), else anew."""
    monkeypatch.setattr(E, "_OUT_OF_PLACE", frozenset())
    calls = []
    add = E._op("add")
    monkeypatch.setitem(E._ops, "add", lambda *a, **k: calls.append("out" in k) or add(*a, **k))

    def f(lib):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        a = x * 2
        b, c = a.exp(), a.sin()  # MulBackward0 of a is fed by ExpBackward0 and SinBackward0
        seen = []
        if held:  # a post hook keeps SinBackward0's (the first to arrive): it must not change afterwards
            c.grad_fn.register_hook(lambda gi, go: seen.append((gi[0], gi[0].tolist())))
        (b.sum() + c.sum()).backward()
        for g, values in seen:
            assert g.tolist() == values
        return x.grad.tolist()
    np.testing.assert_allclose(f(vt), f(torch), rtol=1e-6)
    assert calls == [not held]


def test_a_leafs_next_accumulator_reuses_the_last_ones_meta_until_the_leaf_changes():
    w = vt.ones(2, 3, requires_grad=True)

    def accumulator():  # (the graph dies on return: only its AccumulateGrad is kept)
        return (w * 1).grad_fn.next_functions[0][0]
    a = accumulator()
    in_meta, lock = a._in_meta, a._lock
    del a
    b = accumulator()
    assert b._in_meta is in_meta and b._lock is lock
    del b
    w.data = vt.ones(4)  # a new shape: a new TensorMeta, which the gradient is checked against
    c = accumulator()
    assert c._in_meta is not in_meta and tuple(c._in_meta[0].shape) == (4,) and c._lock is lock
    (w * 2).sum().backward()
    assert w.grad.tolist() == [2.0] * 4
