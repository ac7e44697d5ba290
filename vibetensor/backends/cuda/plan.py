"""Replay plans: the steady-state host path of a CUDA op.

A training loop calls the same op on tensors of the same dtypes, shapes and strides again and
again. The first call runs the op's kernel function (meta, result allocation, geometry
collapsing, kernel choice, Triton's specialisation) while the launcher records its launches;
if that call is plannable, the plan keeps what the next calls would only recompute: the
result's geometry and, per launch, the compiled function with its C-launch settings and every
argument except the pointers. A hit costs a key lookup, one allocation and one C call per launch.

The key holds everything the launches depend on: the current device (left out where the first
argument is a tensor: the call's tensors settle it), and per argument a tensor's (dtype, shape,
strides, device) or a number's (type, value) (a tuple of numbers as it is; one holding tensors,
or a list, makes the call unplannable). The common shapes of call have keys built straight: two
tensors (a binary op), and one tensor then options (the options tuple and its types). A recording notes each launch,
each device allocation the call makes (its result and its scratch buffers) and any other device
work (a driver call: memcpy, memset). Plannable calls: no out= and no keyword arguments; no
other device work; every tensor argument on the result's device (a CPU 0-d tensor joins as a
number, so its value would be baked in) and 16-byte aligned (Triton specialises on alignment,
so a replay checks it); every pointer a kernel takes is an input's (or a view's of one: a fixed
byte offset) or inside memory the call allocated, passed before the kernel's other arguments;
the results (a tensor or a tuple) are tensors on memory the call allocated; launches on the
current stream through our C launcher. A replay allocates the same sizes in the same order,
launches, and wraps the results. Anything else runs the op's kernel function every time. Errors
are raised there too: a plan is made only after a call succeeded.

Only ops whose device work is Triton launches through launcher.Kernel (cuBLAS calls are not
seen) and whose launches depend on nothing but the key (no data-dependent choices, no host
syncs) may be wrapped.
"""
import os
import threading
import types

from vibetensor import runtime
from vibetensor.runtime.cuda import driver as drv
from vibetensor.runtime.cuda import launcher
from vibetensor.runtime.cuda import stream as streams
from vibetensor.tensor import tensor as _tensor
from vibetensor.tensor.dtype import dtype as _dtype
from vibetensor.tensor.tensor import Storage, Tensor, VersionCounter

_UNPLANNABLE = ()  # the plan of a key whose call cannot be replayed
_NOT_YET = ((),)  # _build's answer for inputs sharing memory, or a call that compiled a kernel: no plan,
# and nothing remembered (a later call may plan)
enabled = [os.environ.get("VIBETENSOR_PLANS", "1") != "0"]  # off: every call takes the full path (A/B checks)
MAX_PLANS = 4096  # per op: a loop over ever-changing scalars clears the table rather than growing it
_current = drv._current
_recorders = launcher.recorders
_get_ident = threading.get_ident
_current_stream = streams.current_stream_at
_device_alloc = runtime.device_alloc
_NUMBERS = (int, float, bool)


# what one-tensor calls' options are made of (dims, flags, a dtype, a reduction's name): see `kernel`
_OPTION_SCALARS = frozenset((type(None), bool, int, float, str, _dtype))
_OPTIONS = _OPTION_SCALARS | {tuple}


