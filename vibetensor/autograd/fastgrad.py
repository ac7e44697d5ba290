"""Autograd's per-op host paths in C: the Autograd-key kernel that makes an op's graph node, and the
backward walk that runs the nodes.

Every differentiable op called with grad mode on goes through derivatives.autograd_kernel: one pass
over the arguments (a TensorMeta and a gradient edge per tensor, a SavedVariable for the saved ones),
a node whose every slot is set, the device kernel run with grad mode off, and the outputs marked.
That Python is already slot stores and one loop, and still was a third of a training step's forward
host time (benchmarks/cuda_host_sim.py; `derivatives._node` alone 24%). `Kernel(spec, python)` is
the same kernel as a C callable over the same objects:

    Kernel(spec, python, save_mask, geometry_mask, node_class)   one per op, in op.table[Autograd]

It does the usual call itself: positional tensors first, then plain arguments (no tensor inside a
list), keywords without out=, a save= fixed at registration, anomaly mode off, grad mode on. It
calls back into the Python for the rest of the usual path's uncommon steps (a leaf's
AccumulateGrad, a stale view's edge, the node's stream, the CPU kernel choice, a saved output, an
output that needs _mark_outputs' general path), and hands any other call to `python`, the
Python kernel, whole. So derivatives.py stays the specification; `set_enabled(False)` makes every
Kernel hand every call to its Python, which the twin tests (tests/test_autograd_native.py) use
to run the same graphs on both.

    walk(ready, deps, buffers, tie, keep_graph, captures, needed)   engine._walk, execute's loop

pops the ready queue, applies each usual node (OpNode.apply and AccumulateGrad.apply stay Python)
and delivers its gradients as engine._deliver does (validated, synced across streams, buffered,
accumulated by engine._accumulate, which counts references to decide on an in-place add: the C
holds the same references the Python does there). Nodes with hooks, backward(inputs=)/grad(),
anomaly mode, a node's stream to enter, a gradient that does not fit: the Python's functions,
called back. With set_enabled(False) walk runs engine._walk. It is built by runtime/native.py; where that fails, or with
VIBETENSOR_FASTGRAD=0, derivatives.py installs its Python kernels and `module()` is None.
"""
from vibetensor.runtime.native import Extension

_SRC = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <structmember.h>

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))
#define MAX_ARGS 12  /* derivatives._SHARED: the prefix layouts are shared tuples below it */

/* slot offsets, read from the classes' member descriptors by install() */
enum { T_shape, T_dtype, T_device, T_version, T_base, T_requires_grad, T_grad_fn, T_output_nr, T_view_info,
       V_value, I_attr_version, I_creation_meta, D_category, M_shape, M_dtype, M_device,
       S_data, S_version, S_is_output,
       N_next_functions, N_in_meta, N_seq, N_stream, N_n_grads, N_extras,
       O_spec, O_args, O_kwargs, O_result, O_layout, O_k, O_out_meta, O_needs, O_saves, P_by_type,
       N_OFFSETS };
static const char *names[N_OFFSETS] = {
  "Tensor._shape", "Tensor._dtype", "Tensor._device", "Tensor._version", "Tensor._base", "Tensor._requires_grad",
  "Tensor.grad_fn", "Tensor._output_nr", "Tensor._view_info",
  "VersionCounter.value", "ViewInfo.attr_version", "ViewInfo.creation_meta", "DType.category",
  "TensorMeta._shape", "TensorMeta._dtype", "TensorMeta._device",
  "SavedVariable.data", "SavedVariable.version", "SavedVariable.is_output",
  "Node.next_functions", "Node._in_meta", "Node._seq", "Node.stream", "Node._n_grads", "Node._extras",
  "OpNode._spec", "OpNode._args", "OpNode._kwargs", "OpNode._result", "OpNode._layout", "OpNode._k",
  "OpNode._out_meta", "OpNode._needs", "OpNode._saves", "Op._by_type"};
static Py_ssize_t off[N_OFFSETS];
static Py_ssize_t base_size;  /* OpNode's instance size: a node class is at least that */

static PyTypeObject *tensor_type, *meta_type, *saved_type;
static PyObject *local, *engine_dict, *anomaly_dict, *layouts, *no_edge, *zero, *one, *creation_default;
static PyObject *gradient_edge, *grad_accumulator, *mark_outputs, *record_view, *device_kernel, *next_seq,
                *saved_variable;
static PyObject *s_grad_enabled, *s_current_stream, *s_enabled, *s_type, *s_redispatch, *s_out, *s_cpu, *s_node_class;
static int enabled = 1;

/* -- slot access: a slot never set raises AttributeError instead of crashing ------------------------ */
static PyObject *get(PyObject *o, int k) {  /* borrowed */
  PyObject *v = SLOT(o, off[k]);
  if (!v) PyErr_Format(PyExc_AttributeError, "autograd: slot %s is not set", names[k]);
  return v;
}
static void seto(PyObject *o, int k, PyObject *v) {  /* o.k = v (v borrowed) */
  Py_INCREF(v);
  Py_XSETREF(SLOT(o, off[k]), v);
}
static void steal(PyObject *o, int k, PyObject *v) {  /* o.k = v (v owned) */
  Py_XSETREF(SLOT(o, off[k]), v);
}
static int is_tensor(PyObject *a) { return PyObject_TypeCheck(a, tensor_type); }

/* -- one Kernel per differentiable op ---------------------------------------------------------------- */
typedef struct {
  PyObject_HEAD
  vectorcallfunc vectorcall;
  PyObject *spec, *python, *op, *save, *node_class, *name;
  unsigned long long save_mask, geometry_mask;  /* argument positions saved / kept as TensorGeometry */
  int save_result;
} Kernel;

