"""Autograd of views, copies, indexing and joining against torch: gradients and grad_fn names (one line
per case), gradcheck and double backward in float64, in-place writes through views (CopySlices, view
regeneration), and torch's errors for the in-place writes it forbids."""
import numpy as np
import pytest
import torch

import vibetensor.torch as vt
from oracle import assert_same

LIBS = (torch, vt)


def both(fn, **kw):
    """Run fn(lib) with torch and with vibetensor; compare what they return."""
    expected, got = fn(torch), fn(vt)
    assert_same(got, expected, **kw)
    return got


def _arrays(shapes, seed, dtype="float64"):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-2, 2, s).astype(dtype) for s in shapes]


def _leaves(lib, arrays):
    return [lib.tensor(a, requires_grad=True) for a in arrays]


def _outputs(out):
    return (out,) if not isinstance(out, (tuple, list)) else tuple(out)


def _name(t):
    return t.grad_fn.name() if t.grad_fn is not None else None


# -- gradients of view / copy / indexing / joining ops: one line per case -------------------------------------------
# (id, fn(lib, *inputs), input shapes)
CASES = [
    ("view", lambda lib, a: a.view(6, 4), [(4, 6)]),
    ("view_infer", lambda lib, a: a.view(-1, 3), [(4, 6)]),
    ("view_as", lambda lib, a, b: a.view_as(b), [(4, 6), (24,)]),
    ("reshape_view", lambda lib, a: a.reshape(2, 12), [(4, 6)]),
    ("reshape_copy", lambda lib, a: a.t().reshape(24), [(4, 6)]),
    ("flatten", lambda lib, a: a.flatten(1), [(2, 3, 4)]),
    ("flatten_copy", lambda lib, a: a.transpose(0, 2).flatten(), [(2, 3, 4)]),
    ("unflatten", lambda lib, a: a.unflatten(1, (2, 3)), [(4, 6)]),
    ("permute", lambda lib, a: a.permute(2, 0, 1), [(2, 3, 4)]),
    ("permute_neg", lambda lib, a: a.permute(-1, 0, -2), [(2, 3, 4)]),
    ("transpose", lambda lib, a: a.transpose(0, 2), [(2, 3, 4)]),
    ("T", lambda lib, a: a.T, [(4, 6)]),
    ("t", lambda lib, a: a.t(), [(4, 6)]),
    ("t_1d", lambda lib, a: lib.t(a), [(4,)]),
    ("mT", lambda lib, a: a.mT, [(2, 3, 4)]),
    ("movedim", lambda lib, a: a.movedim(0, -1), [(2, 3, 4)]),
    ("expand", lambda lib, a: a.expand(2, 4, 5), [(4, 1)]),
    ("expand_0d", lambda lib, a: a.expand(3, 2), [()]),
    ("broadcast_to", lambda lib, a: lib.broadcast_to(a, (3, 4, 2)), [(4, 1)]),
    ("expand_as", lambda lib, a, b: a.expand_as(b), [(1, 6), (4, 6)]),
    ("squeeze_all", lambda lib, a: a.squeeze(), [(1, 3, 1, 2)]),
    ("squeeze_dim", lambda lib, a: a.squeeze(2), [(1, 3, 1, 2)]),
    ("squeeze_dims", lambda lib, a: a.squeeze((0, 2)), [(1, 3, 1, 2)]),
    ("unsqueeze", lambda lib, a: a.unsqueeze(-1), [(3, 2)]),
    ("select", lambda lib, a: a[1], [(4, 6)]),
    ("select_dim", lambda lib, a: a.select(1, -1), [(4, 6)]),
    ("slice", lambda lib, a: a[1:3], [(4, 6)]),
    ("slice_step", lambda lib, a: a[:, ::2], [(4, 6)]),
    ("slice_ellipsis", lambda lib, a: a[..., 1:], [(2, 3, 4)]),
    ("index_none", lambda lib, a: a[None, :, None], [(4, 6)]),
    ("ellipsis", lambda lib, a: a[...], [(4, 6)]),
    ("narrow", lambda lib, a: a.narrow(1, 1, 3), [(4, 6)]),
    ("split", lambda lib, a: a.split(3), [(7, 2)]),
    ("split_unused", lambda lib, a: a.split(3)[1], [(7, 2)]),
    ("split_sizes", lambda lib, a: a.split([1, 3], 1), [(2, 4)]),
    ("chunk", lambda lib, a: a.chunk(3, 1), [(2, 6)]),
    ("unbind", lambda lib, a: a.unbind(1), [(2, 3)]),
    ("unbind_unused", lambda lib, a: a.unbind()[2], [(3, 2)]),
    ("tensor_split", lambda lib, a: a.tensor_split(3), [(7, 2)]),
    ("as_strided", lambda lib, a: a.as_strided((2, 2), (1, 2), 1), [(4, 6)]),
    ("as_strided_overlap", lambda lib, a: a.as_strided((3, 3), (1, 1)), [(6,)]),
    ("as_strided_bcast", lambda lib, a: a.as_strided((2, 1, 3), (0, 5, 1), 2), [(6,)]),
    ("as_strided_of_expanded", lambda lib, a: a.expand(2, 4).as_strided((3, 2), (1, 1)), [(4,)]),
    ("as_strided_empty", lambda lib, a: a.as_strided((0, 2), (1, 1)), [(4,)]),
    ("unfold_overlap", lambda lib, a: a.unfold(1, 3, 1), [(2, 6)]),
    ("unfold_disjoint", lambda lib, a: a.unfold(0, 2, 2), [(5, 3)]),
    ("unfold_gap", lambda lib, a: a.unfold(1, 2, 3), [(2, 7)]),
    ("diagonal", lambda lib, a: a.diagonal(), [(4, 6)]),
    ("diagonal_offset", lambda lib, a: a.diagonal(2), [(4, 6)]),
    ("diagonal_3d", lambda lib, a: a.diagonal(-1, 0, 2), [(3, 2, 4)]),
    ("complex_roundtrip", lambda lib, a: lib.view_as_real(lib.view_as_complex(a)), [(3, 2)]),
    ("real", lambda lib, a: lib.view_as_complex(a).real, [(3, 2)]),
    ("imag", lambda lib, a: lib.view_as_complex(a).imag, [(3, 2)]),
    ("clone", lambda lib, a: a.clone(), [(4, 6)]),
    ("contiguous", lambda lib, a: a.t().contiguous(), [(4, 6)]),
    ("to_float32", lambda lib, a: a.to(lib.float32), [(4, 6)]),
    ("double_half", lambda lib, a: a.half().double(), [(3,)]),
    ("copy", lambda lib, a: lib.zeros(4, 6, dtype=lib.float64).copy_(a), [(4, 6)]),
    ("copy_broadcast", lambda lib, a: lib.zeros(3, 2, 4, dtype=lib.float64).copy_(a), [(2, 1)]),
    ("copy_cast", lambda lib, a: lib.zeros(2, 3, dtype=lib.float32).copy_(a), [(2, 3)]),
    ("copy_both", lambda lib, a, b: (a * 1).copy_(b), [(2, 3), (3,)]),
    ("index_list", lambda lib, a: a[[0, 2, 2]], [(4, 6)]),
    ("index_dup_cols", lambda lib, a: a[:, [1, 1, 3]], [(4, 6)]),
    ("index_mask", lambda lib, a: a[a > 0], [(4, 6)]),
    ("index_mask_rows", lambda lib, a: a[lib.tensor([True, False, True, False])], [(4, 6)]),
    ("index_pairs", lambda lib, a: a[[0, 1, 1], [2, 3, 3]], [(4, 6)]),
    ("index_broadcast", lambda lib, a: a[lib.tensor([[0], [1]]), lib.tensor([1, 2, 1])], [(4, 6)]),
    ("index_after_slice", lambda lib, a: a[1:, [0, 2]], [(4, 6)]),
    ("index_nonadjacent", lambda lib, a: a[[0, 1], :, [1, 0]], [(2, 3, 4)]),
    ("index_put", lambda lib, a, v: lib.index_put(a, (lib.tensor([0, 2]),), v), [(4, 3), (2, 3)]),
    ("index_put_bcast", lambda lib, a, v: lib.index_put(a, (lib.tensor([0, 2]),), v), [(4, 3), (3,)]),
    ("index_put_accumulate", lambda lib, a, v: lib.index_put(a, (lib.tensor([1, 1, 3]),), v, accumulate=True),
     [(4, 3), (3, 3)]),
    ("index_put_method", lambda lib, a, v: (a * 1).index_put_((lib.tensor([0, 1]), lib.tensor([2, 0])), v),
     [(4, 3), (2,)]),
    ("setitem_index", lambda lib, a, v: _setitem(a, ([2, 0],), v), [(4, 3), (2, 3)]),
    ("setitem_mask", lambda lib, a, v: _setitem(a, (a > 0,), v), [(4, 3), ()]),
    ("setitem_basic", lambda lib, a, v: _setitem(a, (1,), v), [(4, 3), (3,)]),
    ("setitem_slice_bcast", lambda lib, a, v: _setitem(a, (slice(None), slice(1, 3)), v), [(4, 3), (1, 2)]),
    ("setitem_mixed", lambda lib, a, v: _setitem(a, (slice(1, None), [0, 2]), v), [(4, 3), (2,)]),
    ("setitem_number", lambda lib, a: _setitem(a, (0,), 5.0), [(4, 3)]),
    ("cat", lambda lib, a, b: lib.cat([a, b], 1), [(2, 3), (2, 4)]),
    ("cat_neg_dim", lambda lib, a, b: lib.cat([a, b, a], -2), [(2, 3), (1, 3)]),
    ("cat_promote", lambda lib, a, b: lib.cat([a.float(), b]), [(2, 3), (1, 3)]),
    ("cat_skip_empty", lambda lib, a, b: lib.cat([a, b], 0), [(0,), (2, 3)]),
    ("stack", lambda lib, a, b: lib.stack([a, b]), [(2, 3), (2, 3)]),
    ("stack_last", lambda lib, a, b: lib.stack([a, b], -1), [(2, 3), (2, 3)]),
    ("stack_mid", lambda lib, a, b: lib.stack([a, b, a], 1), [(2, 3), (2, 3)]),
    ("hstack", lambda lib, a, b: lib.hstack([a, b]), [(3,), (2,)]),
    ("vstack", lambda lib, a, b: lib.vstack([a, b]), [(3,), (2, 3)]),
    ("chain", lambda lib, a: a.t()[1:].unsqueeze(0).expand(2, 5, 4)[:, ::2].reshape(-1)[2:9], [(4, 6)]),
]
IDS = [c[0] for c in CASES]
# gradcheck needs float64 throughout: masks computed from the input move with it, and casts to lower
# precision swamp finite differences
NO_GRADCHECK = {"setitem_mask", "index_mask", "to_float32", "double_half", "copy_cast", "cat_promote"}


