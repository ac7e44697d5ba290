"""A lean C entry point for launching compiled Triton kernels.

Triton's generated launcher parses ~17 arguments with PyArg_ParseTuple, checks the context,
releases the GIL and calls cuLaunchKernelEx: about 5 us per call on the H100 host. Ours takes a
vector of arguments (METH_FASTCALL), reads each kernel parameter by a one-letter kind prepared
once per compiled kernel, and calls cuLaunchKernel:

    launch(function, grid_x, grid_y, grid_z, block_x, shared_bytes, stream, kinds, *args)

kinds (bytes, one per argument as the Python function declares them): p pointer, b/s/i/l signed
8/16/32/64-bit, B/S/I/L unsigned, f float32, d float64, x skipped (constexpr). Triton kernels take
two trailing scratch pointers, passed as NULL. It is compiled on first use with Triton's own
build helper (the toolchain Triton needs anyway); if that fails, Triton's launcher is used.

`launch_cached` is launcher.Kernel's whole steady-state call in one C function: it computes the
specialisation key exactly as launcher.specialize does, finds the compiled kernel in the Kernel's
cache and launches it, so a cached launch makes no Python-level calls but each pointer argument's
data_ptr():

    launch_cached(cache, device, stream, grid, tail, *args)
      -> None (launched) | the key, not in cache (compile it) | NotImplemented (take the Python path)

NotImplemented covers whatever the C path does not do: an entry for Triton's launcher (or for a
stand-in launch function, as the host simulator installs), an integer beyond 64 bits.
"""
import threading

