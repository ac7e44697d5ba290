"""A lean C entry point for launching compiled Triton kernels.

Triton's generated launcher parses ~17 arguments with PyArg_ParseTuple, checks the context,
releases the GIL and calls cuLaunchKernelEx: about 5 us per call on the H100 host. Ours takes a
vector of arguments (METH_FASTCALL), reads each kernel parameter by a one-letter kind prepared
once per compiled kernel, and calls cuLaunchKernel:

    launch(function, grid_x, grid_y, grid_z, block_x, shared_bytes, stream, kinds, *args)

kinds (bytes, one per argument as the Python function declares them): p pointer, b/s/i/l signed
8/16/32/64-bit, B/S/I/L unsigned, f float32, d float64, x skipped (constexpr). Triton kernels take
two trailing scratch pointers, passed as NULL. It is compiled on first use by runtime/native.py,
against the CUDA headers Triton ships; if that fails, Triton's launcher is used.

`launch_cached` is launcher.Kernel's whole steady-state call in one C function: it computes the
specialisation key exactly as launcher.specialize does, finds the compiled kernel in the Kernel's
cache and launches it, so a cached launch makes no Python-level calls but each pointer argument's
data_ptr():

    launch_cached(cache, device, stream, grid, tail, *args)
      -> None (launched) | the key, not in cache (compile it) | NotImplemented (take the Python path)

NotImplemented covers whatever the C path does not do: an entry for Triton's launcher (or for a
stand-in launch function, as the host simulator installs), an integer beyond 64 bits.

`install` makes Kernel.__call__ itself a C method: it reads the current device and stream, the
Kernel's slots and PointerArg's slots directly, and keeps a one-entry memo of the kernel's last
argument signature, so a repeated launch builds no key. Over a stub cuLaunchKernel on the
development box, a cached add's call cost 2.2 us through the Python __call__ and 0.6-0.7 us so.
"""
from vibetensor.runtime.native import Extension