static PyObject *grad_mode(void) {  /* local.grad_enabled (new reference) */
  return PyObject_GetAttr(local, s_grad_enabled);
}
static int set_grad_mode(PyObject *value) {  /* keeps an exception in flight (a kernel's) as it was */
  PyObject *type, *val, *tb;
  PyErr_Fetch(&type, &val, &tb);
  int rc = PyObject_SetAttr(local, s_grad_enabled, value);
  if (type) {
    if (rc < 0) PyErr_Clear();
    PyErr_Restore(type, val, tb);
    return -1;
  }
  return rc;
}

/* the usual call? (tensors as positional arguments, none inside a list; no out=) -- nothing is done
   before this. *count: the tensor arguments; *k: how many of them come first (a prefix) */
static int usual_call(Kernel *self, PyObject *const *args, Py_ssize_t n, PyObject *kwnames, Py_ssize_t *count,
                      Py_ssize_t *k) {
  if (!enabled || self->save == Py_None || n == 0 || n >= MAX_ARGS) return 0;
  if (kwnames) {
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(kwnames); j++)
      if (PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, j), s_out) == 0) return 0;
  }
  PyObject *anomaly = PyDict_GetItem(anomaly_dict, s_enabled);
  if (!anomaly || anomaly != Py_False) return 0;
  Py_ssize_t tensors = 0, prefix = 0;
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *a = args[i];
    if (is_tensor(a)) {
      if ((self->geometry_mask >> i) & 1) return 0;
      if (prefix == i) prefix++;
      tensors++;
    } else if (PyList_CheckExact(a) || PyTuple_CheckExact(a)) {
      Py_ssize_t m = PySequence_Fast_GET_SIZE(a);
      PyObject **items = PySequence_Fast_ITEMS(a);
      for (Py_ssize_t j = 0; j < m; j++)
        if (!PyLong_CheckExact(items[j]) && is_tensor(items[j])) return 0;
    }
  }
  *count = tensors;
  *k = prefix;
  return tensors > 0;
}

static int truthy(PyObject *o, int k) {
  PyObject *v = get(o, k);
  return v ? PyObject_IsTrue(v) : -1;
}

/* tensor a's gradient edge (new reference) and whether a requires grad: derivatives._node's inline
   gradient_edge, calling the Python for a stale view and a leaf's accumulator */
static PyObject *edge_of(PyObject *a, int *wanted) {
  PyObject *base = get(a, T_base), *fn, *info, *version;
  if (!base) return NULL;
  int rg = truthy(a, T_requires_grad);
  if (rg < 0) return NULL;
  if (base != Py_None) {
    if (!rg && (rg = truthy(base, T_requires_grad)) < 0) return NULL;
    if (!rg) { Py_INCREF(no_edge); return no_edge; }
    *wanted = 1;
    if (!(fn = get(a, T_grad_fn)) || !(info = get(a, T_view_info))) return NULL;
    if (fn != Py_None) {
      int current = 1;
      if (info != Py_None) {
        PyObject *attr = get(info, I_attr_version), *counter = get(a, T_version);
        if (!attr || !counter || !(version = get(counter, V_value))) return NULL;
        if ((current = PyObject_RichCompareBool(attr, version, Py_EQ)) < 0) return NULL;
      }
      if (current) {
        PyObject *nr = get(a, T_output_nr);
        return nr ? PyTuple_Pack(2, fn, nr) : NULL;
      }
    }
    return PyObject_CallOneArg(gradient_edge, a);
  }
  if (!rg) { Py_INCREF(no_edge); return no_edge; }
  *wanted = 1;
  if (!(fn = get(a, T_grad_fn))) return NULL;
  if (fn != Py_None) {
    PyObject *nr = get(a, T_output_nr);
    return nr ? PyTuple_Pack(2, fn, nr) : NULL;
  }
  PyObject *acc = PyObject_CallOneArg(grad_accumulator, a);
  if (!acc) return NULL;
  PyObject *edge = PyTuple_Pack(2, acc, zero);
  Py_DECREF(acc);
  return edge;
}

static PyObject *new_meta(PyObject *a) {  /* TensorMeta(a), without its __init__ call */
  PyObject *meta = meta_type->tp_alloc(meta_type, 0), *v;
  if (!meta) return NULL;
  static const int from[3] = {T_shape, T_dtype, T_device}, to[3] = {M_shape, M_dtype, M_device};
  for (int j = 0; j < 3; j++) {
    if (!(v = get(a, from[j]))) goto fail;
    seto(meta, to[j], v);
  }
  return meta;
fail:
  Py_DECREF(meta);
  return NULL;
}

static PyObject *new_saved(PyObject *a) {  /* SavedVariable(a), without its __init__ call */
  PyObject *saved = saved_type->tp_alloc(saved_type, 0), *counter, *version;
  if (!saved) return NULL;
  if (!(counter = get(a, T_version)) || !(version = get(counter, V_value))) { Py_DECREF(saved); return NULL; }
  seto(saved, S_data, a);
  seto(saved, S_version, version);
  seto(saved, S_is_output, Py_False);
  return saved;
}

static PyObject *args_tuple(PyObject *const *args, Py_ssize_t n) {
  PyObject *t = PyTuple_New(n);
  if (!t) return NULL;
  for (Py_ssize_t i = 0; i < n; i++) { Py_INCREF(args[i]); PyTuple_SET_ITEM(t, i, args[i]); }
  return t;
}

/* the node's layout (derivatives._node): the shared prefix tuple when its tensors come first, else
   True at each tensor's position and None elsewhere (new reference) */
static PyObject *layout_of(PyObject *const *args, Py_ssize_t n, Py_ssize_t count, Py_ssize_t k) {
  if (k == count) {
    PyObject *shared = PyList_GET_ITEM(PyList_GET_ITEM(layouts, n), k);
    Py_INCREF(shared);
    return shared;
  }
  PyObject *layout = PyTuple_New(n);
  if (!layout) return NULL;
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *v = is_tensor(args[i]) ? Py_True : Py_None;
    Py_INCREF(v);
    PyTuple_SET_ITEM(layout, i, v);
  }
  return layout;
}