def planned(kernel_fn):
    """Wrap a CUDA kernel function `kernel_fn(*args, out=None)` so that repeated calls replay."""
    plans = {}  # key -> the plan's replay function, or _UNPLANNABLE

    def kernel(*args, out=None, **kwargs):
        if out is not None:
            return kernel_fn(*args, out=out, **kwargs)
        if kwargs or _recorders or not enabled[0]:  # (a plan is being built: record, do not replay)
            return kernel_fn(*args, **kwargs)
        n = len(args)
        a = args[0] if n else None
        b = args[1] if n > 1 else None
        if a.__class__ is Tensor and b.__class__ is Tensor and (n == 2 or n == 3 and args[2].__class__ in _NUMBERS):
            # two tensors (and alpha): the binary ops' call, its key (the one below) built straight. The
            # current device is left out: the tensors' devices settle it (a one-GPU machine has only
            # device 0; on several, the dispatcher's device guard makes the first tensor's current),
            # and reading the thread-local costs a third of this function. (A key without it never
            # equals one with it: those start with an int, these with a dtype.)
            if n == 2:
                key = (a._dtype, a._shape, a._stride, a._device, b._dtype, b._shape, b._stride, b._device)
            else:  # (one tuple: `key += ...` would build two)
                c = args[2]
                key = (a._dtype, a._shape, a._stride, a._device, b._dtype, b._shape, b._stride, b._device,
                       c.__class__, c)
            run = plans.get(key)
        elif a.__class__ is Tensor and _OPTIONS.issuperset(kinds := tuple(map(type, rest := args[1:]))) and (
                tuple not in kinds or all(_OPTION_SCALARS.issuperset(map(type, o)) for o in rest if o.__class__ is tuple)):
            # one tensor, then options (sum's dims, keepdim and dtype; softmax's dim): its key with the
            # options as they are and their types (True and 1 hash alike), built without a loop. It never
            # equals a key built below, whose fifth item is a type, not a tuple.
            key = (a._dtype, a._shape, a._stride, a._device, kinds, rest)
            run = plans.get(key)
        else:
            # per argument: a tensor's geometry, a number's type and value; the current device only
            # where the first argument is no tensor (else, as above, its device settles it)
            key = [] if a.__class__ is Tensor else [_current.index]
            for a in args:
                if isinstance(a, Tensor):
                    key += (a._dtype, a._shape, a._stride, a._device)
                else:
                    if a.__class__ is tuple:
                        for x in a:
                            if isinstance(x, Tensor):  # a key must never hold a tensor alive: no plan
                                return kernel_fn(*args)
                    key += (a.__class__, a)
            try:
                key = tuple(key)
                run = plans.get(key)
            except TypeError:  # an unhashable argument (a list of dims): no plan
                return kernel_fn(*args)
        if run is not None:
            if run is _UNPLANNABLE:
                return kernel_fn(*args)
            res = run(args)
            if res is not None:
                return res
        res, plan = _record(kernel_fn, args)
        if plan is _NOT_YET:  # (the key sees neither aliasing nor compiling: a later call may plan)
            return res
        if len(plans) >= MAX_PLANS:
            plans.clear()
        plans[key] = _compile(plan) if plan is not None else _UNPLANNABLE  # (so it is not recorded again)
        return res

    kernel.uncached = kernel_fn
    return kernel


def _record(kernel_fn, args):
    """Run the op's kernel function while recording its launches, its device allocations (through
    runtime._mallocs) and any other device work (driver calls taint the recording)."""
    tid = _get_ident()
    rec = _recorders[tid] = []
    allocs = []
    wrapped = {dev: _recording_malloc(malloc, allocs, tid) for dev, malloc in runtime._mallocs.items()}
    runtime._mallocs.update(wrapped)
    real_call = drv.call
    drv.call = _tainting_call(real_call, rec, tid)
    try:
        res = kernel_fn(*args)
    finally:
        drv.call = real_call
        del _recorders[tid]
        for dev, w in wrapped.items():
            if runtime._mallocs.get(dev) is w:
                runtime._mallocs[dev] = w.real
    return res, _build(res, args, rec, allocs)


def _recording_malloc(malloc, allocs, tid):
    def recording(nbytes, stream=None):  # (a replay on another thread passes its stream)
        a = malloc(nbytes, stream)
        if _get_ident() == tid:
            allocs.append(a)
        return a
    recording.real = malloc
    return recording


def _tainting_call(call, rec, tid):
    def tainting(fn, *args):
        if _get_ident() == tid:
            rec.append(None)  # device work the plan cannot replay
        return call(fn, *args)
    return tainting


def _build(res, args, rec, allocs):
    """The plan of a call that returned `res` after the recorded launches and allocations, or None."""
    if any(r is launcher.COMPILED for r in rec):  # (its driver calls may have tainted it: try again)
        return _NOT_YET
    if None in rec:
        return None
    outputs = _outputs(res, allocs)
    if outputs is None:
        return None
    device = next(t._device for t in (res if res.__class__ is tuple else (res,)) if t is not None)
    inputs = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    if len({id(args[i]._storage) for i in inputs}) != len(inputs):  # inputs sharing memory (x * x): _source
        return _NOT_YET  # would tie every pointer to the first of them, wrong when replayed for distinct tensors
    # replays check the inputs' alignment only: every pointer is an input's plus a fixed offset
    # (aligned when recorded), or our allocations' (512-byte aligned)
    if any(args[i]._device is not device or _pointer(args[i]) % 16 for i in inputs):
        return None
    index = _current.index
    launches = []
    for kernel, grid, kargs, stream in rec:
        step = _launch_step(kernel, grid, kargs, stream, args, inputs, allocs, index)
        if step is None:
            return None
        launches.append(step)
    return (device, tuple(a.size for a in allocs), tuple(inputs), tuple(launches), outputs,
            res.__class__ is tuple)