def _setitem(a, index, value):
    c = a.clone()
    c[index if len(index) > 1 else index[0]] = value
    return c


def _grads(lib, fn, arrays, seed=7):
    """(outputs, grad_fn names, gradients of the inputs for random output gradients)."""
    ins = _leaves(lib, arrays)
    outs = _outputs(fn(lib, *ins))
    rng = np.random.default_rng(seed)
    g_outs = [lib.tensor(rng.uniform(-1, 1, tuple(o.shape)).astype(str(o.dtype).split(".")[-1])) for o in outs]
    grads = lib.autograd.grad(outs, ins, g_outs, allow_unused=True)
    return [o.detach() for o in outs], [_name(o) for o in outs], grads


@pytest.mark.parametrize("name,fn,shapes", CASES, ids=IDS)
def test_gradient_and_node_names_match_torch(name, fn, shapes):
    for dtype in ("float64", "float32"):
        both(lambda lib: _grads(lib, fn, _arrays(shapes, 1, dtype)))


@pytest.mark.parametrize("name,fn,shapes", [c for c in CASES if c[0] not in NO_GRADCHECK],
                         ids=[i for i in IDS if i not in NO_GRADCHECK])
def test_gradcheck(name, fn, shapes):
    ins = _leaves(vt, _arrays(shapes, 2))
    assert vt.autograd.gradcheck(lambda *xs: fn(vt, *xs), ins)