/* the node's class: the spec's own, else spec.node_class(args, kwargs) (a name decided per call) */
static PyObject *class_of(Kernel *self, PyObject *const *args, Py_ssize_t n, PyObject *kwargs) {
  if (self->node_class != Py_None) { Py_INCREF(self->node_class); return self->node_class; }
  PyObject *tuple = args_tuple(args, n), *kw = kwargs ? kwargs : PyDict_New(), *cls = NULL;
  if (tuple && kw) cls = PyObject_CallMethodObjArgs(self->spec, s_node_class, tuple, kw, NULL);
  Py_XDECREF(tuple);
  if (!kwargs) Py_XDECREF(kw);
  if (cls && (!PyType_Check(cls) || ((PyTypeObject *)cls)->tp_basicsize < base_size)) {
    PyErr_SetString(PyExc_TypeError, "autograd: node_class must give an OpNode class");
    Py_CLEAR(cls);
  }
  return cls;
}

/* the node of a usual call (derivatives._node), or Py_None (new reference) when nothing requires grad */
static PyObject *make_node(Kernel *self, PyObject *const *args, Py_ssize_t n, Py_ssize_t count, Py_ssize_t k,
                           PyObject *kwargs) {
  PyObject *edges = PyTuple_New(count), *metas = PyList_New(count), *kept = PyList_New(n), *node = NULL, *cls = NULL;
  int wanted = 0;
  Py_ssize_t t = 0;  /* tensors seen */
  if (!edges || !metas || !kept) goto done;
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *a = args[i];
    if (!is_tensor(a)) { Py_INCREF(a); PyList_SET_ITEM(kept, i, a); continue; }
    PyObject *meta = new_meta(a);
    if (!meta) goto done;
    PyList_SET_ITEM(metas, t, meta);
    PyObject *edge = edge_of(a, &wanted);
    if (!edge) goto done;
    PyTuple_SET_ITEM(edges, t, edge);
    t++;
    PyObject *keep = meta;
    if ((self->save_mask >> i) & 1) {
      if (!(keep = new_saved(a))) goto done;
    } else {
      Py_INCREF(meta);
    }
    PyList_SET_ITEM(kept, i, keep);
  }
  if (!wanted) { node = Py_None; Py_INCREF(node); goto done; }
  if (!(cls = class_of(self, args, n, kwargs))) goto done;
  if (!(node = ((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, 0))) goto done;
  PyObject *seq = PyObject_CallNoArgs(next_seq);
  if (!seq) goto fail;
  steal(node, N_seq, seq);
  seto(node, N_next_functions, edges);
  seto(node, N_in_meta, metas);
  PyObject *current = PyDict_GetItemWithError(engine_dict, s_current_stream), *stream = Py_None;
  if (!current && PyErr_Occurred()) goto fail;
  if (current && current != Py_None) {
    PyObject *device = get(PyList_GET_ITEM(metas, 0), M_device);
    if (!device || !(stream = PyObject_CallOneArg(current, device))) goto fail;
    steal(node, N_stream, stream);
  } else {
    seto(node, N_stream, Py_None);
  }
  seto(node, N_n_grads, one);
  seto(node, N_extras, Py_None);
  PyObject *layout = layout_of(args, n, count, k), *nk = PyLong_FromSsize_t(k == count ? k : -1);
  if (layout) steal(node, O_layout, layout);
  if (nk) steal(node, O_k, nk);
  if (!layout || !nk) goto fail;
  seto(node, O_spec, self->spec);
  seto(node, O_args, kept);
  seto(node, O_kwargs, kwargs ? kwargs : Py_None);
  seto(node, O_result, Py_None);
  seto(node, O_out_meta, Py_None);
  seto(node, O_needs, Py_None);
  seto(node, O_saves, self->save);
  goto done;
fail:
  Py_CLEAR(node);
done:
  Py_XDECREF(edges);
  Py_XDECREF(metas);
  Py_XDECREF(kept);
  Py_XDECREF(cls);
  return node;
}

/* the device kernel below autograd (autograd_kernel's choice), new reference; Py_None: redispatch */
static PyObject *device_kernel_of(Kernel *self, PyObject *node) {
  PyObject *metas = get(node, N_in_meta), *device, *type, *by_type;
  if (!metas || !(device = get(PyList_GET_ITEM(metas, 0), M_device))) return NULL;
  if (!(type = PyObject_GetAttr(device, s_type))) return NULL;
  int cpu = PyUnicode_Compare(type, s_cpu) == 0;
  PyObject *kernel;
  if (cpu) {
    kernel = PyObject_CallFunctionObjArgs(device_kernel, self->op, metas, NULL);
  } else if (!(by_type = get(self->op, P_by_type))) {
    kernel = NULL;
  } else {
    kernel = PyDict_GetItemWithError(by_type, type);
    if (kernel || !PyErr_Occurred()) {
      kernel = kernel ? kernel : Py_None;
      Py_INCREF(kernel);
    }
  }
  Py_DECREF(type);
  return kernel;
}

static PyObject *run_below(Kernel *self, PyObject *kernel, PyObject *const *args, Py_ssize_t n, PyObject *kwnames) {
  if (kernel != Py_None) return PyObject_Vectorcall(kernel, args, n, kwnames);
  /* op.redispatch(None, *args, **kwargs) */
  PyObject *stack[MAX_ARGS + 16];
  Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (n + nk + 2 > MAX_ARGS + 16) { PyErr_SetString(PyExc_RuntimeError, "autograd: too many arguments"); return NULL; }
  stack[0] = self->op;
  stack[1] = Py_None;
  for (Py_ssize_t i = 0; i < n + nk; i++) stack[i + 2] = args[i];
  return PyObject_VectorcallMethod(s_redispatch, stack, n + 2, kwnames);
}

