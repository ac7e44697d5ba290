"""The dispatcher's per-call path in C: Op.__call__ and Op.call_on.

Every op call goes through Op.__call__ (a scan of the arguments for their device type and for
whether any requires grad, then a kernel picked and called), and every view a composite or a
Tensor method makes goes through Op.call_on. Their Python (dispatcher.py) is already at its floor,
about 90 and 30 bytecodes a call, and still near a tenth of a training step's host time. This
module does the same work over the same objects: it reads the slots of Op (_autograd, _by_type),
Tensor (_device, _requires_grad, _base) and device (type) directly, and hands anything uncommon
back to the Python, which stays the specification:

    __call__(self, *args, **kwargs)   Op.__call__; its Python is Op.call_python
    call_on(self, t, *args)           Op.call_on; its Python is Op.call_on_python

What goes back to the Python whole (it recomputes what the C computed; the scan has no side
effects): a wrapper key switched on (_active_wrappers), a device type the op has no kernel for yet
(a lazy backend, or the NotImplementedError), an Op whose _by_type is not a dict; for call_on, a
first argument that is not a Tensor, or keywords. Lists and tuples of tensors are scanned in C.
`_active_wrappers` and `local` are read from the dispatcher's module dict on each call, as the
Python reads its globals (set_wrapper_active rebinds the list). One difference no caller sees:
isinstance(a, Tensor) is a type check here, blind to objects that fake their __class__.

It is built once by runtime/native.py (a C compiler and Python's headers); where that fails, or
VIBETENSOR_FASTDISPATCH=0, the Python runs and `module()` is None. tests/test_dispatch_native.py
runs the dispatch behaviours on both.
"""
from vibetensor.runtime.native import Extension

_SRC = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* slot offsets, read from the classes' member descriptors by install() */
enum { O_autograd, O_by_type, T_device, T_requires_grad, T_base, D_type, N_OFFSETS };
static const char *names[N_OFFSETS] = {"_autograd", "_by_type", "_device", "_requires_grad", "_base", "type"};
static Py_ssize_t off[N_OFFSETS];
static PyObject *s_names[N_OFFSETS];  /* the same names, interned */

static PyTypeObject *tensor_type, *device_cls;  /* dispatcher's Tensor, tensor.device.device */
static PyObject *globals;                       /* dispatcher's module dict */
static PyObject *call_python, *call_on_python;  /* the specification, for what the C does not take */
static PyObject *s_active_wrappers, *s_local, *s_grad_enabled, *s_cpu, *s_partition, *s_colon;

/* -- reads ------------------------------------------------------------------------------------- */
/* o's slot k, borrowed; a slot never set raises the AttributeError the Python's read raises */
static PyObject *slot(PyObject *o, int k) {
  PyObject *v = SLOT(o, off[k]);
  if (v) return v;
  v = PyObject_GetAttr(o, s_names[k]);  /* (raises: the attribute's own message) */
  if (v) {
    Py_DECREF(v);
    PyErr_Format(PyExc_AttributeError, "dispatcher: slot %s is not set", names[k]);
  }
  return NULL;
}
static int truth(PyObject *v) { return v == Py_True ? 1 : v == Py_False ? 0 : PyObject_IsTrue(v); }
/* type == "cpu" (device types are str: settled by their length, mostly) */
static int is_cpu(PyObject *type) {
  if (type == s_cpu) return 1;
  if (PyUnicode_CheckExact(type)) return PyUnicode_GET_LENGTH(type) == 3 && PyUnicode_Compare(type, s_cpu) == 0;
  return PyObject_RichCompareBool(type, s_cpu, Py_EQ);
}
static int is_seq(PyObject *a) { return PyList_CheckExact(a) || PyTuple_CheckExact(a); }  /* type(a) in _SEQUENCES */

/* a._device.type, a new reference */
static PyObject *device_type_of(PyObject *a) {
  PyObject *d = slot(a, T_device);
  if (!d) return NULL;
  if (!Py_IS_TYPE(d, device_cls)) return PyObject_GetAttr(d, s_names[D_type]);
  PyObject *type = slot(d, D_type);
  return Py_XNewRef(type);
}

/* a._requires_grad or (a._base is not None and a._base._requires_grad): a view requires grad when
   its base does. -1 on an exception. */
static int requires_grad(PyObject *a) {
  PyObject *r = slot(a, T_requires_grad), *base;
  int g = r ? truth(r) : -1;
  if (g != 0) return g;
  if (!(base = slot(a, T_base))) return -1;
  if (base == Py_None) return 0;
  if (PyObject_TypeCheck(base, tensor_type)) {
    r = slot(base, T_requires_grad);
    return r ? truth(r) : -1;
  }
  r = PyObject_GetAttr(base, s_names[T_requires_grad]);
  g = r ? truth(r) : -1;
  Py_XDECREF(r);
  return g;
}

