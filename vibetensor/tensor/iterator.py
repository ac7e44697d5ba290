"""Collapsing shapes and strides for kernels: fewer, longer dimensions, same elements.

Two adjacent dims (i, i+1) merge when, for every operand, stride[i] == stride[i+1] * size[i+1]:
stepping through dim i is then the same as stepping size[i+1] times through dim i+1. Size-1 dims
are dropped. A contiguous tensor collapses to one dim, an expanded or transposed one keeps what
it needs, so a kernel indexes with at most a few divisions per element.
"""


def collapse(shape, *strides):
    """(shape, [strides per operand]) with mergeable dims merged and size-1 dims removed."""
    dims = [i for i, n in enumerate(shape) if n != 1]
    out_shape = []
    out_strides = [[] for _ in strides]
    for i in dims:
        if out_shape and all(st[-1] == s[i] * shape[i] for st, s in zip(out_strides, strides)):
            out_shape[-1] *= shape[i]
            for st, s in zip(out_strides, strides):
                st[-1] = s[i]
        else:
            out_shape.append(shape[i])
            for st, s in zip(out_strides, strides):
                st.append(s[i])
    return tuple(out_shape), [tuple(st) for st in out_strides]


def broadcast_strides(shape, stride, to_shape):
    """Strides of a (shape, stride) operand viewed at the broadcast shape `to_shape`: 0 along the
    dims it is broadcast over (missing leading dims and size-1 dims that expand)."""
    pad = len(to_shape) - len(shape)
    sizes, strides = (1,) * pad + tuple(shape), (0,) * pad + tuple(stride)
    return tuple(0 if n == 1 and m != 1 else st for n, m, st in zip(sizes, to_shape, strides))