/* view_history's tracked-view record of a single output of a view op (derivatives._record_view's
   usual case): 1 done, 0 not the usual case, -1 error */
static int record_view_fast(PyObject *view, PyObject *const *args) {
  PyObject *root = get(view, T_base), *parent = args[0], *pbase, *info, *attr, *counter, *version, *dtype, *rdtype;
  if (!root || !is_tensor(parent) || !(pbase = get(parent, T_base))) return root ? 0 : -1;
  if ((pbase != Py_None ? pbase : parent) != root) return 0;
  if (!(info = get(view, T_view_info)) || !(dtype = get(view, T_dtype)) || !(rdtype = get(root, T_dtype))) return -1;
  if (info == Py_None || dtype != rdtype) return 0;
  if (!(attr = get(info, I_attr_version)) || !(counter = get(view, T_version)) || !(version = get(counter, V_value)))
    return -1;
  int current = PyObject_RichCompareBool(attr, version, Py_EQ);
  if (current <= 0) return current;
  PyObject *pinfo = get(parent, T_view_info), *meta;
  if (!pinfo) return -1;
  if (pinfo == Py_None) {
    meta = creation_default;
  } else if (!(meta = get(pinfo, I_creation_meta))) {
    return -1;
  }
  seto(info, I_creation_meta, meta);
  return 1;
}

/* point the output at node (derivatives._mark_outputs' usual case: one new floating-point tensor),
   else the Python's general path; the result (new reference) */
static PyObject *mark(Kernel *self, PyObject *node, PyObject *result, PyObject *const *args, Py_ssize_t n) {
  int usual = Py_TYPE(result) == tensor_type;
  if (usual) {
    PyObject *dtype = get(result, T_dtype), *category;
    if (!dtype || !(category = get(dtype, D_category))) return NULL;
    usual = PyLong_AsLong(category) >= 2;
    for (Py_ssize_t i = 0; usual && i < n; i++) usual = args[i] != result;
  }
  if (!usual) {
    PyObject *tuple = args_tuple(args, n);
    if (!tuple) return NULL;
    PyObject *out = PyObject_CallFunctionObjArgs(mark_outputs, self->save_result ? Py_True : Py_False, node, result,
                                                 tuple, NULL);
    Py_DECREF(tuple);
    return out;
  }
  seto(result, T_grad_fn, node);
  seto(result, T_output_nr, zero);
  seto(result, T_requires_grad, Py_True);
  PyObject *base = get(result, T_base);
  if (!base) return NULL;
  if (base != Py_None) {
    int done = record_view_fast(result, args);
    if (done < 0) return NULL;
    if (!done) {
      PyObject *tuple = args_tuple(args, n), *r;
      if (!tuple) return NULL;
      r = PyObject_CallFunctionObjArgs(record_view, node, result, zero, Py_True, tuple, NULL);
      Py_DECREF(tuple);
      if (!r) return NULL;
      Py_DECREF(r);
    }
  }
  if (self->save_result) {
    PyObject *saved = PyObject_CallFunctionObjArgs(saved_variable, result, Py_True, NULL);
    if (!saved) return NULL;
    steal(node, O_result, saved);
  }
  Py_INCREF(result);
  return result;
}

static PyObject *kwargs_dict(PyObject *const *args, Py_ssize_t n, PyObject *kwnames) {
  PyObject *d = PyDict_New();
  if (!d) return NULL;
  for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(kwnames); j++)
    if (PyDict_SetItem(d, PyTuple_GET_ITEM(kwnames, j), args[n + j]) < 0) { Py_DECREF(d); return NULL; }
  return d;
}

static PyObject *kernel_call(Kernel *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  Py_ssize_t n = PyVectorcall_NARGS(nargsf), count = 0, k = 0;
  if (!usual_call(self, args, n, kwnames, &count, &k)) return PyObject_Vectorcall(self->python, args, nargsf, kwnames);
  PyObject *mode = grad_mode();
  if (!mode) return NULL;
  Py_DECREF(mode);
  if (mode != Py_True) return PyObject_Vectorcall(self->python, args, nargsf, kwnames);
  PyObject *kwargs = NULL, *node = NULL, *kernel = NULL, *result = NULL, *out = NULL;
  if (kwnames && PyTuple_GET_SIZE(kwnames) && !(kwargs = kwargs_dict(args, n, kwnames))) return NULL;
  if (!(node = make_node(self, args, n, count, k, kwargs))) goto done;
  if (node == Py_None) {  /* nothing requires grad after all: the Python's redispatch */
    out = PyObject_Vectorcall(self->python, args, nargsf, kwnames);
    goto done;
  }
  if (!(kernel = device_kernel_of(self, node))) goto done;
  if (set_grad_mode(Py_False) < 0) goto done;
  result = run_below(self, kernel, args, n, kwnames);
  if (set_grad_mode(Py_True) < 0 || !result) goto done;
  out = mark(self, node, result, args, n);
done:
  Py_XDECREF(kwargs);
  Py_XDECREF(node);
  Py_XDECREF(kernel);
  Py_XDECREF(result);
  return out;
}

static PyObject *kernel_new(PyTypeObject *type, PyObject *a, PyObject *kw) {
  PyObject *spec, *python, *op, *save, *node_class, *name;
  unsigned long long save_mask, geometry_mask;
  int save_result;
  if (!PyArg_ParseTuple(a, "OOOOpKKOU", &spec, &python, &op, &save, &save_result, &save_mask, &geometry_mask,
                        &node_class, &name))
    return NULL;
  if (node_class != Py_None && (!PyType_Check(node_class) || ((PyTypeObject *)node_class)->tp_basicsize < base_size)) {
    PyErr_SetString(PyExc_TypeError, "Kernel: node_class must be an OpNode class");
    return NULL;
  }
  Kernel *self = (Kernel *)type->tp_alloc(type, 0);
  if (!self) return NULL;
  self->vectorcall = (vectorcallfunc)kernel_call;
  Py_INCREF(spec); self->spec = spec;
  Py_INCREF(python); self->python = python;
  Py_INCREF(op); self->op = op;
  Py_INCREF(save); self->save = save;
  Py_INCREF(node_class); self->node_class = node_class;
  Py_INCREF(name); self->name = name;
  self->save_mask = save_mask;
  self->geometry_mask = geometry_mask;
  self->save_result = save_result;
  return (PyObject *)self;
}