SECOND = ["select", "slice_step", "expand", "as_strided_overlap", "as_strided_of_expanded", "unfold_overlap",
          "unfold_disjoint", "diagonal_offset", "index_dup_cols", "index_put", "index_put_accumulate",
          "setitem_mixed", "cat_neg_dim", "stack_mid", "split_unused", "unbind", "chain", "copy_both"]


def _squared(fn):
    """fn's outputs squared, so that second derivatives are not all zero."""
    return lambda lib, *xs: tuple(o * o for o in _outputs(fn(lib, *xs)))


@pytest.mark.parametrize("name", SECOND)
def test_double_backward_matches_torch(name):
    _, fn, shapes = CASES[IDS.index(name)]
    sq = _squared(fn)

    def second(lib):
        ins = _leaves(lib, _arrays(shapes, 3))
        outs = sq(lib, *ins)
        rng = np.random.default_rng(5)
        firsts = lib.autograd.grad(outs, ins, [lib.tensor(rng.uniform(-1, 1, tuple(o.shape))) for o in outs],
                                   create_graph=True, allow_unused=True)
        pairs = [(g, lib.tensor(rng.uniform(-1, 1, tuple(g.shape)))) for g in firsts
                 if g is not None and g.requires_grad]
        return lib.autograd.grad([g for g, _ in pairs], ins, [v for _, v in pairs], allow_unused=True)
    both(second)