def _outputs(res, allocs):
    """Per output: None, or (allocation number, shape, stride, offset, dtype); None if an output is
    not a tensor made on one of the recorded allocations."""
    outs = []
    for t in (res if res.__class__ is tuple else (res,)):
        if t is None:
            outs.append(None)
            continue
        if t.__class__ is not Tensor or t._base is not None:
            return None
        k = next((k for k, a in enumerate(allocs) if t._storage.data is a), None)
        if k is None or t._storage.nbytes != allocs[k].size:
            return None
        outs.append((k, t._shape, t._stride, t._offset, t._dtype))
    if all(o is None for o in outs):
        return None
    return tuple(outs)


def _pointer(t):
    return t._storage.data.ptr + t._offset * t._dtype.itemsize


def _source(a, args, inputs, allocs):
    """Where a kernel's pointer argument comes from, as (j, byte offset from base pointer j) where a
    replay's base pointers are the inputs' and then the allocations' (so j is the input number for
    an input or a view of one, len(inputs) + allocation number for memory the call allocated); None
    when it is neither."""
    if not isinstance(a, Tensor):  # a raw pointer (launcher.PointerArg): nothing to say where it is from
        return None
    p = _pointer(a)
    for j, pos in enumerate(inputs):
        t = args[pos]
        if t is a or t._storage is a._storage:
            return j, p - _pointer(t)
    for k, al in enumerate(allocs):
        if al.ptr <= p < al.ptr + max(al.size, 1):
            return len(inputs) + k, p - al.ptr
    return None


def _launch_step(kernel, grid, kargs, stream, args, inputs, allocs, index):
    """(launch, function, gx, gy, gz, block, shared, kinds, pointer sources, other arguments) of
    one recorded launch: the kernel's pointer arguments must come first. The sources are a slice
    of the replay's base pointers when the kernel takes a run of them as they are (an elementwise
    kernel: its inputs', then its output's), else a tuple of (base pointer number, byte offset)."""
    if stream is not None:
        return None
    spec, raw = launcher.specialize(kargs)
    entry = kernel.cache.get((spec, index))
    if entry is None or not entry[0]:  # not compiled by our C launcher
        return None
    sources = []
    for a in kargs:
        if a.__class__ in (int, float, bool):
            break
        src = _source(a, args, inputs, allocs)
        if src is None:
            return None
        sources.append(src)
    rest = raw[len(sources):]
    if any(x.__class__ not in (int, float, bool) for x in rest) or any(p % 16 for p in raw[:len(sources)]):
        return None
    _, launch, function, kinds, block, shared = entry
    gx = grid[0]
    gy = grid[1] if len(grid) > 1 else 1
    gz = grid[2] if len(grid) > 2 else 1
    run = [(sources[0][0] + i, 0) for i in range(len(sources))] if sources else []
    sources = slice(run[0][0], run[-1][0] + 1) if sources and sources == run else tuple(sources)
    return (launch, function, gx, gy, gz, block, shared, kinds, sources, (*rest, *kernel.tail))


_codes = {}  # replay source -> its code object: plans of one structure share their code


def _fresh_fields(m):
    """(field, value) per slot of output m's tensor as make_tensor sets them (a test checks that
    replayed results and make_tensor's carry the same fields)."""
    return (("_storage", "s"), ("_shape", f"shape{m}"), ("_stride", f"stride{m}"), ("_offset", f"offset{m}"),
            ("_dtype", f"dtype{m}"), ("_device", "device"), ("_version", "v"), ("_base", "None"), ("_np", "None"), ("_requires_grad", "False"),
            ("grad_fn", "None"), ("_output_nr", "0"), ("_view_info", "None"))