/* local.grad_enabled (this thread's grad mode), `local` read from the module as the Python reads it */
static int grad_mode(void) {
  PyObject *local = PyDict_GetItemWithError(globals, s_local);
  if (!local) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_NameError, "name 'local' is not defined");
    return -1;
  }
  Py_INCREF(local);
  PyObject *v = PyObject_GetAttr(local, s_grad_enabled);
  Py_DECREF(local);
  int on = v ? truth(v) : -1;
  Py_XDECREF(v);
  return on;
}

/* whether a wrapper key is on (`if _active_wrappers:`, the module's current list) */
static int wrappers_on(void) {
  PyObject *w = PyDict_GetItemWithError(globals, s_active_wrappers);
  if (!w) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_NameError, "name '_active_wrappers' is not defined");
    return -1;
  }
  return PyList_CheckExact(w) ? PyList_GET_SIZE(w) != 0 : PyObject_IsTrue(w);
}

/* -- the argument scan ------------------------------------------------------------------------- */
typedef struct {
  PyObject *device;  /* the device type so far, a new reference; NULL while None */
  int grad;          /* whether a tensor requires grad */
  int grad_mode;     /* local.grad_enabled once read; -2 until then */
} Scan;

static int scan_grad_mode(Scan *s) {  /* local.grad_enabled, read once a call */
  if (s->grad_mode == -2) s->grad_mode = grad_mode();
  return s->grad_mode;
}
/* the device type a tensor can still set: none yet, or CPU (a CPU tensor yields to a GPU one) */
static int device_open(Scan *s) { return s->device ? is_cpu(s->device) : 1; }

/* one tensor into the scan (_scan's Tensor branch) */
static int scan_tensor(Scan *s, PyObject *a) {
  int open = device_open(s), g;
  if (open < 0) return -1;
  if (open) {
    PyObject *type = device_type_of(a);
    if (!type) return -1;
    Py_XSETREF(s->device, type);
  }
  if ((g = requires_grad(a)) < 0) return -1;
  s->grad |= g;
  return 0;
}

/* _scan(seq): tensors anywhere in nested lists and tuples */
static int scan_seq(Scan *s, PyObject *seq) {
  if (Py_EnterRecursiveCall(" in the dispatcher's argument scan")) return -1;
  int rc = 0;
  for (Py_ssize_t i = 0; rc == 0 && i < PySequence_Fast_GET_SIZE(seq); i++) {
    PyObject *a = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));  /* (held: a read may run Python) */
    if (PyObject_TypeCheck(a, tensor_type)) rc = scan_tensor(s, a);
    else if (is_seq(a)) rc = scan_seq(s, a);
    Py_DECREF(a);
  }
  Py_LeaveRecursiveCall();
  return rc;
}

/* _device_type(seq): the first non-CPU device type in nested lists and tuples, else "cpu" if
   there is a tensor; *found NULL for None. The device alone: no grad is read. */
static int device_type_seq(PyObject *seq, PyObject **found) {
  if (Py_EnterRecursiveCall(" in the dispatcher's argument scan")) return -1;
  int rc = 0, cpu = 1;
  for (Py_ssize_t i = 0; rc == 0 && cpu == 1 && i < PySequence_Fast_GET_SIZE(seq); i++) {
    PyObject *a = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i)), *type = NULL;
    if (PyObject_TypeCheck(a, tensor_type)) rc = (type = device_type_of(a)) ? 0 : -1;
    else if (is_seq(a)) rc = device_type_seq(a, &type);
    Py_DECREF(a);
    if (rc < 0) Py_XDECREF(type);
    else if (type) {
      Py_XSETREF(*found, type);
      cpu = is_cpu(type);  /* (not CPU: settled; -1: an exception) */
      rc = cpu < 0 ? -1 : 0;
    }
  }
  Py_LeaveRecursiveCall();
  return rc;
}

/* a list or tuple argument of Op.__call__: most are shapes or dims (ints only, nothing to scan);
   otherwise _scan with grad mode on, and with it off only the device (settled at the first GPU) */
static int scan_sequence_arg(Scan *s, PyObject *a) {
  Py_ssize_t n = PySequence_Fast_GET_SIZE(a), i = 0;
  while (i < n && Py_IS_TYPE(PySequence_Fast_GET_ITEM(a, i), &PyLong_Type)) i++;
  if (i == n) return 0;
  int on = scan_grad_mode(s), open;
  if (on < 0) return -1;
  if (on) return scan_seq(s, a);
  if ((open = device_open(s)) <= 0) return open;
  PyObject *found = NULL;
  if (device_type_seq(a, &found) < 0) {
    Py_XDECREF(found);
    return -1;
  }
  int set = found ? PyObject_IsTrue(found) : 0;  /* `_device_type(a) or device_type` */
  if (set > 0) Py_XSETREF(s->device, found);
  else Py_XDECREF(found);
  return set < 0 ? -1 : 0;
}