@pytest.mark.parametrize("name", ["select", "as_strided_overlap", "unfold_overlap", "index_put", "setitem_basic"])
def test_gradgradcheck(name):
    _, fn, shapes = CASES[IDS.index(name)]
    sq = _squared(fn)
    ins = _leaves(vt, _arrays(shapes, 4))
    assert vt.autograd.gradgradcheck(lambda *xs: sq(vt, *xs), ins)


def test_identities_return_the_input():
    for lib in LIBS:
        x = lib.ones(2, 3, requires_grad=True) * 1
        assert x.contiguous() is x and x.to(lib.float32) is x and x.flatten(1, 1) is x
        assert x.view(lib.int32).requires_grad is False and x.view(lib.float32).requires_grad is False


def test_results_that_are_not_views():
    for lib in LIBS:
        x = lib.ones(2, 3, requires_grad=True) * 1
        assert x.t().reshape(6)._base is None and lib.stack([x, x])._base is None and x.clone()._base is None
        assert x.reshape(6)._base is x and x[0]._base is x and x.t()[1]._base is x


# -- in-place writes through views ------------------------------------------------------------------------------

def _data(lib, *shapes, seed=0):
    return [lib.tensor(a, requires_grad=True) for a in _arrays(shapes, seed)]


def _names(*ts):
    return [_name(t) for t in ts]


def _inplace_mul_on_select(lib):
    leaf, = _data(lib, (3, 4))
    x = leaf.clone()
    v = x[0]
    v.mul_(2)
    x.sum().backward()
    return _names(x, v), leaf.grad, x.grad_fn.next_functions[0][0].name()


def _copy_into_column(lib):
    leaf, y = _data(lib, (3, 4), (3,))
    base = leaf * 1
    base[:, 1].copy_(y * 3)
    (base * base).sum().backward()
    return _names(base), leaf.grad, y.grad


def _mask_assign(lib):
    leaf, y = _data(lib, (3, 4), ())
    x = leaf.clone()
    x[x > 0] = y * 2
    (x * leaf).sum().backward()
    return _names(x), leaf.grad, y.grad


def _mask_assign_into_view(lib):
    leaf, y = _data(lib, (3, 4), (4,))
    x = leaf.clone()
    x[1][lib.tensor([True, False, True, True])] = y[:3]
    (x * 3).sum().backward()
    return _names(x, x[1]), leaf.grad, y.grad


def _view_of_view(lib):
    leaf, y = _data(lib, (4, 5), (3,))
    b = leaf * 2
    v = b[1:].t()[2]
    v.add_(y)
    v.mul_(y)
    b.pow(2).sum().backward()
    return _names(b, v), leaf.grad, y.grad