static int kernel_traverse(Kernel *self, visitproc visit, void *arg) {
  Py_VISIT(self->spec); Py_VISIT(self->python); Py_VISIT(self->op); Py_VISIT(self->save);
  Py_VISIT(self->node_class);
  return 0;
}
static int kernel_clear(Kernel *self) {
  Py_CLEAR(self->spec); Py_CLEAR(self->python); Py_CLEAR(self->op); Py_CLEAR(self->save);
  Py_CLEAR(self->node_class); Py_CLEAR(self->name);
  return 0;
}
static void kernel_dealloc(Kernel *self) {
  PyObject_GC_UnTrack(self);
  kernel_clear(self);
  Py_TYPE(self)->tp_free((PyObject *)self);
}
static PyObject *kernel_get_name(Kernel *self, void *c) { Py_INCREF(self->name); return self->name; }
static int kernel_set_name(Kernel *self, PyObject *v, void *c) {
  if (!v || !PyUnicode_Check(v)) { PyErr_SetString(PyExc_TypeError, "__name__ must be a str"); return -1; }
  Py_INCREF(v);
  Py_SETREF(self->name, v);
  return 0;
}
static PyObject *kernel_repr(Kernel *self) { return PyUnicode_FromFormat("<autograd kernel %U (C)>", self->name); }

static PyGetSetDef kernel_getset[] = {
  {"__name__", (getter)kernel_get_name, (setter)kernel_set_name, NULL, NULL},
  {NULL}};

static PyTypeObject KernelType = {
  PyVarObject_HEAD_INIT(NULL, 0)
  .tp_name = "vt_fastgrad.Kernel",
  .tp_basicsize = sizeof(Kernel),
  .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
  .tp_vectorcall_offset = offsetof(Kernel, vectorcall),
  .tp_call = PyVectorcall_Call,
  .tp_new = kernel_new,
  .tp_traverse = (traverseproc)kernel_traverse,
  .tp_clear = (inquiry)kernel_clear,
  .tp_dealloc = (destructor)kernel_dealloc,
  .tp_getset = kernel_getset,
  .tp_repr = (reprfunc)kernel_repr,
};

static PyObject *keep(PyObject *d, const char *key) {  /* d[key], a new reference kept for good */
  PyObject *v = PyDict_GetItemString(d, key);
  if (!v) PyErr_Format(PyExc_KeyError, "install: %s missing", key);
  Py_XINCREF(v);
  return v;
}

/* -- the backward walk (engine._walk) ------------------------------------------------------------------ */
static PyTypeObject *accumulate_type;
static PyObject *heappush, *heappop, *heappushpop, *walk_python, *run_special, *apply_python, *validate_output,
                *accumulate, *count_error;
static PyObject *s_variable, *s_apply, *s_release, *s_hooks, *s_stream_sync, *s_stream_enter, *s_current_at, *s_device_index;

static PyObject *call2(PyObject *f, PyObject *a, PyObject *b) {
  PyObject *args[2] = {a, b};
  return PyObject_Vectorcall(f, args, 2, NULL);
}

/* (-nxt._seq, next(tie), nxt, buf): a ready-queue entry (new reference) */
static PyObject *entry_of(PyObject *nxt, PyObject *tie, PyObject *buf) {
  PyObject *seq = get(nxt, N_seq), *neg, *nr;
  if (!seq || !(neg = PyNumber_Negative(seq))) return NULL;
  if (!(nr = PyIter_Next(tie))) { Py_DECREF(neg); return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_RuntimeError, "tie"); }
  PyObject *entry = PyTuple_Pack(4, neg, nr, nxt, buf);
  Py_DECREF(neg);
  Py_DECREF(nr);
  return entry;
}

static int push(PyObject *ready, PyObject *entry) {
  PyObject *r = call2(heappush, ready, entry);
  Py_XDECREF(r);
  return r ? 0 : -1;
}

static PyObject *new_buffer(Py_ssize_t n) {  /* [None] * n */
  PyObject *buf = PyList_New(n);
  if (!buf) return NULL;
  for (Py_ssize_t i = 0; i < n; i++) { Py_INCREF(Py_None); PyList_SET_ITEM(buf, i, Py_None); }
  return buf;
}

/* g fits the input it is for as it is (validate_outputs' test) */
static int fits(PyObject *g, PyObject *m) {
  if (Py_TYPE(g) != tensor_type) return 0;
  PyObject *gs = get(g, T_shape), *ms = get(m, M_shape), *gd = get(g, T_dtype), *md = get(m, M_dtype),
           *gv = get(g, T_device), *mv = get(m, M_device);
  if (!gs || !ms || !gd || !md || !gv || !mv) return -1;
  if (gd != md || gv != mv) return 0;
  return gs == ms ? 1 : PyObject_RichCompareBool(gs, ms, Py_EQ);
}