_SRC = r"""
#include "cuda.h"
#include <stdint.h>
#define PY_SSIZE_T_CLEAN
#include <Python.h>

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

/* Kernel.__call__'s cached path: key as launcher.specialize builds it, cache lookup, launch. */
static PyObject *launch_cached(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs < 5 || !PyDict_Check(args[0]) || !PyTuple_Check(args[3]) || !PyTuple_Check(args[4])) {
    PyErr_SetString(PyExc_TypeError, "launch_cached(cache, device, stream, grid: tuple, tail: tuple, *args)");
    return NULL;
  }
  PyObject *cache = args[0], *device = args[1], *grid = args[3], *tail = args[4];
  Py_ssize_t n = nargs - 5, ntail = PyTuple_GET_SIZE(tail);
  if (n + ntail > MAX_PARAMS) Py_RETURN_NOTIMPLEMENTED;
  long long ival[MAX_PARAMS];
  double fval[MAX_PARAMS];
  PyObject *spec = PyTuple_New(n);
  if (!spec) return NULL;
  for (Py_ssize_t k = 0; k < n; k++) {
    PyObject *a = args[5 + k], *item;
    if (PyLong_CheckExact(a)) {        /* == 1, divisible by 16, fits 32 bits: packed as specialize does */
      int overflow = 0;
      long long v = PyLong_AsLongLongAndOverflow(a, &overflow);
      if (overflow) { Py_DECREF(spec); Py_RETURN_NOTIMPLEMENTED; }
      ival[k] = v;
      fval[k] = (double)v;
      item = PyLong_FromLong((v == 1) + 2 * ((v & 15) == 0) + 4 * (v >= INT32_MIN && v <= INT32_MAX));
    } else if (PyFloat_CheckExact(a) || PyBool_Check(a)) {
      fval[k] = PyFloat_AsDouble(a);
      ival[k] = (long long)fval[k];
      item = (PyObject *)Py_TYPE(a);
      Py_INCREF(item);
    } else {                           /* a pointer: (dtype, 16-byte aligned) */
      PyObject *p = PyObject_CallMethodNoArgs(a, str_data_ptr);
      if (!p) { Py_DECREF(spec); return NULL; }
      ival[k] = (long long)PyLong_AsUnsignedLongLong(p);
      fval[k] = 0.0;
      Py_DECREF(p);
      if (PyErr_Occurred()) { Py_DECREF(spec); return NULL; }
      PyObject *dtype = PyObject_GetAttr(a, str_dtype);
      if (!dtype) { Py_DECREF(spec); return NULL; }
      item = PyTuple_Pack(2, dtype, (ival[k] & 15) == 0 ? Py_True : Py_False);
      Py_DECREF(dtype);
    }
    if (!item) { Py_DECREF(spec); return NULL; }
    PyTuple_SET_ITEM(spec, k, item);
  }
  PyObject *key = PyTuple_Pack(2, spec, device);
  Py_DECREF(spec);
  if (!key) return NULL;
  PyObject *entry = PyDict_GetItemWithError(cache, key);   /* borrowed */
  if (!entry) {
    if (PyErr_Occurred()) { Py_DECREF(key); return NULL; }
    return key;                                             /* not compiled yet */
  }
  Py_DECREF(key);
  /* ours: (True, launch, function, kinds, block_x, shared) */
  if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 6 || PyTuple_GET_ITEM(entry, 0) != Py_True ||
      PyTuple_GET_ITEM(entry, 1) != launch_fn)
    Py_RETURN_NOTIMPLEMENTED;
  PyObject *kinds_obj = PyTuple_GET_ITEM(entry, 3);
  const char *kinds = PyBytes_AS_STRING(kinds_obj);
  if (PyBytes_GET_SIZE(kinds_obj) != n + ntail) {
    PyErr_Format(PyExc_TypeError, "launch_cached: %zd arguments for %zd kinds", n + ntail,
                 PyBytes_GET_SIZE(kinds_obj));
    return NULL;
  }
  Slot slots[MAX_PARAMS + 2];
  void *params[MAX_PARAMS + 2];
  int m = 0;
  for (Py_ssize_t k = 0; k < n + ntail; k++) {
    int r;
    if (k < n) {
      r = fill(&slots[m], kinds[k], ival[k], fval[k]);
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
  CUstream stream = (CUstream)PyLong_AsUnsignedLongLong(args[2]);
  CUfunction function = (CUfunction)PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(entry, 2));
  unsigned block_x = (unsigned)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(entry, 4));
  unsigned shared = (unsigned)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(entry, 5));
  if (PyErr_Occurred()) return NULL;
  return finish_launch(function, g[0], g[1], g[2], block_x, shared, stream, slots, params, m);
}

static PyMethodDef methods[] = {{"launch", (PyCFunction)(void (*)(void))launch, METH_FASTCALL, NULL},
                                {"launch_cached", (PyCFunction)(void (*)(void))launch_cached, METH_FASTCALL, NULL},
                                {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "vt_fastlaunch", NULL, -1, methods};
PyMODINIT_FUNC PyInit_vt_fastlaunch(void) {
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  launch_fn = PyObject_GetAttrString(m, "launch");
  str_data_ptr = PyUnicode_InternFromString("data_ptr");
  str_dtype = PyUnicode_InternFromString("dtype");
  if (!launch_fn || !str_data_ptr || !str_dtype) { Py_DECREF(m); return NULL; }
  return m;
}
"""

_KIND = {"i1": "b", "i8": "b", "u1": "B", "u8": "B", "i16": "s", "u16": "S", "i32": "i", "u32": "I",
         "i64": "l", "u64": "L", "fp32": "f", "f32": "f", "fp64": "d", "constexpr": "x"}

_lock = threading.Lock()
_module = []  # [module or None] once tried


def module():
    """The compiled extension, or None if it cannot be built here (then Triton's launcher is used)."""
    if not _module:
        with _lock:
            if not _module:
                try:
                    from triton.backends.nvidia import driver as nv
                    from triton.runtime.build import compile_module_from_src
                    _module.append(compile_module_from_src(_SRC, "vt_fastlaunch", library_dirs=nv.library_dirs(),
                                                           include_dirs=nv.include_dirs, libraries=nv.libraries))
                except Exception as e:  # no compiler here: keep working through Triton's launcher
                    import warnings
                    warnings.warn(f"vibetensor fast launcher unavailable ({e}); using Triton's launcher")
                    _module.append(None)
    return _module[0]


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