def _modified_view_used_again(lib):
    leaf, y = _data(lib, (3, 4), (4,))
    b = leaf.clone()
    v = b[0]
    v.mul_(y)
    w = v * 2  # v's regenerated history
    (w.sum() + (b * b).sum()).backward()
    return _names(b, v, w), leaf.grad, y.grad


def _stale_view_after_base_write(lib):
    leaf, y = _data(lib, (3, 4), (4,))
    b = leaf * 1
    v = b[1]
    b.mul_(y)
    out = (v * 3).sum()
    out.backward()
    return _names(v), v.grad_fn.next_functions[0][0].name(), leaf.grad, y.grad


def _stale_view_after_sibling_write(lib):
    leaf, = _data(lib, (3, 4))
    b = leaf.clone()
    row, col = b[0], b[:, 0]
    row.mul_(2)
    (col * lib.tensor([1.0, 2.0, 3.0], dtype=lib.float64)).sum().backward()
    return _names(row, col), leaf.grad


def _base_without_grad(lib):
    x, = _data(lib, (4, 3))
    z = lib.zeros(4, 3, dtype=lib.float64)
    v = z[:, 1]
    z[:, 1] = x[:, 0]
    z[1:].add_(x[1:])
    z[2:].mul_(x[2:] * z[:2].clone())  # (a view of z saved by mul would see z's version move)
    state = (_names(z, v), z.requires_grad, z.is_leaf, v.requires_grad)
    z.sum().backward()
    return state, x.grad


def _old_view_of_base_that_gained_history(lib):
    x, = _data(lib, (4,))
    buf = lib.zeros(4, dtype=lib.float64)
    head = buf[:2]  # taken while buf had no history
    buf.copy_(x * 3)
    out = (head * head).sum()
    out.backward()
    return _names(head), head.requires_grad, x.grad


def _as_strided_and_diagonal_writes(lib):
    leaf, y = _data(lib, (3, 3), (2, 2))
    b = leaf * 1
    b.as_strided((2, 2), (1, 3), 1).mul_(y)
    b.diagonal().add_(1)
    b.diagonal(1).mul_(3)
    (b * b).sum().backward()
    return _names(b), leaf.grad, y.grad


def _setitem_number(lib):
    leaf, = _data(lib, (3, 4))
    b = leaf * 2
    b[0] = 1.0
    b[:, 2] = 0
    (b * b).sum().backward()
    return _names(b), leaf.grad


def _write_under_no_grad(lib):
    leaf, = _data(lib, (3, 4))
    v = leaf[1]
    with lib.no_grad():
        leaf[0].mul_(2)
        leaf.add_(1)
    (v * 3).sum().backward()
    return _names(v), leaf.grad, leaf.detach()


def _double_backward_through_view_write(lib):
    leaf, y = _data(lib, (3, 4), (4,))
    b = leaf.clone()
    b[1].mul_(y)
    b[2].copy_(y * y)
    out = (b * b).sum()
    g_leaf, g_y = lib.autograd.grad(out, (leaf, y), create_graph=True)
    return lib.autograd.grad((g_leaf * g_leaf).sum() + (g_y * g_y).sum(), (leaf, y))


def _retain_and_backward_twice(lib):
    leaf, y = _data(lib, (3, 4), (4,))
    b = leaf.clone()
    b[0].mul_(y)
    s = (b * b).sum()
    s.backward(retain_graph=True)
    s.backward()
    return leaf.grad, y.grad