def _compile(plan):
    """The replay of a plan as a straight-line function run(args) -> the result, or None when an
    input is misaligned (then the caller takes the full path). The plan's loops are unrolled and its
    values are the function's globals, so a hit builds no lists and unpacks no tuples. Only the
    structure (how many inputs, allocations, launches, arguments) is in the source, compiled once
    per structure; a plan costs a dict of its values. E.g. add's:
        t = args[0]; b0 = <t's pointer>; if b0 & 15: return None     (so for each input)
        a0 = malloc(n0) ...                                           (so for each allocation)
        launch0(function0, gx0, ..., kinds0, b0, b1, a0.ptr, r0_0, ...)   (so for each launch)
        t0 = new_tensor(a0, n0, device, shape0, stride0, offset0, dtype0); return t0
    (tensor.new_tensor: fasttensor's C, where it builds; without it, its Python inlined: s =
    new_storage(Storage); ...; t0 = Tensor(); t0._storage = s; ..., one Python call fewer). The
    current stream is read once: malloc is passed it (a device's allocator asks the streams module
    for the same stream), and the launches take its handle.
    """
    device, sizes, inputs, launches, outputs, is_tuple = plan
    env = {"Tensor": Tensor, "Storage": Storage, "new_storage": Storage.__new__, "new_counter": VersionCounter.__new__,
           "VersionCounter": VersionCounter, "new_tensor": _tensor.new_tensor,
           "mallocs": runtime._mallocs, "device_alloc": _device_alloc, "current_stream": _current_stream,
           "device": device, "index": device.index}
    src = ["def run(args):"]
    bases = []  # the inputs' pointers, then the allocations' (what the launches' sources index)
    for j, i in enumerate(inputs):
        src += [f" t = args[{i}]", f" b{j} = t._storage.data.ptr + t._offset * t._dtype.itemsize",
                f" if b{j} & 15:", "  return None"]
        bases.append(f"b{j}")
    # the current stream, read once: the allocator's stream (passed, so it does not ask) and the launches'
    src.append(" stream = current_stream(index)")
    if sizes:
        src.append(" malloc = mallocs.get(device)")  # (runtime.device_alloc's fast path, once per replay)
    for k, n in enumerate(sizes):
        env[f"n{k}"] = n
        src.append(f" a{k} = malloc(n{k}, stream) if malloc is not None else device_alloc(n{k}, device)")
        bases.append(f"a{k}.ptr")
    src.append(" handle = stream.cuda_stream")
    for n, (launch, function, gx, gy, gz, block, shared, kinds, sources, rest) in enumerate(launches):
        env.update({f"launch{n}": launch, f"function{n}": function, f"gx{n}": gx, f"gy{n}": gy, f"gz{n}": gz,
                    f"block{n}": block, f"shared{n}": shared, f"kinds{n}": kinds})
        if sources.__class__ is slice:  # (an elementwise kernel: the inputs' pointers, then the output's)
            pointers = bases[sources]
        else:
            pointers = [f"{bases[j]} + d{n}_{m}" for m, (j, d) in enumerate(sources)]
            env.update({f"d{n}_{m}": d for m, (j, d) in enumerate(sources)})
        names = [f"r{n}_{m}" for m in range(len(rest))]
        env.update(zip(names, rest))
        src.append(f" launch{n}(function{n}, gx{n}, gy{n}, gz{n}, block{n}, shared{n}, handle, kinds{n}, "
                   + ", ".join(pointers + names) + ")")
    results = []
    for m, o in enumerate(outputs):
        if o is None:
            results.append("None")
            continue
        k, env[f"shape{m}"], env[f"stride{m}"], env[f"offset{m}"], env[f"dtype{m}"] = o
        if _tensor.new_tensor is not _tensor.new_tensor_python:  # the C one: one call
            src.append(f" t{m} = new_tensor(a{k}, n{k}, device, shape{m}, stride{m}, offset{m}, dtype{m})")
            results.append(f"t{m}")
            continue
        src += [" s = new_storage(Storage)", f" s.data, s.nbytes, s.device = a{k}, n{k}, device",  # Storage(...)
                " v = new_counter(VersionCounter)", " v.value = 0", f" t{m} = Tensor()"]
        src += [f" t{m}.{field} = {value}" for field, value in _fresh_fields(m)]  # make_tensor(s, shape{m}, ...)
        results.append(f"t{m}")
    src.append(f" return ({', '.join(results)},)" if is_tuple else f" return {results[0]}")
    src = "\n".join(src)
    code = _codes.get(src)
    if code is None:
        module = compile(src, "<replay plan>", "exec")
        code = _codes[src] = next(c for c in module.co_consts if isinstance(c, types.CodeType))
    return types.FunctionType(code, env, "run")