/* _device_type_of(kwargs.get("device")), a new reference */
static PyObject *device_type_of_kwargs(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  PyObject *d = Py_None;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t k = 0; k < nkw; k++)
    if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, k), "device") == 0) {
      d = args[nargs + k];
      break;
    }
  if (d == Py_None) return Py_NewRef(s_cpu);
  if (!PyUnicode_Check(d)) return PyObject_GetAttr(d, s_names[D_type]);
  if (!PyUnicode_CheckExact(d)) {  /* (a str subclass: its own partition) */
    PyObject *parts = PyObject_CallMethodOneArg(d, s_partition, s_colon), *head;
    head = parts ? PySequence_GetItem(parts, 0) : NULL;
    Py_XDECREF(parts);
    return head;
  }
  Py_ssize_t n = PyUnicode_GET_LENGTH(d), colon = PyUnicode_FindChar(d, ':', 0, n, 1);
  if (colon == -2) return NULL;
  return colon < 0 ? Py_NewRef(d) : PyUnicode_Substring(d, 0, colon);
}

/* -- calls ------------------------------------------------------------------------------------- */
/* fn(self, *args, **kwargs) with the call's own vector: the Python specification */
static PyObject *call_spec(PyObject *fn, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames) {
  Py_ssize_t total = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
  PyObject *small[8], **stack = total + 1 <= 8 ? small : PyMem_Malloc((total + 1) * sizeof(PyObject *));
  if (!stack) return PyErr_NoMemory();
  stack[0] = self;
  memcpy(stack + 1, args, total * sizeof(PyObject *));
  PyObject *res = PyObject_Vectorcall(fn, stack, nargs + 1, kwnames);
  if (stack != small) PyMem_Free(stack);
  return res;
}

/* kernel(*args, **kwargs), held across the call (a register may drop the table that holds it) */
static PyObject *call_kernel(PyObject *kernel, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  Py_INCREF(kernel);
  PyObject *res = PyObject_Vectorcall(kernel, args, nargs, kwnames);
  Py_DECREF(kernel);
  return res;
}

/* self._autograd if the call takes it (grad mode on; an input requires grad): borrowed, or None
   (Py_None) to go on to the device kernel, or NULL on an exception */
static PyObject *autograd_kernel(PyObject *self, int grad, Scan *s) {
  if (!grad) return Py_None;
  int on = scan_grad_mode(s);
  return on < 0 ? NULL : on ? slot(self, O_autograd) : Py_None;
}

/* self._by_type.get(type): borrowed; Py_None where it is missing or _by_type is no dict (the
   Python then runs), NULL on an exception */
static PyObject *device_kernel(PyObject *self, PyObject *type) {
  PyObject *by_type = slot(self, O_by_type), *kernel;
  if (!by_type) return NULL;
  if (!PyDict_CheckExact(by_type)) return Py_None;
  kernel = PyDict_GetItemWithError(by_type, type);
  return kernel ? kernel : PyErr_Occurred() ? NULL : Py_None;
}

/* Op.__call__ (call_python is the specification) */
static PyObject *op_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  Scan s = {NULL, 0, -2};
  PyObject *res = NULL, *kernel;
  for (Py_ssize_t i = 0; i < nargs; i++) {
    PyObject *a = args[i];
    int rc = PyObject_TypeCheck(a, tensor_type) ? scan_tensor(&s, a) : is_seq(a) ? scan_sequence_arg(&s, a) : 0;
    if (rc < 0) goto out;
  }
  int wrapped = wrappers_on();
  if (wrapped) {  /* a wrapper key on (or an exception): the Python calls _call_wrapped */
    res = wrapped < 0 ? NULL : call_spec(call_python, self, args, nargs, kwnames);
    goto out;
  }
  if (!(kernel = autograd_kernel(self, s.grad, &s))) goto out;
  if (kernel != Py_None) {
    res = call_kernel(kernel, args, nargs, kwnames);
    goto out;
  }
  if (!s.device && !(s.device = device_type_of_kwargs(args, nargs, kwnames))) goto out;
  if (!(kernel = device_kernel(self, s.device))) goto out;
  /* no kernel for that device type yet: the Python loads its backend, or raises */
  res = kernel != Py_None ? call_kernel(kernel, args, nargs, kwnames) : call_spec(call_python, self, args, nargs, kwnames);
out:
  Py_XDECREF(s.device);
  return res;
}

/* Op.call_on(t, *args): t is the call's only tensor, no keywords (call_on_python is the
   specification) */
