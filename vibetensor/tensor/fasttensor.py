"""Making a tensor object in C: tensor.make_tensor and tensor.new_tensor, their Python kept as the spec.

Every op's result and every view is a Tensor whose fourteen slots are stored one by one
(tensor.make_tensor): about 50 bytecodes, made ~180 times in a training step of the reversal
workload (views, CPU results) besides the CUDA results the replay plans make. These two functions
fill the same slots of the same classes in one C call:

    make_tensor(storage, shape, stride, offset, dtype, version=None, base=None)   tensor.make_tensor
    new_tensor(data, nbytes, device, shape, stride, offset, dtype)                 tensor.new_tensor

`install(Storage, VersionCounter, Tensor, grad_fn_slot)` tells it where the slots are (Tensor.grad_fn
becomes a property over its slot: the slot's descriptor is passed apart). tensor.py installs them
at import where this builds (runtime/native.py) and VIBETENSOR_FASTTENSOR is not 0; elsewhere its
Python runs (make_tensor_python, new_tensor_python). tests/test_dispatch_fastpaths.py compares
every field of what each makes with the Python's.
"""
from vibetensor.runtime.native import Extension

_SRC = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

enum { S_data, S_nbytes, S_device, V_value, T_storage, T_shape, T_stride, T_offset, T_dtype, T_device, T_version,
       T_base, T_np, T_requires_grad, T_grad_fn, T_output_nr, T_view_info, N_TENSOR };
static const char *tensor_names[N_TENSOR] = {
  "data", "nbytes", "device", "value", "_storage", "_shape", "_stride", "_offset", "_dtype", "_device", "_version",
  "_base", "_np", "_requires_grad", "grad_fn", "_output_nr", "_view_info"};
static Py_ssize_t toff[N_TENSOR];
static PyTypeObject *storage_type, *counter_type, *tensor_type;  /* NULL until install */
static PyObject *zero, *s_version, *s_base;

static PyObject *fresh(PyTypeObject *type) { return type->tp_alloc(type, 0); }
static void put(PyObject *o, int k, PyObject *v) { SLOT(o, toff[k]) = v; }  /* a fresh object's empty slot; steals v */

static int installed(const char *what) {
  if (!tensor_type) PyErr_Format(PyExc_RuntimeError, "%s: install was not called", what);
  return tensor_type != NULL;
}

static PyObject *new_counter(void) {  /* VersionCounter() at 0 */
  PyObject *v = fresh(counter_type);
  if (v) put(v, V_value, Py_NewRef(zero));
  return v;
}

/* a Tensor over storage s (owned) and version counter v (owned): make_tensor's stores */
static PyObject *tensor_of(PyObject *s, PyObject *v, PyObject *shape, PyObject *stride, PyObject *offset,
                           PyObject *dtype, PyObject *device, PyObject *base) {
  PyObject *t = fresh(tensor_type);
  if (!t) {
    Py_DECREF(s);
    Py_DECREF(v);
    return NULL;
  }
  put(t, T_storage, s);
  put(t, T_shape, Py_NewRef(shape));
  put(t, T_stride, Py_NewRef(stride));
  put(t, T_offset, Py_NewRef(offset));
  put(t, T_dtype, Py_NewRef(dtype));
  put(t, T_device, Py_NewRef(device));
  put(t, T_version, v);
  put(t, T_base, Py_NewRef(base));
  put(t, T_np, Py_NewRef(Py_None));
  put(t, T_requires_grad, Py_NewRef(Py_False));
  put(t, T_grad_fn, Py_NewRef(Py_None));
  put(t, T_output_nr, Py_NewRef(zero));
  put(t, T_view_info, Py_NewRef(Py_None));
  return t;
}