_SRC = r"""
#include "cuda.h"
#include <stdint.h>
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>  /* PyMemberDef (Python 3.11 keeps it here) */

#define MAX_PARAMS 128

typedef union { uint64_t u64; int64_t i64; int32_t i32; uint32_t u32; int16_t i16; uint16_t u16;
                int8_t i8; uint8_t u8; float f32; double f64; } Slot;

/* One argument's slot for `kind`, from its value as an integer (pointers too) or a float. Returns 1
   when the kernel takes the argument, 0 for a constexpr ('x'), -1 (an exception set) otherwise. */
static int fill(Slot *s, char kind, long long v, double f) {
  switch (kind) {
    case 'p': case 'L': case 'l': s->i64 = v; return 1;
    case 'i': case 'I': s->i32 = (int32_t)v; return 1;
    case 's': case 'S': s->i16 = (int16_t)v; return 1;
    case 'b': case 'B': s->i8 = (int8_t)v; return 1;
    case 'f': s->f32 = (float)f; return 1;
    case 'd': s->f64 = f; return 1;
    case 'x': return 0;
  }
  PyErr_Format(PyExc_TypeError, "launch: unknown kind '%c'", kind);
  return -1;
}

/* A Python argument's value for `kind`: floats in *f, integers and pointers in *v. */
static void value_of(PyObject *a, char kind, long long *v, double *f) {
  if (kind == 'f' || kind == 'd') *f = PyFloat_AsDouble(a);
  else if (kind == 'p' || kind == 'L') *v = (long long)PyLong_AsUnsignedLongLong(a);
  else if (kind != 'x') *v = PyLong_AsLongLong(a);
}

/* Add the two scratch pointers Triton kernels take (NULL), then cuLaunchKernel (not for an empty grid). */
static PyObject *finish_launch(CUfunction function, unsigned gx, unsigned gy, unsigned gz, unsigned block_x,
                               unsigned shared, CUstream stream, Slot *slots, void **params, int n) {
  slots[n].u64 = 0; params[n] = &slots[n]; n++;   /* global scratch */
  slots[n].u64 = 0; params[n] = &slots[n]; n++;   /* profile scratch */
  if (gx * gy * gz == 0) Py_RETURN_NONE;
  CUresult err = cuLaunchKernel(function, gx, gy, gz, block_x, 1, 1, shared, stream, params, NULL);
  if (err != CUDA_SUCCESS) {
    const char *name = NULL;
    cuGetErrorName(err, &name);
    PyErr_Format(PyExc_RuntimeError, "CUDA error: %s (%d) in cuLaunchKernel", name ? name : "?", (int)err);
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *launch(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs < 8 || !PyBytes_Check(args[7])) {
    PyErr_SetString(PyExc_TypeError, "launch(function, gx, gy, gz, block_x, shared, stream, kinds, *args)");
    return NULL;
  }
  CUfunction function = (CUfunction)PyLong_AsUnsignedLongLong(args[0]);
  unsigned gx = (unsigned)PyLong_AsUnsignedLong(args[1]);
  unsigned gy = (unsigned)PyLong_AsUnsignedLong(args[2]);
  unsigned gz = (unsigned)PyLong_AsUnsignedLong(args[3]);
  unsigned block_x = (unsigned)PyLong_AsUnsignedLong(args[4]);
  unsigned shared = (unsigned)PyLong_AsUnsignedLong(args[5]);
  CUstream stream = (CUstream)PyLong_AsUnsignedLongLong(args[6]);
  const char *kinds = PyBytes_AS_STRING(args[7]);
  Py_ssize_t nkinds = PyBytes_GET_SIZE(args[7]);
  if (nkinds != nargs - 8 || nkinds > MAX_PARAMS) {
    PyErr_Format(PyExc_TypeError, "launch: %zd arguments for %zd kinds", nargs - 8, nkinds);
    return NULL;
  }
  Slot slots[MAX_PARAMS + 2];
  void *params[MAX_PARAMS + 2];
  int n = 0;
  for (Py_ssize_t k = 0; k < nkinds; k++) {
    long long v = 0;
    double f = 0.0;
    value_of(args[8 + k], kinds[k], &v, &f);
    int r = fill(&slots[n], kinds[k], v, f);
    if (r < 0) return NULL;
    if (r) { params[n] = &slots[n]; n++; }
  }
  if (PyErr_Occurred()) return NULL;
  return finish_launch(function, gx, gy, gz, block_x, shared, stream, slots, params, n);
}

static PyObject *launch_fn;     /* this module's `launch`: the entries launch_cached may run itself */
static PyObject *str_data_ptr, *str_dtype;
static PyTypeObject *pointer_arg;  /* launcher.PointerArg, whose slots are read directly (0 until set) */
static Py_ssize_t pointer_arg_ptr, pointer_arg_dtype;

/* Argument `a`'s launch value (*iv, *fv) and what Triton specialises it on, as launcher.specialize
   does: an int by (== 1, divisible by 16, fits 32 bits), a float or bool by its type, a pointer by
   (dtype, 16-byte aligned). *sig holds that in one word, for the memo's comparison: (code << 2) | 1
   for an int, the type's address for a float or bool, the dtype's address | (aligned << 1) for a
   pointer; *dtype is then a new reference (NULL otherwise). 0 ok, -1 an exception, 1 NotImplemented. */
static int read_arg(PyObject *a, long long *iv, double *fv, uintptr_t *sig, PyObject **dtype) {
  *dtype = NULL;
  if (PyLong_CheckExact(a)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(a, &overflow);
    if (overflow) return 1;
    *iv = v;
    *fv = (double)v;
    *sig = (uintptr_t)((v == 1) + 2 * ((v & 15) == 0) + 4 * (v >= INT32_MIN && v <= INT32_MAX)) << 2 | 1;
    return 0;
  }
  if (PyFloat_CheckExact(a) || PyBool_Check(a)) {
    *fv = PyFloat_AsDouble(a);
    *iv = (long long)*fv;
    *sig = (uintptr_t)Py_TYPE(a);
    return 0;
  }
  PyObject *p;
  if (Py_TYPE(a) == pointer_arg) {  /* its two slots, without a Python-level data_ptr() call */
    p = *(PyObject **)((char *)a + pointer_arg_ptr);
    *dtype = *(PyObject **)((char *)a + pointer_arg_dtype);
    if (!p || !*dtype) { PyErr_SetString(PyExc_AttributeError, "PointerArg without ptr or dtype"); return -1; }
    Py_INCREF(p);
    Py_INCREF(*dtype);
  } else {
    p = PyObject_CallMethodNoArgs(a, str_data_ptr);
    if (!p) return -1;
    *dtype = PyObject_GetAttr(a, str_dtype);
    if (!*dtype) { Py_DECREF(p); return -1; }
  }
  *iv = (long long)PyLong_AsUnsignedLongLong(p);
  *fv = 0.0;
  Py_DECREF(p);
  if (PyErr_Occurred()) { Py_CLEAR(*dtype); return -1; }
  *sig = (uintptr_t)*dtype | (uintptr_t)((*iv & 15) == 0) << 1;
  return 0;
}

/* A launch's arguments as read_args reads them: per argument its read_arg results. The caller owns
   dtypes[0..n) once read_args succeeds (release drops them). */
typedef struct {
  Py_ssize_t n;
  long long iv[MAX_PARAMS];
  double fv[MAX_PARAMS];
  uintptr_t sig[MAX_PARAMS];
  PyObject *dtypes[MAX_PARAMS];
} Args;

/* The cache key of read arguments: ((item per argument), device), as specialize builds it. */
static PyObject *cache_key(const Args *a, PyObject *device) {
  PyObject *spec = PyTuple_New(a->n);
  if (!spec) return NULL;
  for (Py_ssize_t k = 0; k < a->n; k++) {
    PyObject *item;
    if (a->dtypes[k]) item = PyTuple_Pack(2, a->dtypes[k], (a->iv[k] & 15) == 0 ? Py_True : Py_False);
    else if (a->sig[k] & 1) item = PyLong_FromLong((long)(a->sig[k] >> 2));
    else { item = (PyObject *)a->sig[k]; Py_INCREF(item); }  /* float or bool: the type */
    if (!item) { Py_DECREF(spec); return NULL; }
    PyTuple_SET_ITEM(spec, k, item);
  }
  PyObject *key = PyTuple_Pack(2, spec, device);
  Py_DECREF(spec);
  return key;
}

/* Launch a cache entry of ours, (True, launch, function, kinds, block_x, shared), on `grid` (a tuple)
   with the arguments' values and the kernel's constexpr tail (skipped, kind 'x', unless declared). */
static PyObject *launch_entry(PyObject *entry, PyObject *grid, CUstream stream, PyObject *tail, const Args *a) {
  Py_ssize_t n = a->n;
  PyObject *kinds_obj = PyTuple_GET_ITEM(entry, 3);
  const char *kinds = PyBytes_AS_STRING(kinds_obj);
  Py_ssize_t ntail = PyTuple_GET_SIZE(tail);
  if (PyBytes_GET_SIZE(kinds_obj) != n + ntail) {
    PyErr_Format(PyExc_TypeError, "launch: %zd arguments for %zd kinds", n + ntail, PyBytes_GET_SIZE(kinds_obj));
    return NULL;
  }
  Slot slots[MAX_PARAMS + 2];
  void *params[MAX_PARAMS + 2];
  int m = 0;
  for (Py_ssize_t k = 0; k < n + ntail; k++) {
    int r;
    if (k < n) {
      r = fill(&slots[m], kinds[k], a->iv[k], a->fv[k]);
    } else {                           /* constexprs, normally skipped ('x') */
      long long v = 0;
      double f = 0.0;
      value_of(PyTuple_GET_ITEM(tail, k - n), kinds[k], &v, &f);
      if (PyErr_Occurred()) return NULL;
      r = fill(&slots[m], kinds[k], v, f);
    }
    if (r < 0) return NULL;
    if (r) { params[m] = &slots[m]; m++; }
  }
  Py_ssize_t ng = PyTuple_GET_SIZE(grid);
  unsigned g[3] = {1, 1, 1};
  for (Py_ssize_t d = 0; d < ng && d < 3; d++) {
    g[d] = (unsigned)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(grid, d));
    if (PyErr_Occurred()) return NULL;
  }
  CUfunction function = (CUfunction)PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(entry, 2));
  unsigned block_x = (unsigned)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(entry, 4));
  unsigned shared = (unsigned)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(entry, 5));
  if (PyErr_Occurred()) return NULL;
  return finish_launch(function, g[0], g[1], g[2], block_x, shared, stream, slots, params, m);
}

static int is_ours(PyObject *entry) {
  return PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) == 6 && PyTuple_GET_ITEM(entry, 0) == Py_True &&
         PyTuple_GET_ITEM(entry, 1) == launch_fn;
}

static void release(Args *a) {
  for (Py_ssize_t k = 0; k < a->n; k++) Py_XDECREF(a->dtypes[k]);
}

/* Read args[0..n) into *a (read_arg's answer: 0, -1 or 1); on failure nothing is left to release. */
static int read_args(PyObject *const *args, Py_ssize_t n, Args *a) {
  for (a->n = 0; a->n < n; a->n++) {
    Py_ssize_t k = a->n;
    int r = read_arg(args[k], &a->iv[k], &a->fv[k], &a->sig[k], &a->dtypes[k]);
    if (r) {
      release(a);
      return r;
    }
  }
  return 0;
}

/* Kernel.__call__'s cached path: key as launcher.specialize builds it, cache lookup, launch. */
static PyObject *launch_cached(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs < 5 || !PyDict_Check(args[0]) || !PyTuple_Check(args[3]) || !PyTuple_Check(args[4])) {
    PyErr_SetString(PyExc_TypeError, "launch_cached(cache, device, stream, grid: tuple, tail: tuple, *args)");
    return NULL;
  }
  PyObject *cache = args[0], *device = args[1], *grid = args[3], *tail = args[4];
  Py_ssize_t n = nargs - 5;
  if (n + PyTuple_GET_SIZE(tail) > MAX_PARAMS) Py_RETURN_NOTIMPLEMENTED;
  Args a;
  int r = read_args(args + 5, n, &a);
  if (r < 0) return NULL;
  if (r > 0) Py_RETURN_NOTIMPLEMENTED;
  PyObject *key = cache_key(&a, device);
  release(&a);
  if (!key) return NULL;
  PyObject *entry = PyDict_GetItemWithError(cache, key);   /* borrowed */
  if (!entry) {
    if (PyErr_Occurred()) { Py_DECREF(key); return NULL; }
    return key;                                             /* not compiled yet */
  }
  Py_DECREF(key);
  if (!is_ours(entry)) Py_RETURN_NOTIMPLEMENTED;
  CUstream stream = (CUstream)PyLong_AsUnsignedLongLong(args[2]);
  if (PyErr_Occurred()) return NULL;
  return launch_entry(entry, grid, stream, tail, &a);
}

/* -- Kernel.__call__ in C ----------------------------------------------------------------------
   install(Kernel, python_call, current, streams_local, recorders) returns a method descriptor for
   Kernel.__call__. Its steady state reads the current device and stream itself, specialises the
   arguments, and launches; a kernel's memo slot holds (entry, signature bytes, key, device) of its
   last launch, so repeating a signature costs a comparison instead of building and hashing the key
   (the key in the memo keeps the dtypes whose addresses the signature holds alive). Everything else
   (a recording plan, a stream= keyword, a miss, an entry not ours) calls python_call, the Python
   __call__, which does all of it. */
static PyObject *python_call, *current, *streams_local, *recorders, *str_index, *str_handles;
static Py_ssize_t kernel_cache, kernel_tail, kernel_memo;  /* Kernel's slot offsets */

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

static PyObject *call_python(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  Py_ssize_t total = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
  PyObject *small[MAX_PARAMS + 8], **stack = small;
  if (total + 1 > MAX_PARAMS + 8 && !(stack = PyMem_Malloc((total + 1) * sizeof(PyObject *))))
    return PyErr_NoMemory();
  stack[0] = self;
  for (Py_ssize_t k = 0; k < total; k++) stack[k + 1] = args[k];
  PyObject *res = PyObject_Vectorcall(python_call, stack, nargs + 1, kwnames);
  if (stack != small) PyMem_Free(stack);
  return res;
}

/* This thread's current device (new reference) and the raw handle of its current stream there. */
static PyObject *current_device_stream(CUstream *stream) {
  PyObject *device = PyObject_GetAttr(current, str_index);
  if (!device) return NULL;
  *stream = 0;
  PyObject *handles = PyObject_GetAttr(streams_local, str_handles);
  if (!handles) { Py_DECREF(device); return NULL; }
  if (PyDict_Check(handles)) {
    PyObject *h = PyDict_GetItemWithError(handles, device);   /* borrowed */
    if (h) *stream = (CUstream)PyLong_AsUnsignedLongLong(h);
    if (PyErr_Occurred()) { Py_DECREF(handles); Py_DECREF(device); return NULL; }
  }
  Py_DECREF(handles);
  return device;
}

static PyObject *kernel_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  PyObject *cache = SLOT(self, kernel_cache), *tail = SLOT(self, kernel_tail);
  Py_ssize_t n = nargs - 1;
  if (kwnames || nargs < 1 || !PyTuple_CheckExact(args[0]) || !cache || !PyDict_Check(cache) || !tail ||
      !PyTuple_Check(tail) || n + PyTuple_GET_SIZE(tail) > MAX_PARAMS || PyDict_GET_SIZE(recorders))
    return call_python(self, args, nargs, kwnames);
  Args a;
  int r = read_args(args + 1, n, &a);
  if (r < 0) return NULL;
  if (r > 0) return call_python(self, args, nargs, kwnames);
  CUstream stream;
  PyObject *device = current_device_stream(&stream);
  if (!device) { release(&a); return NULL; }
  PyObject *memo = SLOT(self, kernel_memo), *entry = NULL;
  if (memo && PyTuple_CheckExact(memo) && PyTuple_GET_SIZE(memo) == 4) {
    PyObject *msig = PyTuple_GET_ITEM(memo, 1);
    if (PyBytes_GET_SIZE(msig) == n * (Py_ssize_t)sizeof(uintptr_t) &&
        memcmp(PyBytes_AS_STRING(msig), a.sig, n * sizeof(uintptr_t)) == 0) {
      int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(memo, 3), device, Py_EQ);
      if (same < 0) { release(&a); Py_DECREF(device); return NULL; }
      if (same) entry = PyTuple_GET_ITEM(memo, 0);
    }
  }
  if (!entry) {  /* the cache, then remember the hit */
    PyObject *key = cache_key(&a, device);
    if (!key) { release(&a); Py_DECREF(device); return NULL; }
    entry = PyDict_GetItemWithError(cache, key);   /* borrowed */
    if (!entry || !is_ours(entry)) {
      Py_DECREF(key);
      release(&a);
      Py_DECREF(device);
      return PyErr_Occurred() ? NULL : call_python(self, args, nargs, kwnames);
    }
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)a.sig, n * sizeof(uintptr_t));
    PyObject *new_memo = bytes ? PyTuple_Pack(4, entry, bytes, key, device) : NULL;
    Py_XDECREF(bytes);
    Py_DECREF(key);
    if (!new_memo) { release(&a); Py_DECREF(device); return NULL; }
    Py_XSETREF(SLOT(self, kernel_memo), new_memo);  /* (the old memo's entry is not used after this) */
  }
  release(&a);
  Py_DECREF(device);
  Py_INCREF(entry);  /* (held while launching: reading the arguments cannot replace it under us) */
  PyObject *res = launch_entry(entry, args[0], stream, tail, &a);
  Py_DECREF(entry);
  return res;
}

static PyMethodDef kernel_call_def = {"__call__", (PyCFunction)(void (*)(void))kernel_call,
                                      METH_FASTCALL | METH_KEYWORDS, "Kernel.__call__(grid, *args, stream=None)"};

static Py_ssize_t slot_offset(PyObject *cls, const char *name) {
  PyObject *d = PyObject_GetAttrString(cls, name);
  if (!d) return -1;
  Py_ssize_t off = -1;
  if (Py_IS_TYPE(d, &PyMemberDescr_Type)) off = ((PyMemberDescrObject *)d)->d_member->offset;
  else PyErr_Format(PyExc_TypeError, "install: %s is not a slot", name);
  Py_DECREF(d);
  return off;
}

static PyObject *install(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 6 || !PyType_Check(args[0]) || !PyType_Check(args[5]) || !PyDict_Check(args[4])) {
    PyErr_SetString(PyExc_TypeError, "install(Kernel, python_call, current, streams_local, recorders, PointerArg)");
    return NULL;
  }
  if ((kernel_cache = slot_offset(args[0], "cache")) < 0 || (kernel_tail = slot_offset(args[0], "tail")) < 0 ||
      (kernel_memo = slot_offset(args[0], "memo")) < 0 || (pointer_arg_ptr = slot_offset(args[5], "ptr")) < 0 ||
      (pointer_arg_dtype = slot_offset(args[5], "dtype")) < 0)
    return NULL;
  Py_XSETREF(python_call, Py_NewRef(args[1]));
  Py_XSETREF(current, Py_NewRef(args[2]));
  Py_XSETREF(streams_local, Py_NewRef(args[3]));
  Py_XSETREF(recorders, Py_NewRef(args[4]));
  Py_XSETREF(pointer_arg, (PyTypeObject *)Py_NewRef(args[5]));
  return PyDescr_NewMethod((PyTypeObject *)args[0], &kernel_call_def);
}

static PyMethodDef methods[] = {{"launch", (PyCFunction)(void (*)(void))launch, METH_FASTCALL, NULL},
                                {"launch_cached", (PyCFunction)(void (*)(void))launch_cached, METH_FASTCALL, NULL},
                                {"install", (PyCFunction)(void (*)(void))install, METH_FASTCALL, NULL},
                                {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "vt_fastlaunch", NULL, -1, methods};
PyMODINIT_FUNC PyInit_vt_fastlaunch(void) {
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  launch_fn = PyObject_GetAttrString(m, "launch");
  str_data_ptr = PyUnicode_InternFromString("data_ptr");
  str_dtype = PyUnicode_InternFromString("dtype");
  str_index = PyUnicode_InternFromString("index");
  str_handles = PyUnicode_InternFromString("handles");
  if (!launch_fn || !str_data_ptr || !str_dtype || !str_index || !str_handles) { Py_DECREF(m); return NULL; }
  return m;
}
"""

_KIND = {"i1": "b", "i8": "b", "u1": "B", "u8": "B", "i16": "s", "u16": "S", "i32": "i", "u32": "I",
         "i64": "l", "u64": "L", "fp32": "f", "f32": "f", "fp64": "d", "constexpr": "x"}

def _cuda_dirs():
    from triton.backends.nvidia import driver as nv
    return {"library_dirs": nv.library_dirs(), "include_dirs": nv.include_dirs, "libraries": nv.libraries}


def _warn(error):  # (no compiler here: launches keep working through Triton's launcher)
    import warnings
    warnings.warn(f"vibetensor fast launcher unavailable ({error}); using Triton's launcher")


module = Extension("vt_fastlaunch", _SRC, dirs=_cuda_dirs, on_fail=_warn)
"""The compiled extension, or None if it cannot be built here (then Triton's launcher is used)."""


def kinds_of(signature_types):
    """The kinds string for a compiled kernel's parameter types, or None if one is unsupported
    (half-precision scalars, tensor descriptors: those keep Triton's launcher)."""
    out = []
    for ty in signature_types:
        kind = "p" if ty.startswith("*") else _KIND.get(ty)
        if kind is None:
            return None
        out.append(kind)
    return "".join(out).encode()