/* one gradient g (owned) into nxt's buffer; *pending: the last entry made ready (engine._deliver's body) */
static int deliver_one(PyObject *g, PyObject *nxt, PyObject *nr, PyObject *deps, PyObject *buffers,
                       PyObject *ready, PyObject *tie, PyObject **pending) {
  int rc = -1;
  PyObject *buf = NULL, *count = PyDict_GetItemWithError(deps, nxt);
  if (!count) { if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, nxt); goto done; }
  long long left = PyLong_AsLongLong(count) - 1;
  if (left == -2 && PyErr_Occurred()) goto done;
  Py_ssize_t slot = PyLong_AsSsize_t(nr);
  if (slot == -1 && PyErr_Occurred()) goto done;
  int ready_now = 0;
  if (left) {
    PyObject *v = PyLong_FromLongLong(left);
    if (!v || PyDict_SetItem(deps, nxt, v) < 0) { Py_XDECREF(v); goto done; }
    Py_DECREF(v);
    buf = PyDict_GetItemWithError(buffers, nxt);
    if (buf) {
      Py_INCREF(buf);
    } else {
      PyObject *n = get(nxt, N_n_grads);
      Py_ssize_t size = n ? PyLong_AsSsize_t(n) : -1;
      if (PyErr_Occurred() || !(buf = new_buffer(size)) || PyDict_SetItem(buffers, nxt, buf) < 0) goto done;
    }
  } else {
    buf = PyDict_GetItemWithError(buffers, nxt);
    if (!buf && PyErr_Occurred()) goto done;
    if (buf) {
      Py_INCREF(buf);
      if (PyDict_DelItem(buffers, nxt) < 0) goto done;
    } else {  /* nxt waited for this gradient alone (most nodes): a buffer holding it */
      PyObject *n = get(nxt, N_n_grads);
      Py_ssize_t size = n ? PyLong_AsSsize_t(n) : -1;
      if (PyErr_Occurred() || !(buf = new_buffer(size))) goto done;
      Py_ssize_t at = size == 1 ? 0 : slot;  /* ([g] when it takes one gradient, as the Python) */
      if (at < 0 || at >= size) { PyErr_SetString(PyExc_IndexError, "list assignment index out of range"); goto done; }
      PyList_SetItem(buf, at, g);
      g = NULL;
    }
    ready_now = 1;
  }
  if (ready_now) {
    if (*pending) {
      int pushed = push(ready, *pending);
      Py_CLEAR(*pending);
      if (pushed < 0) goto done;
    }
    if (!(*pending = entry_of(nxt, tie, buf))) goto done;
  }
  if (g && g != Py_None) {
    if (slot < 0 || slot >= PyList_GET_SIZE(buf)) { PyErr_SetString(PyExc_IndexError, "list index out of range"); goto done; }
    PyObject *old = PyList_GET_ITEM(buf, slot);
    if (old == Py_None) {
      PyList_SetItem(buf, slot, g);
      g = NULL;
    } else {
      Py_INCREF(old);  /* (the Python's local `old`: _accumulate counts the references to it) */
      PyObject *sum = call2(accumulate, old, g);
      Py_DECREF(old);
      if (!sum) goto done;
      PyList_SetItem(buf, slot, sum);
    }
  }
  rc = 0;
done:
  Py_XDECREF(g);
  Py_XDECREF(buf);
  return rc;
}

/* engine._deliver: node's gradients handed on, each validated; the last entry made ready or NULL
   (*failed set on an error) */
static PyObject *deliver(PyObject *node, PyObject *outs, PyObject *deps, PyObject *buffers, PyObject *ready,
                         PyObject *tie, int *failed) {
  PyObject *pending = NULL, *edges = get(node, N_next_functions), *metas = get(node, N_in_meta), *stream, *sync = NULL;
  PyObject *fast_outs = NULL, *fast_metas = NULL;
  *failed = 1;
  if (!edges || !metas || !(stream = get(node, N_stream))) return NULL;
  if (!(fast_outs = PySequence_Fast(outs, "gradients")) || !(fast_metas = PySequence_Fast(metas, "metas"))) goto fail;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(fast_outs);
  if (!PyTuple_Check(edges) || n != PyTuple_GET_SIZE(edges)) {
    PyObject *e = PyObject_CallFunctionObjArgs(count_error, node, outs, NULL);
    if (e) { PyErr_SetObject((PyObject *)Py_TYPE(e), e); Py_DECREF(e); }
    goto fail;
  }
  if (stream != Py_None && !(sync = PyDict_GetItemWithError(engine_dict, s_stream_sync)) && PyErr_Occurred()) goto fail;
  if (sync == Py_None) sync = NULL;
  for (Py_ssize_t i = 0; i < n && i < PySequence_Fast_GET_SIZE(fast_metas); i++) {
    PyObject *edge = PyTuple_GET_ITEM(edges, i), *nxt, *nr;
    if (!PyTuple_Check(edge) || PyTuple_GET_SIZE(edge) != 2) { PyErr_SetString(PyExc_TypeError, "bad edge"); goto fail; }
    nxt = PyTuple_GET_ITEM(edge, 0);
    nr = PyTuple_GET_ITEM(edge, 1);
    if (nxt == Py_None) continue;
    PyObject *g = PySequence_Fast_GET_ITEM(fast_outs, i), *m = PySequence_Fast_GET_ITEM(fast_metas, i);
    Py_INCREF(g);
    if (g != Py_None) {
      int ok = fits(g, m);
      if (ok < 0) { Py_DECREF(g); goto fail; }
      if (!ok) {
        PyObject *idx = PyLong_FromSsize_t(i), *fixed = NULL;
        if (idx) fixed = PyObject_CallFunctionObjArgs(validate_output, node, idx, g, m, nxt, NULL);
        Py_XDECREF(idx);
        Py_DECREF(g);
        if (!(g = fixed)) goto fail;
      }
      PyObject *nstream;
      if (sync && g != Py_None) {
        if (!(nstream = get(nxt, N_stream))) { Py_DECREF(g); goto fail; }
        if (nstream != stream) {
          PyObject *synced = PyObject_CallFunctionObjArgs(sync, g, node, nxt, NULL);
          Py_DECREF(g);
          if (!(g = synced)) goto fail;
        }
      }
    }
    if (deliver_one(g, nxt, nr, deps, buffers, ready, tie, &pending) < 0) goto fail;
  }
  Py_DECREF(fast_outs);
  Py_DECREF(fast_metas);
  *failed = 0;
  return pending;
fail:
  Py_XDECREF(fast_outs);
  Py_XDECREF(fast_metas);
  Py_XDECREF(pending);
  return NULL;
}