/* make_tensor(storage, shape, stride, offset, dtype, version=None, base=None) */
static PyObject *make_tensor(PyObject *module, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
  Py_ssize_t n = PyVectorcall_NARGS(nargsf);
  PyObject *version = n > 5 ? args[5] : Py_None, *base = n > 6 ? args[6] : Py_None;
  for (Py_ssize_t j = 0; kwnames && j < PyTuple_GET_SIZE(kwnames); j++) {
    PyObject *name = PyTuple_GET_ITEM(kwnames, j);
    int is_version = PyUnicode_Compare(name, s_version) == 0, is_base = !is_version && PyUnicode_Compare(name, s_base) == 0;
    if ((!is_version && !is_base) || (is_version && n > 5) || (is_base && n > 6)) {
      PyErr_Format(PyExc_TypeError, "make_tensor() got an unexpected or repeated keyword argument '%U'", name);
      return NULL;
    }
    *(is_version ? &version : &base) = args[n + j];
  }
  if (n < 5 || n > 7) {
    PyErr_SetString(PyExc_TypeError, "make_tensor(storage, shape, stride, offset, dtype, version=None, base=None)");
    return NULL;
  }
  if (!installed("make_tensor")) return NULL;
  PyObject *storage = args[0], *device;  /* t._device = storage.device */
  if (Py_IS_TYPE(storage, storage_type) && SLOT(storage, toff[S_device])) device = Py_NewRef(SLOT(storage, toff[S_device]));
  else if (!(device = PyObject_GetAttrString(storage, "device"))) return NULL;
  PyObject *v = version == Py_None ? new_counter() : Py_NewRef(version);
  PyObject *t = v ? tensor_of(Py_NewRef(storage), v, args[1], args[2], args[3], args[4], device, base) : NULL;
  Py_DECREF(device);
  return t;
}

/* new_tensor(data, nbytes, device, shape, stride, offset, dtype): make_tensor(Storage(data, nbytes, device),
   shape, stride, offset, dtype), the Storage, its VersionCounter and the Tensor made in one call */
static PyObject *new_tensor(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 7) {
    PyErr_SetString(PyExc_TypeError, "new_tensor(data, nbytes, device, shape, stride, offset, dtype)");
    return NULL;
  }
  if (!installed("new_tensor")) return NULL;
  PyObject *s = fresh(storage_type), *v = s ? new_counter() : NULL;
  if (!v) {
    Py_XDECREF(s);
    return NULL;
  }
  put(s, S_data, Py_NewRef(args[0]));
  put(s, S_nbytes, Py_NewRef(args[1]));
  put(s, S_device, Py_NewRef(args[2]));
  return tensor_of(s, v, args[3], args[4], args[5], args[6], args[2], Py_None);
}

/* install(Storage, VersionCounter, Tensor, grad_fn_slot): where their slots are */
static PyObject *install(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 4 || !PyType_Check(args[0]) || !PyType_Check(args[1]) || !PyType_Check(args[2])) {
    PyErr_SetString(PyExc_TypeError, "install(Storage, VersionCounter, Tensor, grad_fn_slot)");
    return NULL;
  }
  static const int first[4] = {S_data, V_value, T_storage, N_TENSOR};
  for (int c = 0; c < 3; c++)
    for (int k = first[c]; k < first[c + 1]; k++) {
      PyObject *d = k == T_grad_fn ? Py_NewRef(args[3]) : PyObject_GetAttrString(args[c], tensor_names[k]);
      if (!d) return NULL;
      int ok = Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
      if (ok) toff[k] = ((PyMemberDescrObject *)d)->d_member->offset;
      Py_DECREF(d);
      if (!ok) {
        PyErr_Format(PyExc_TypeError, "install: %s is not a slot", tensor_names[k]);
        return NULL;
      }
    }
  Py_XSETREF(storage_type, (PyTypeObject *)Py_NewRef(args[0]));
  Py_XSETREF(counter_type, (PyTypeObject *)Py_NewRef(args[1]));
  Py_XSETREF(tensor_type, (PyTypeObject *)Py_NewRef(args[2]));
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
  {"install", (PyCFunction)(void (*)(void))install, METH_FASTCALL, NULL},
  {"make_tensor", (PyCFunction)(void (*)(void))make_tensor, METH_FASTCALL | METH_KEYWORDS,
   "make_tensor(storage, shape, stride, offset, dtype, version=None, base=None)"},
  {"new_tensor", (PyCFunction)(void (*)(void))new_tensor, METH_FASTCALL,
   "new_tensor(data, nbytes, device, shape, stride, offset, dtype)"},
  {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "vt_fasttensor", NULL, -1, methods};
PyMODINIT_FUNC PyInit_vt_fasttensor(void) {
  if (!(zero = PyLong_FromLong(0)) || !(s_version = PyUnicode_InternFromString("version")) ||
      !(s_base = PyUnicode_InternFromString("base")))
    return NULL;
  return PyModule_Create(&module);
}
"""

module = Extension("vt_fasttensor", _SRC, switch="VIBETENSOR_FASTTENSOR")
"""The compiled extension, or None where it cannot be built or VIBETENSOR_FASTTENSOR=0 (then the Python runs)."""