def _custom_function_marks_view_dirty(lib):
    class Double(lib.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            t.mul_(2)
            ctx.mark_dirty(t)
            return t

        @staticmethod
        def backward(ctx, g):
            return g * 2
    leaf, = _data(lib, (3, 4))
    b = leaf.clone()
    out = Double.apply(b[1])
    (b * b).sum().backward()
    return _names(b, out), leaf.grad


def _write_through_real_view_of_complex_view(lib):
    a, = _data(lib, (3, 2))
    b = a * 1
    c = lib.view_as_complex(b)  # a complex view of a real base: regenerated by replaying view_as_complex
    r = c.real                  # real again: as_strided rebuilds it
    r.mul_(3)
    names = _names(b, c, r)
    (lib.view_as_real(c) * lib.tensor([1.0, 2.0], dtype=lib.float64)).sum().backward()
    return names, a.grad


def _write_through_real_view_of_complex_base(lib):
    a, = _data(lib, (3, 2))
    c = lib.view_as_complex(a).clone()
    r = lib.view_as_real(c)
    r.mul_(lib.tensor([2.0, 3.0], dtype=lib.float64))
    r[1].add_(1)
    names = _names(c, r)
    (lib.view_as_real(c) * lib.tensor([1.0, -2.0], dtype=lib.float64)).sum().backward()
    return names, a.grad


def _augmented_assignment(lib):
    """x[i] op= y: a read, an in-place op on it, and a write back (the same memory for basic indexing)."""
    leaf, y = _data(lib, (3, 4), (4,))
    b = leaf * 1
    b[0] += y
    b[:, 1] *= 2
    b[[0, 2]] += y * y
    b[b > 0.5] -= 1
    b[1:, ::2] *= y[:2]
    names = _names(b)
    (b * b).sum().backward()
    return names, leaf.grad, y.grad


def _write_through_untracked_real_view(lib):
    x, = _data(lib, (2, 2))
    c = lib.zeros(2, dtype=lib.complex128)
    r = lib.view_as_real(c)  # taken while nothing required grad
    r[:, 1].copy_(x[:, 0] * 3)
    r[0].mul_(x[1])
    names = _names(c, r)
    (lib.view_as_real(c) * lib.tensor([1.0, 2.0], dtype=lib.float64)).sum().backward()
    return names, x.grad


INPLACE = [_write_through_untracked_real_view, _augmented_assignment, _write_through_real_view_of_complex_view,
           _write_through_real_view_of_complex_base, _inplace_mul_on_select, _copy_into_column, _mask_assign,
           _mask_assign_into_view, _view_of_view, _modified_view_used_again, _stale_view_after_base_write,
           _stale_view_after_sibling_write, _base_without_grad, _old_view_of_base_that_gained_history,
           _as_strided_and_diagonal_writes, _setitem_number, _write_under_no_grad,
           _double_backward_through_view_write, _retain_and_backward_twice, _custom_function_marks_view_dirty]


@pytest.mark.parametrize("case", INPLACE, ids=[f.__name__.strip("_") for f in INPLACE])
def test_inplace_through_views_matches_torch(case):
    both(case)


def test_view_write_keeps_hooks_and_releases_the_graph():
    for lib in LIBS:
        leaf, = _data(lib, (2, 3))
        b = leaf * 1
        seen = []
        b.register_hook(lambda g: seen.append(g.sum().item()))  # stays with b's old node
        v = b[1]
        v.register_hook(lambda g: seen.append(("v", g.sum().item())))
        v.mul_(2)
        b.sum().backward()
        assert seen == [9.0]
        with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
            b.sum().backward()


def _inplace_view_ops(lib):
    """t_(), unsqueeze_()...: the tensor takes the view's geometry and the view op's node (torch names these
    nodes TBackward1, UnsqueezeBackward1...; vibetensor reuses the out-of-place ones)."""
    leaf, w = _data(lib, (2, 3), (3, 2))
    y = leaf * 1
    y.t_()
    v = (leaf * 2)[1]
    v.unsqueeze_(0)
    s = (leaf * 3).unsqueeze(0)
    s.squeeze_(0)
    s.transpose_(0, 1)
    ((y * w).sum() + (v * v).sum() + (s * w).sum()).backward()
    return leaf.grad, [tuple(t.shape) for t in (y, v, s)]


def test_inplace_view_ops_match_torch():
    both(_inplace_view_ops)
    msgs = [_message(lambda lib=lib: _data(lib, (2, 3))[0].t_()) for lib in LIBS]
    assert msgs[1] == msgs[0]


# -- the in-place writes torch forbids ---------------------------------------------------------------------------

def _message(fn):
    try:
        fn()
    except RuntimeError as e:
        return str(e)
    return "no error"


def _in_no_grad(lib, fn):
    with lib.no_grad():
        return fn()


def _in_inference(lib, fn):
    with lib.inference_mode():
        return fn()


def _custom_view(lib, returns_input):
    class F(lib.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t if returns_input else t.view_as(t)

        @staticmethod
        def backward(ctx, g):
            return g
    return F


def _stale(fn):
    def case(lib):
        y = _data(lib, (4, 3))[0] * 1
        views = fn(lib, y)
        y.mul_(2)
        return views[0] + 1
    return case


ERRORS = {
    "leaf": lambda lib: _data(lib, (3,))[0].mul_(2),
    "view_of_leaf": lambda lib: _data(lib, (2, 3))[0][0].mul_(2),
    "view_of_view_of_leaf": lambda lib: _data(lib, (2, 3))[0][1][1:].add_(1),
    "no_grad_view": lambda lib: (lambda y: _in_no_grad(lib, lambda: y[0]).mul_(2))(_data(lib, (2, 3))[0] * 1),
    "no_grad_view_of_leaf": lambda lib: _in_no_grad(lib, lambda: _data(lib, (2, 3))[0][0]).mul_(2),
    "no_grad_view_other_grad": lambda lib: _in_no_grad(lib, lambda: lib.zeros(3)[1:]).mul_(
        _data(lib, (2,))[0]),
    "view_of_no_grad_view": lambda lib: _in_no_grad(lib, lambda: (_data(lib, (2, 3))[0] * 1)[0])[1:].mul_(2),
    "inference_view": lambda lib: (lambda y: _in_inference(lib, lambda: y[0]).mul_(2))(_data(lib, (2, 3))[0] * 1),
    "unbind_output": lambda lib: (_data(lib, (2, 3))[0] * 1).unbind()[1].mul_(2),
    "split_output": lambda lib: (_data(lib, (4, 3))[0] * 1).split(2)[0].mul_(2),
    "split_of_leaf": lambda lib: _data(lib, (4, 3))[0].split(2)[0].mul_(2),
    "chunk_output_copy": lambda lib: (_data(lib, (4, 3))[0] * 1).chunk(2)[1].copy_(lib.ones(2, 3,
                                                                                          dtype=lib.float64)),
    "unbind_of_constant": lambda lib: lib.zeros(2, 3, dtype=lib.float64).unbind()[0].copy_(_data(lib, (3,))[0]),
    "split_of_no_grad_view": lambda lib: _in_no_grad(lib, lambda: lib.zeros(4, 3)[1:]).split(1)[1].mul_(
        _data(lib, (3,))[0].float()),
    "custom_function_view": lambda lib: _custom_view(lib, False).apply(_data(lib, (3,))[0] * 1).mul_(2),
    "custom_function_input": lambda lib: _custom_view(lib, True).apply(_data(lib, (3,))[0] * 1).mul_(2),
    "stale_unbind_output": _stale(lambda lib, y: y.unbind()),
    "stale_no_grad_view": _stale(lambda lib, y: (_in_no_grad(lib, lambda: y[0]),)),
    "saved_view_written": lambda lib: (lambda x, z: (z[1:] * x, z[1:].copy_(x), z.sum().backward()))(
        _data(lib, (3,))[0], lib.zeros(4, dtype=lib.float64)),
    "no_error_no_grad_view_of_constant": lambda lib: _in_no_grad(lib, lambda: lib.zeros(3)[1:]).mul_(2),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_forbidden_inplace_errors_match_torch(case):
    msgs = [_message(lambda lib=lib: ERRORS[case](lib)) for lib in LIBS]
    assert msgs[1] == msgs[0]


def test_no_grad_views_report_their_base():
    for lib in LIBS:
        y = _data(lib, (2, 3))[0] * 1
        with lib.no_grad():
            v = y[0]
        assert v.requires_grad and v.grad_fn is None
        w = v[1:]  # a view of it in grad mode: tracked, with nowhere to send its gradient
        assert w.requires_grad and _name(w) == "SliceBackward0"