static PyObject *op_call_on(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  if (kwnames || nargs < 1 || !PyObject_TypeCheck(args[0], tensor_type))
    return call_spec(call_on_python, self, args, nargs, kwnames);  /* (its errors, or its t) */
  PyObject *t = args[0], *kernel, *type;
  int wrapped = wrappers_on(), grad;
  if (wrapped < 0) return NULL;
  if (wrapped) return PyObject_Vectorcall(self, args, nargs, NULL);  /* self(t, *args) */
  if ((grad = requires_grad(t)) < 0) return NULL;
  Scan s = {NULL, 0, -2};
  if (!(kernel = autograd_kernel(self, grad, &s))) return NULL;
  if (kernel != Py_None) return call_kernel(kernel, args, nargs, NULL);
  if (!(type = device_type_of(t))) return NULL;
  kernel = device_kernel(self, type);
  Py_DECREF(type);
  if (!kernel) return NULL;
  return call_kernel(kernel != Py_None ? kernel : self, args, nargs, NULL);  /* (else self(t, *args)) */
}

static PyMethodDef call_def = {"__call__", (PyCFunction)(void (*)(void))op_call, METH_FASTCALL | METH_KEYWORDS,
                               "op(*args, **kwargs): the kernel the arguments select, called with them"};
static PyMethodDef call_on_def = {"call_on", (PyCFunction)(void (*)(void))op_call_on, METH_FASTCALL | METH_KEYWORDS,
                                  "op.call_on(t, *args): op(t, *args) where t is the call's only tensor"};

/* -- install ----------------------------------------------------------------------------------- */
/* the slot offsets of `cls` for names[first..last) */
static int read_offsets(PyObject *cls, int first, int last) {
  for (int k = first; k < last; k++) {
    PyObject *d = PyObject_GetAttr(cls, s_names[k]);
    if (!d) return -1;
    int ok = Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
    if (ok) off[k] = ((PyMemberDescrObject *)d)->d_member->offset;
    Py_DECREF(d);
    if (!ok) {
      PyErr_Format(PyExc_TypeError, "fastdispatch.install: %s.%s is not a slot", ((PyTypeObject *)cls)->tp_name,
                   names[k]);
      return -1;
    }
  }
  return 0;
}

/* install(Op, Tensor, device, dispatcher's module dict, call_python, call_on_python)
     -> (__call__, call_on): the method descriptors to set on Op */
static PyObject *install(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 6 || !PyType_Check(args[0]) || !PyType_Check(args[1]) || !PyType_Check(args[2]) ||
      !PyDict_Check(args[3])) {
    PyErr_SetString(PyExc_TypeError, "install(Op, Tensor, device, globals, call_python, call_on_python)");
    return NULL;
  }
  if (read_offsets(args[0], O_autograd, T_device) < 0 || read_offsets(args[1], T_device, D_type) < 0 ||
      read_offsets(args[2], D_type, N_OFFSETS) < 0)
    return NULL;
  Py_XSETREF(tensor_type, (PyTypeObject *)Py_NewRef(args[1]));
  Py_XSETREF(device_cls, (PyTypeObject *)Py_NewRef(args[2]));
  Py_XSETREF(globals, Py_NewRef(args[3]));
  Py_XSETREF(call_python, Py_NewRef(args[4]));
  Py_XSETREF(call_on_python, Py_NewRef(args[5]));
  PyObject *c = PyDescr_NewMethod((PyTypeObject *)args[0], &call_def);
  PyObject *o = c ? PyDescr_NewMethod((PyTypeObject *)args[0], &call_on_def) : NULL;
  PyObject *res = o ? PyTuple_Pack(2, c, o) : NULL;
  Py_XDECREF(c);
  Py_XDECREF(o);
  return res;
}

static PyMethodDef methods[] = {{"install", (PyCFunction)(void (*)(void))install, METH_FASTCALL, NULL},
                                {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "vt_fastdispatch", NULL, -1, methods};
PyMODINIT_FUNC PyInit_vt_fastdispatch(void) {
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  for (int k = 0; k < N_OFFSETS; k++)
    if (!(s_names[k] = PyUnicode_InternFromString(names[k]))) goto fail;
  if (!(s_active_wrappers = PyUnicode_InternFromString("_active_wrappers")) ||
      !(s_local = PyUnicode_InternFromString("local")) ||
      !(s_grad_enabled = PyUnicode_InternFromString("grad_enabled")) || !(s_cpu = PyUnicode_InternFromString("cpu")) ||
      !(s_partition = PyUnicode_InternFromString("partition")) || !(s_colon = PyUnicode_InternFromString(":")))
    goto fail;
  return m;
fail:
  Py_DECREF(m);
  return NULL;
}
"""

module = Extension("vt_fastdispatch", _SRC, switch="VIBETENSOR_FASTDISPATCH")
"""The compiled extension, or None where it cannot be built or VIBETENSOR_FASTDISPATCH=0 (then the Python runs)."""