/* engine._apply: node.apply on the node's stream; [None] * edges when no gradient came at all */
static PyObject *apply_node(PyObject *node, PyObject *grads) {
  if (!PyList_CheckExact(grads)) return PyObject_CallFunctionObjArgs(apply_python, node, grads, NULL);
  Py_ssize_t n = PyList_GET_SIZE(grads), i;
  for (i = 0; i < n && PyList_GET_ITEM(grads, i) == Py_None; i++) {}
  PyObject *stream = get(node, N_stream), *enter;
  if (!stream) return NULL;
  if (i == n) return PyObject_CallFunctionObjArgs(apply_python, node, grads, NULL);  /* (rare) */
  if (stream != Py_None) {
    if (!(enter = PyDict_GetItemWithError(engine_dict, s_stream_enter)) && PyErr_Occurred()) return NULL;
    if (enter && enter != Py_None) {  /* already on the node's stream (the usual case): nothing to enter */
      PyObject *at = PyDict_GetItemWithError(engine_dict, s_current_at), *index, *current;
      if (!at && PyErr_Occurred()) return NULL;
      if (!at || at == Py_None) return PyObject_CallFunctionObjArgs(apply_python, node, grads, NULL);
      if (!(index = PyObject_GetAttr(stream, s_device_index))) return NULL;
      current = PyObject_CallOneArg(at, index);
      Py_DECREF(index);
      if (!current) return NULL;
      Py_DECREF(current);
      if (current != stream) return PyObject_CallFunctionObjArgs(apply_python, node, grads, NULL);
    }
  }
  return PyObject_CallMethodOneArg(node, s_apply, grads);
}

/* engine._walk: run the ready queue until it is empty */
static PyObject *walk(PyObject *m, PyObject *const *a, Py_ssize_t na) {
  if (na != 7) { PyErr_SetString(PyExc_TypeError, "walk takes 7 arguments"); return NULL; }
  if (!enabled) return PyObject_Vectorcall(walk_python, a, na, NULL);
  PyObject *ready = a[0], *deps = a[1], *buffers = a[2], *tie = a[3], *captures = a[5], *needed = a[6];
  int keep_graph = PyObject_IsTrue(a[4]);
  if (keep_graph < 0 || !PyList_Check(ready) || !PyDict_Check(deps) || !PyDict_Check(buffers)) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "walk: ready list, deps and buffers dicts");
    return NULL;
  }
  PyObject *pending = NULL, *entry = NULL, *node = NULL, *grads = NULL, *outs = NULL;
  for (;;) {
    if (pending) {  /* push it and pop the first: heappushpop hands it straight back when it comes first */
      entry = PyList_GET_SIZE(ready) ? call2(heappushpop, ready, pending) : (Py_INCREF(pending), pending);
      Py_CLEAR(pending);
    } else if (PyList_GET_SIZE(ready)) {
      entry = PyObject_CallOneArg(heappop, ready);
    } else {
      break;
    }
    if (!entry) goto fail;
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 4) { PyErr_SetString(PyExc_TypeError, "bad entry"); goto fail; }
    node = PyTuple_GET_ITEM(entry, 2); Py_INCREF(node);
    grads = PyTuple_GET_ITEM(entry, 3); Py_INCREF(grads);
    Py_CLEAR(entry);
    PyObject *extras = get(node, N_extras), *anomaly = PyDict_GetItem(anomaly_dict, s_enabled);
    if (!extras) goto fail;
    int usual = extras == Py_None && needed == Py_None && anomaly == Py_False;
    if (usual && Py_TYPE(node) == accumulate_type) {  /* a leaf: into leaf.grad (no edges: nothing to deliver) */
      PyObject *variable = PyObject_GetAttr(node, s_variable), *hooks, *r;
      if (!variable) goto fail;
      hooks = PyObject_GetAttr(variable, s_hooks);
      Py_DECREF(variable);
      if (!hooks) goto fail;
      int hooked = PyObject_IsTrue(hooks);
      Py_DECREF(hooks);
      if (hooked < 0) goto fail;
      r = hooked ? PyObject_CallFunctionObjArgs(run_special, node, grads, captures, needed, NULL)
                 : PyObject_CallMethodOneArg(node, s_apply, grads);
      if (!r) goto fail;
      Py_DECREF(r);
      Py_CLEAR(node);
      Py_CLEAR(grads);
      continue;
    }
    outs = usual ? apply_node(node, grads) : PyObject_CallFunctionObjArgs(run_special, node, grads, captures, needed, NULL);
    Py_CLEAR(grads);
    if (!outs) goto fail;
    if (!usual && outs == Py_None) { Py_CLEAR(outs); Py_CLEAR(node); continue; }  /* (nothing to deliver) */
    int failed;
    pending = deliver(node, outs, deps, buffers, ready, tie, &failed);
    Py_CLEAR(outs);  /* hold no gradient here: AccumulateGrad steals one only when nobody else does */
    if (failed) goto fail;
    if (!keep_graph) {
      PyObject *r = PyObject_CallMethodNoArgs(node, s_release);
      if (!r) goto fail;
      Py_DECREF(r);
    }
    Py_CLEAR(node);
  }
  Py_RETURN_NONE;
fail:
  Py_XDECREF(pending);
  Py_XDECREF(entry);
  Py_XDECREF(node);
  Py_XDECREF(grads);
  Py_XDECREF(outs);
  return NULL;
}

