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
    PyObject *a = args[8 + k];
    Slot *s = &slots[n];
    switch (kinds[k]) {
      case 'x': continue;
      case 'p': case 'L': s->u64 = PyLong_AsUnsignedLongLong(a); break;
      case 'l': s->i64 = PyLong_AsLongLong(a); break;
      case 'i': s->i32 = (int32_t)PyLong_AsLong(a); break;
      case 'I': s->u32 = (uint32_t)PyLong_AsUnsignedLong(a); break;
      case 's': s->i16 = (int16_t)PyLong_AsLong(a); break;
      case 'S': s->u16 = (uint16_t)PyLong_AsUnsignedLong(a); break;
      case 'b': s->i8 = (int8_t)PyLong_AsLong(a); break;
      case 'B': s->u8 = (uint8_t)PyLong_AsUnsignedLong(a); break;
      case 'f': s->f32 = (float)PyFloat_AsDouble(a); break;
      case 'd': s->f64 = PyFloat_AsDouble(a); break;
      default:
        PyErr_Format(PyExc_TypeError, "launch: unknown kind '%c'", kinds[k]);
        return NULL;
    }
    params[n] = s;
    n++;
  }
  if (PyErr_Occurred()) return NULL;
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

static PyMethodDef methods[] = {{"launch", (PyCFunction)(void (*)(void))launch, METH_FASTCALL, NULL},
                                {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "vt_fastlaunch", NULL, -1, methods};
PyMODINIT_FUNC PyInit_vt_fastlaunch(void) { return PyModule_Create(&module); }
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