static PyObject *install_engine(PyObject *m, PyObject *d) {
  if (!PyDict_Check(d)) { PyErr_SetString(PyExc_TypeError, "install_engine(dict)"); return NULL; }
  if (!(accumulate_type = (PyTypeObject *)keep(d, "AccumulateGrad")) || !(heappush = keep(d, "heappush")) ||
      !(heappop = keep(d, "heappop")) || !(heappushpop = keep(d, "heappushpop")) || !(walk_python = keep(d, "walk")) ||
      !(run_special = keep(d, "run_special")) || !(apply_python = keep(d, "apply")) ||
      !(validate_output = keep(d, "validate_output")) || !(accumulate = keep(d, "accumulate")) ||
      !(count_error = keep(d, "count_error")))
    return NULL;
  Py_RETURN_NONE;
}

/* -- install --------------------------------------------------------------------------------------- */
static PyObject *install(PyObject *m, PyObject *d) {
  if (!PyDict_Check(d)) { PyErr_SetString(PyExc_TypeError, "install(dict)"); return NULL; }
  PyObject *slots = PyDict_GetItemString(d, "slots");
  if (!slots) { PyErr_SetString(PyExc_KeyError, "install: slots missing"); return NULL; }
  for (int k = 0; k < N_OFFSETS; k++) {  /* member descriptors: {"Tensor._shape": descriptor, ...} */
    PyObject *descr = PyDict_GetItemString(slots, names[k]);
    if (!descr || Py_TYPE(descr) != &PyMemberDescr_Type) {
      PyErr_Format(PyExc_TypeError, "install: %s is not a slot", names[k]);
      return NULL;
    }
    PyMemberDef *def = ((PyMemberDescrObject *)descr)->d_member;
    off[k] = def->offset;
  }
  if (!(tensor_type = (PyTypeObject *)keep(d, "Tensor")) || !(meta_type = (PyTypeObject *)keep(d, "TensorMeta")) ||
      !(saved_type = (PyTypeObject *)keep(d, "SavedVariable")) || !(local = keep(d, "local")) ||
      !(engine_dict = keep(d, "engine")) || !(anomaly_dict = keep(d, "anomaly")) || !(layouts = keep(d, "layouts")) ||
      !(no_edge = keep(d, "no_edge")) || !(creation_default = keep(d, "DEFAULT")) ||
      !(gradient_edge = keep(d, "gradient_edge")) || !(grad_accumulator = keep(d, "grad_accumulator")) ||
      !(mark_outputs = keep(d, "mark_outputs")) || !(record_view = keep(d, "record_view")) ||
      !(device_kernel = keep(d, "device_kernel")) || !(next_seq = keep(d, "next_seq")) ||
      !(saved_variable = keep(d, "SavedVariable")))
    return NULL;
  PyObject *opnode = PyDict_GetItemString(d, "OpNode");
  if (!opnode || !PyType_Check(opnode)) { PyErr_SetString(PyExc_TypeError, "install: OpNode missing"); return NULL; }
  base_size = ((PyTypeObject *)opnode)->tp_basicsize;
  if (!PyList_Check(layouts) || PyList_GET_SIZE(layouts) < MAX_ARGS || !PyTuple_Check(no_edge)) {
    PyErr_SetString(PyExc_TypeError, "install: bad layouts or no_edge");
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *set_enabled(PyObject *m, PyObject *flag) {
  int was = enabled, v = PyObject_IsTrue(flag);
  if (v < 0) return NULL;
  enabled = v;
  return PyBool_FromLong(was);
}

static PyMethodDef methods[] = {
  {"walk", (PyCFunction)(void (*)(void))walk, METH_FASTCALL,
   "walk(ready, deps, buffers, tie, keep_graph, captures, needed): engine._walk in C"},
  {"install_engine", install_engine, METH_O, "install_engine({...}): what walk calls back"},
  {"install", install, METH_O, "install({slots, types, hooks}): where the C reads and what it calls back"},
  {"set_enabled", set_enabled, METH_O, "set_enabled(flag) -> previous: off, every Kernel runs its Python"},
  {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "vt_fastgrad", NULL, -1, methods};

PyMODINIT_FUNC PyInit_vt_fastgrad(void) {
  if (PyType_Ready(&KernelType) < 0) return NULL;
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  if (!(s_grad_enabled = PyUnicode_InternFromString("grad_enabled")) ||
      !(s_current_stream = PyUnicode_InternFromString("current_stream")) ||
      !(s_enabled = PyUnicode_InternFromString("_enabled")) || !(s_type = PyUnicode_InternFromString("type")) ||
      !(s_redispatch = PyUnicode_InternFromString("redispatch")) || !(s_out = PyUnicode_InternFromString("out")) ||
      !(s_cpu = PyUnicode_InternFromString("cpu")) || !(zero = PyLong_FromLong(0)) ||
      !(s_variable = PyUnicode_InternFromString("variable")) ||
      !(s_node_class = PyUnicode_InternFromString("node_class")) ||
      !(s_apply = PyUnicode_InternFromString("apply")) || !(s_release = PyUnicode_InternFromString("release")) ||
      !(s_hooks = PyUnicode_InternFromString("_hooks")) ||
      !(s_stream_sync = PyUnicode_InternFromString("_stream_sync")) ||
      !(s_stream_enter = PyUnicode_InternFromString("_stream_enter")) ||
      !(s_current_at = PyUnicode_InternFromString("_current_at")) ||
      !(s_device_index = PyUnicode_InternFromString("device_index")) || !(one = PyLong_FromLong(1))) {
    Py_DECREF(m);
    return NULL;
  }
  Py_INCREF(&KernelType);
  if (PyModule_AddObject(m, "Kernel", (PyObject *)&KernelType) < 0) { Py_DECREF(m); return NULL; }
  return m;
}
"""

module = Extension("vt_fastgrad", _SRC, switch="VIBETENSOR_FASTGRAD")
"""The compiled extension, or None where it cannot be built or VIBETENSOR_FASTGRAD=0 (then the Python runs)."""
