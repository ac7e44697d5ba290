"""The caching allocator's two hot paths in C: malloc and the free of a block.

Every tensor's memory goes through CachingAllocator.malloc and comes back through _free_block.
Their Python (allocator.py) is already slot writes and integer adds, and still costs about 20%
of a small op's host time and of a training step's (benchmarks/cuda_host_sim.py, against an
allocator with no pools or statistics). This module does the same work over the same objects:
it reads and writes the slots of Block, BlockPool, Counters, Allocation and the allocator
directly, bisects the free lists' size lists, and calls back into the Python for everything
uncommon (a block split for the first time in a while, a take-back's plan, peaks that may rise,
cudaMalloc, captures, history, events). So the Python in allocator.py stays the specification:

    malloc(self, nbytes, stream=None)   CachingAllocator.malloc; its Python is malloc_python
    free_block(self, block)             CachingAllocator._free_block_of (a free whose uses are over)

where the allocator's `_fast` is off (a capture, pending events, history, unusual settings),
malloc calls malloc_python whole, and free_block calls _free_block. The tests run the fast-path
twin (tests/test_allocator_fastpath.py) on this and on the Python, against the slow path.

The lock is taken as the Python takes it (RLock.acquire); frees that wait in `_deferred` are
completed first, the last one possibly taken straight back (_take_back), as in malloc_python.
It is built once by runtime/native.py (a C compiler and Python's headers); where that fails the
Python runs, and `module()` is None.
"""
from vibetensor.runtime.native import Extension

_SRC = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))
#define K_SMALL_SIZE (1LL << 20)

/* slot offsets, read from the classes' member descriptors by install() */
enum { A_lock, A_deferred, A_fast, A_taken, A_small_free, A_large_free, A_fast_limit, A_spare, A_segments,
       A_current_stream, A_recording, A_max_split, A_history,
       B_stream, B_size, B_requested_size, B_ptr, B_pool, B_allocated, B_prev, B_next, B_stream_uses,
       B_event_count, B_gc_count_base, B_frames, B_segment_frames,
       P_min_rest, P_counters, P_by_stream, P_gc_count,
       C_n, C_b, C_r, C_nc, C_bc, C_rc, C_s, C_sb, C_sp, C_sbp, C_g_n, C_g_b, C_g_r, C_g_s, C_g_sb,
       H_ptr, H_size, H_block, H_allocator, N_OFFSETS };
static const char *names[N_OFFSETS] = {
  "_lock", "_deferred", "_fast", "_taken", "_small_free", "_large_free", "_fast_limit", "_spare", "_segments",
  "_current_stream", "_recording", "_max_split", "history",
  "stream", "size", "requested_size", "ptr", "pool", "allocated", "prev", "next", "stream_uses",
  "event_count", "gc_count_base", "frames", "segment_frames",
  "min_rest", "counters", "by_stream", "get_free_blocks_call_count",
  "n", "b", "r", "nc", "bc", "rc", "s", "sb", "sp", "sbp", "g_n", "g_b", "g_r", "g_s", "g_sb",
  "ptr", "size", "_block", "_allocator"};
static Py_ssize_t off[N_OFFSETS];

static PyTypeObject *allocation_type;  /* allocator.Allocation */
static PyObject *block_type, *malloc_python, *split_peaks, *alloc_peaks;
static PyObject *s_acquire, *s_release, *s_append, *s_release_block, *s_popleft, *s_free_block, *s_take_back_plan, *s_malloc,
                *s_drain_deferred, *s_context;
static PyObject *gather_frames;

/* -- slot access: a missing slot (never set) raises AttributeError instead of crashing ---------- */
static PyObject *get(PyObject *o, int k) {  /* borrowed */
  PyObject *v = SLOT(o, off[k]);
  if (!v) PyErr_Format(PyExc_AttributeError, "allocator: slot %s is not set", names[k]);
  return v;
}
static long long geti(PyObject *o, int k) {  /* check PyErr_Occurred() before acting on the value */
  PyObject *v = get(o, k);
  return v ? PyLong_AsLongLong(v) : -1;
}
static long long geti_sat(PyObject *o, int k) {  /* (SIZE_MAX, "no limit", saturates) */
  PyObject *v = get(o, k);
  int overflow = 0;
  long long x = v ? PyLong_AsLongLongAndOverflow(v, &overflow) : -1;
  return overflow > 0 ? LLONG_MAX : x;
}
static int truth(PyObject *o, int k) {
  PyObject *v = get(o, k);
  return v ? PyObject_IsTrue(v) : -1;
}
static void seto(PyObject *o, int k, PyObject *v) {  /* o.k = v (v borrowed) */
  Py_INCREF(v);
  Py_XSETREF(SLOT(o, off[k]), v);
}
static int seti(PyObject *o, int k, long long x) {
  PyObject *v = PyLong_FromLongLong(x);
  if (!v) return -1;
  Py_XSETREF(SLOT(o, off[k]), v);
  return 0;
}
/* o.k += d; *out the new value. 0 ok, -1 an exception. */
static int addi(PyObject *o, int k, long long d, long long *out) {
  long long x = geti(o, k);
  if (x == -1 && PyErr_Occurred()) return -1;
  if (out) *out = x + d;
  return d ? seti(o, k, x + d) : 0;
}
static int is_none(PyObject *o, int k) { return SLOT(o, off[k]) == Py_None; }

/* -- free lists: (sizes, blocks), parallel lists in (size, ptr) order (BlockPool) --------------- */
static Py_ssize_t bisect(PyObject *sizes, long long x) {  /* bisect_left; check PyErr_Occurred() */
  Py_ssize_t lo = 0, hi = PyList_GET_SIZE(sizes);
  while (lo < hi) {
    Py_ssize_t mid = (lo + hi) / 2;
    if (PyLong_AsLongLong(PyList_GET_ITEM(sizes, mid)) < x) lo = mid + 1; else hi = mid;
  }
  return lo;
}
static long long size_at(PyObject *sizes, Py_ssize_t i) { return PyLong_AsLongLong(PyList_GET_ITEM(sizes, i)); }
static long long ptr_of(PyObject *block) { return geti(block, B_ptr); }

/* allocator._slot: where a free block of (size, ptr) goes */
static Py_ssize_t slot_for(PyObject *sizes, PyObject *blocks, long long size, long long ptr) {
  Py_ssize_t i = bisect(sizes, size), n = PyList_GET_SIZE(sizes);
  while (i < n && size_at(sizes, i) == size && ptr_of(PyList_GET_ITEM(blocks, i)) < ptr) i++;
  return i;
}
/* the index of `block` in the list, searching from where its size starts; -1 (set) if missing */
static Py_ssize_t index_of(PyObject *sizes, PyObject *blocks, PyObject *block, long long size) {
  Py_ssize_t i = bisect(sizes, size), n = PyList_GET_SIZE(blocks);
  while (i < n && PyList_GET_ITEM(blocks, i) != block) i++;
  if (i == n) {
    PyErr_SetString(PyExc_AssertionError, "allocator: block missing from its pool");
    return -1;
  }
  return i;
}
static int del_at(PyObject *sizes, PyObject *blocks, Py_ssize_t i) {
  if (PyList_SetSlice(sizes, i, i + 1, NULL) < 0) return -1;
  return PyList_SetSlice(blocks, i, i + 1, NULL);
}
/* a stream's free list (sizes, blocks) in pool dict `by`, made if missing (BlockPool.free_list) */
static PyObject *free_list(PyObject *by, PyObject *stream) {  /* borrowed */
  PyObject *fl = PyDict_GetItemWithError(by, stream);
  if (fl || PyErr_Occurred()) return fl;
  PyObject *sizes = PyList_New(0), *blocks = PyList_New(0);
  fl = (sizes && blocks) ? PyTuple_Pack(2, sizes, blocks) : NULL;
  Py_XDECREF(sizes);
  Py_XDECREF(blocks);
  if (!fl) return NULL;
  int r = PyDict_SetItem(by, stream, fl);
  Py_DECREF(fl);  /* (the dict holds it) */
  return r < 0 ? NULL : fl;
}
static int unpack_list(PyObject *fl, PyObject **sizes, PyObject **blocks) {
  if (!PyTuple_Check(fl) || PyTuple_GET_SIZE(fl) != 2 || !PyList_Check(PyTuple_GET_ITEM(fl, 0)) ||
      !PyList_Check(PyTuple_GET_ITEM(fl, 1))) {
    PyErr_SetString(PyExc_TypeError, "allocator: a free list is not (sizes, blocks)");
    return -1;
  }
  *sizes = PyTuple_GET_ITEM(fl, 0);
  *blocks = PyTuple_GET_ITEM(fl, 1);
  return 0;
}

/* `block` into a free list, at its (size, ptr) place */
static int list_insert(PyObject *sizes, PyObject *blocks, PyObject *block) {
  PyObject *size = get(block, B_size);
  if (!size) return -1;
  Py_ssize_t i = slot_for(sizes, blocks, PyLong_AsLongLong(size), ptr_of(block));
  if (PyErr_Occurred() || PyList_Insert(sizes, i, size) < 0) return -1;
  return PyList_Insert(blocks, i, block);
}

/* BlockPool.insert */
static int pool_insert(PyObject *pool, PyObject *block) {
  PyObject *by = get(pool, P_by_stream), *gc = get(pool, P_gc_count), *stream = get(block, B_stream), *sizes, *blocks;
  if (!by || !gc || !stream) return -1;
  seto(block, B_gc_count_base, gc);
  PyObject *fl = free_list(by, stream);
  if (!fl || unpack_list(fl, &sizes, &blocks) < 0) return -1;
  return list_insert(sizes, blocks, block);
}

/* the pool's Counters (c, o, a): this kind's, the other kind's, all pools' (borrowed) */
static int counters_of(PyObject *pool, PyObject **c, PyObject **o, PyObject **a) {
  PyObject *t = get(pool, P_counters);
  if (!t) return -1;
  if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3) {
    PyErr_SetString(PyExc_TypeError, "allocator: a pool's counters are not (c, o, a)");
    return -1;
  }
  *c = PyTuple_GET_ITEM(t, 0), *o = PyTuple_GET_ITEM(t, 1), *a = PyTuple_GET_ITEM(t, 2);
  return 0;
}
static int call3(PyObject *fn, PyObject *c, PyObject *o, PyObject *a) {  /* _split_peaks / _alloc_peaks */
  PyObject *args[3] = {c, o, a};
  PyObject *r = PyObject_Vectorcall(fn, args, 3, NULL);
  Py_XDECREF(r);
  return r ? 0 : -1;
}
/* a free neighbour merges: not allocated, no events pending, no other stream's uses */
static int is_free(PyObject *b) {
  int t;
  if ((t = truth(b, B_allocated)) != 0 || (t = truth(b, B_event_count)) != 0 || (t = truth(b, B_stream_uses)) != 0)
    return t < 0 ? -1 : 0;
  return 1;
}
/* head.next = allocator._spare; allocator._spare = head (a Block a merge dropped, for reuse) */
static void to_spare(PyObject *self, PyObject *b) {
  seto(b, B_next, SLOT(self, off[A_spare]));
  seto(self, A_spare, b);
}

/* -- _free_block(block), just freed ------------------------------------------------------------ */
/* allocator.CachingAllocator._free_block's common case (see there); the rest through it */
static int free_block(PyObject *self, PyObject *block) {
  seto(self, A_taken, Py_None);  /* (the pools change: _take_back's kept plans may no longer hold) */
  long long size = geti(block, B_size), fast_limit = geti(self, A_fast_limit), max_split = geti_sat(self, A_max_split);
  int uses = truth(block, B_stream_uses), recording = truth(self, A_recording);
  if (PyErr_Occurred()) return -1;
  if (uses || recording || (size >= fast_limit && size >= max_split)) {  /* events, history, oversize */
    PyObject *r = PyObject_CallMethodOneArg(self, s_free_block, block);
    Py_XDECREF(r);
    return r ? 0 : -1;
  }
  PyObject *pool = get(block, B_pool), *c, *o, *a;
  if (!pool || counters_of(pool, &c, &o, &a) < 0) return -1;
  seto(block, B_allocated, Py_False);
  seto(block, B_frames, Py_None);
  long long requested = geti(block, B_requested_size);
  if (PyErr_Occurred() || addi(c, C_n, -1, NULL) || addi(c, C_b, -size, NULL) || addi(c, C_r, -requested, NULL) ||
      addi(c, C_nc, 1, NULL) || addi(c, C_bc, size, NULL) || addi(c, C_rc, requested, NULL))
    return -1;
  PyObject *prev = get(block, B_prev), *nxt = get(block, B_next);
  if (!prev || !nxt) return -1;
  if (prev == Py_None && nxt == Py_None) return pool_insert(pool, block);  /* a whole segment */
  PyObject *gc = get(pool, P_gc_count), *by = get(pool, P_by_stream), *stream = get(block, B_stream), *fl, *sizes, *blocks;
  if (!gc || !by || !stream) return -1;
  seto(block, B_gc_count_base, gc);
  fl = PyDict_GetItemWithError(by, stream);
  if (!fl) {
    if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, stream);
    return -1;
  }
  if (unpack_list(fl, &sizes, &blocks) < 0) return -1;
  /* absorb free neighbours: their Blocks go to the spare chain; `slot` is where the last one
     absorbed still sits in the free list */
  int merged = 0, f;
  Py_ssize_t slot = 0;
  Py_INCREF(prev);
  Py_INCREF(nxt);
  int rc = -1;
  if (prev != Py_None) {
    if ((f = is_free(prev)) < 0) goto done;
    if (f) {
      long long psize = geti(prev, B_size);
      if (PyErr_Occurred() || (slot = index_of(sizes, blocks, prev, psize)) < 0) goto done;
      PyObject *pptr = get(prev, B_ptr), *pp = get(prev, B_prev);
      if (!pptr || !pp) goto done;
      seto(block, B_ptr, pptr);
      if (seti(block, B_size, size + psize) < 0) goto done;
      seto(block, B_prev, pp);
      if (pp != Py_None) seto(pp, B_next, block);
      else {  /* the block heads the segment now */
        PyObject *segments = get(self, A_segments), *frames = get(prev, B_segment_frames);
        if (!segments || !frames) goto done;
        seto(block, B_segment_frames, frames);
        seto(prev, B_segment_frames, Py_None);
        if (PyDict_SetItem(segments, pptr, block) < 0) goto done;
      }
      to_spare(self, prev);
      merged = 1;
    }
  }
  if (nxt != Py_None) {
    if ((f = is_free(nxt)) < 0) goto done;
    if (f) {
      if (merged && del_at(sizes, blocks, slot) < 0) goto done;
      long long nsize = geti(nxt, B_size), bsize = geti(block, B_size);
      if (PyErr_Occurred() || (slot = index_of(sizes, blocks, nxt, nsize)) < 0) goto done;
      if (seti(block, B_size, bsize + nsize) < 0) goto done;
      PyObject *nn = get(nxt, B_next);
      if (!nn) goto done;
      seto(block, B_next, nn);
      if (nn != Py_None) seto(nn, B_prev, block);
      to_spare(self, nxt);
      merged++;
    }
  }
  if (merged) {
    long long merged_size = geti(block, B_size), bptr = ptr_of(block);
    if (PyErr_Occurred()) goto done;
    Py_ssize_t j = slot + 1, n = PyList_GET_SIZE(sizes);
    long long sj = j < n ? size_at(sizes, j) : 0, pj = j < n ? ptr_of(PyList_GET_ITEM(blocks, j)) : 0;
    if (PyErr_Occurred()) goto done;
    if (j == n || merged_size < sj || (merged_size == sj && bptr < pj)) {
      /* it sorts above the neighbour it absorbed and below the entry after: it takes its place */
      Py_INCREF(block);
      PyList_SetItem(blocks, slot, block);
      PyObject *ms = get(block, B_size);
      Py_INCREF(ms);
      PyList_SetItem(sizes, slot, ms);
    } else if (del_at(sizes, blocks, slot) < 0 || pool_insert(pool, block) < 0) goto done;
    if (is_none(block, B_prev) && is_none(block, B_next)) {
      /* the whole segment is free: the absorbed neighbours are no inactive split blocks now */
      rc = (addi(c, C_s, -merged, NULL) || addi(c, C_sb, -(merged_size - size), NULL)) ? -1 : 0;
      goto done;
    }
    long long sb;
    if ((merged == 2 && addi(c, C_s, -1, NULL)) || addi(c, C_sbp, size, NULL) || addi(c, C_sb, size, &sb)) goto done;
    long long g_sb = geti(c, C_g_sb);
    if (PyErr_Occurred()) goto done;
    rc = sb > g_sb ? call3(split_peaks, c, o, a) : 0;
  } else {  /* a new inactive split block */
    if (list_insert(sizes, blocks, block) < 0) goto done;
    long long s, sb;
    if (addi(c, C_sp, 1, NULL) || addi(c, C_sbp, size, NULL) || addi(c, C_s, 1, &s) || addi(c, C_sb, size, &sb))
      goto done;
    long long g_s = geti(c, C_g_s), g_sb = geti(c, C_g_sb);
    if (PyErr_Occurred()) goto done;
    rc = (s > g_s || sb > g_sb) ? call3(split_peaks, c, o, a) : 0;
  }
done:
  Py_DECREF(prev);
  Py_DECREF(nxt);
  return rc;
}

static PyObject *free_block_method(PyObject *self, PyObject *block) {
  if (free_block(self, block) < 0) return NULL;
  Py_RETURN_NONE;
}

/* -- malloc ------------------------------------------------------------------------------------ */
/* _take_back: the block `freed` taken straight back by malloc(nbytes) (new reference), Py_None
   where it cannot be (not a new reference), NULL on an exception. */
static PyObject *take_back(PyObject *self, PyObject *block, long long nbytes, PyObject *nbytes_obj, PyObject *stream) {
  long long size = geti(block, B_size);
  PyObject *bstream = get(block, B_stream);
  if (PyErr_Occurred()) return NULL;
  if (bstream != stream || size != ((nbytes + 511) & -512)) return Py_None;
  PyObject *plans = get(self, A_taken), *plan = NULL;
  if (!plans) return NULL;
  if (plans != Py_None) {
    if (!PyDict_Check(plans)) return Py_None;
    plan = PyDict_GetItemWithError(plans, block);
    if (!plan && PyErr_Occurred()) return NULL;
    Py_XINCREF(plan);
  }
  if (!plan) {  /* made once, by the Python */
    PyObject *size_obj = get(block, B_size), *args[4] = {self, block, nbytes_obj, size_obj};
    plan = PyObject_VectorcallMethod(s_take_back_plan, args, 4, NULL);
    if (!plan) return NULL;
    if (plan == Py_None) { Py_DECREF(plan); return Py_None; }
    if (plans == Py_None) {
      plans = PyDict_New();
      if (!plans) { Py_DECREF(plan); return NULL; }
      Py_XSETREF(SLOT(self, off[A_taken]), plans);
    }
    if (PyDict_SetItem(plans, block, plan) < 0) { Py_DECREF(plan); return NULL; }
  }
  PyObject *res = NULL;
  if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) != 6) {
    PyErr_SetString(PyExc_TypeError, "allocator: a take-back plan is not (c, o, a, sp, sbp, merged)");
    goto out;
  }
  PyObject *c = PyTuple_GET_ITEM(plan, 0), *o = PyTuple_GET_ITEM(plan, 1), *a = PyTuple_GET_ITEM(plan, 2);
  PyObject *merged = PyTuple_GET_ITEM(plan, 5), *req = get(block, B_requested_size);
  long long sp = PyLong_AsLongLong(PyTuple_GET_ITEM(plan, 3)), sbp = PyLong_AsLongLong(PyTuple_GET_ITEM(plan, 4));
  long long requested = req ? PyLong_AsLongLong(req) : -1, r;
  if (PyErr_Occurred()) goto out;
  /* what the free adds to the totals; active blocks and bytes come back unchanged */
  if (addi(c, C_nc, 1, NULL) || addi(c, C_bc, size, NULL) || addi(c, C_rc, requested, NULL) ||
      addi(c, C_sp, sp, NULL) || addi(c, C_sbp, sbp, NULL))
    goto out;
  if (merged != Py_None) seto(merged, B_requested_size, req);  /* (stale, as torch's) */
  seto(block, B_requested_size, nbytes_obj);
  if (addi(c, C_r, nbytes - requested, &r)) goto out;
  long long g_r = geti(c, C_g_r);
  if (PyErr_Occurred() || (r > g_r && call3(alloc_peaks, c, o, a) < 0)) goto out;
  res = Py_NewRef(block);
out:
  Py_DECREF(plan);
  return res;
}

/* malloc's fast path: the smallest cached block of the stream's pool that fits, split if the rest
   is worth keeping (new reference); Py_None (not a new reference) where it takes another way. */
static PyObject *take_cached(PyObject *self, long long nbytes, PyObject *nbytes_obj, PyObject *stream) {
  seto(self, A_taken, Py_None);  /* (the pools change: _take_back's kept plans may no longer hold) */
  PyObject *by = get(self, nbytes <= K_SMALL_SIZE ? A_small_free : A_large_free), *sizes, *blocks;
  if (!by) return NULL;
  PyObject *fl = PyDict_GetItemWithError(by, stream);
  if (!fl) return PyErr_Occurred() ? NULL : Py_None;
  if (unpack_list(fl, &sizes, &blocks) < 0) return NULL;
  long long size = (nbytes + 511) & -512, fast_limit = geti(self, A_fast_limit);
  Py_ssize_t i = bisect(sizes, size), n = PyList_GET_SIZE(sizes);
  if (PyErr_Occurred()) return NULL;
  if (i >= n || size_at(sizes, i) >= fast_limit) return PyErr_Occurred() ? NULL : Py_None;  /* (oversize: _fits' rules) */
  /* owned references, dropped at `out` */
  PyObject *block = Py_NewRef(PyList_GET_ITEM(blocks, i)), *rest = NULL, *prev = NULL, *ptr = NULL, *res = NULL;
  PyObject *pool = get(block, B_pool), *c, *o, *a;
  prev = Py_XNewRef(get(block, B_prev));
  if (!pool || !prev || counters_of(pool, &c, &o, &a) < 0) goto out;
  long long bsize = geti(block, B_size), min_rest = geti(pool, P_min_rest), remaining = bsize - size;
  if (PyErr_Occurred()) goto out;
  if (remaining >= min_rest) {  /* split: the front `size` bytes go out */
    rest = block;  /* keeps its identity, and its place in the list if it can */
    block = NULL;
    ptr = Py_XNewRef(get(rest, B_ptr));
    PyObject *spare = get(self, A_spare);
    if (!ptr || !spare) goto out;
    long long p = PyLong_AsLongLong(ptr);
    if (PyErr_Occurred()) goto out;
    if (spare != Py_None) {  /* a Block a merge left: cheaper than a new one */
      PyObject *next_spare = get(spare, B_next);
      if (!next_spare) goto out;
      block = Py_NewRef(spare);
      seto(self, A_spare, next_spare);
      seto(block, B_stream, stream);
      if (seti(block, B_size, size) < 0) goto out;
      seto(block, B_pool, pool);
      seto(block, B_ptr, ptr);
      seto(block, B_prev, prev);
      seto(block, B_next, rest);
    } else {
      PyObject *size_obj = PyLong_FromLongLong(size);
      PyObject *args[6] = {stream, size_obj, pool, ptr, prev, rest};
      block = size_obj ? PyObject_Vectorcall(block_type, args, 6, NULL) : NULL;
      Py_XDECREF(size_obj);
      if (!block) goto out;
    }
    int head = prev == Py_None;
    if (!head) seto(prev, B_next, block);
    else {  /* the new block heads the segment: it carries the segment's stack */
      PyObject *segments = get(self, A_segments), *frames = get(rest, B_segment_frames);
      if (!segments || !frames) goto out;
      seto(block, B_segment_frames, frames);
      seto(rest, B_segment_frames, Py_None);
      if (PyDict_SetItem(segments, ptr, block) < 0) goto out;
    }
    seto(rest, B_prev, block);
    long long rptr = p + size, c_s, c_sb;
    PyObject *gc = get(pool, P_gc_count);
    if (!gc || seti(rest, B_ptr, rptr) < 0 || seti(rest, B_size, remaining) < 0) goto out;
    seto(rest, B_gc_count_base, gc);
    long long before = i > 0 ? size_at(sizes, i - 1) : 0, before_ptr = 0;
    if (i > 0 && before == remaining) before_ptr = ptr_of(PyList_GET_ITEM(blocks, i - 1));
    if (PyErr_Occurred()) goto out;
    if (i == 0 || before < remaining || (before == remaining && before_ptr < rptr)) {
      /* the remainder sorts below the block it was, so if it also sorts above the entry before,
         it takes the block's place in the list */
      PyList_SetItem(sizes, i, Py_NewRef(get(rest, B_size)));
    } else if (del_at(sizes, blocks, i) < 0 || pool_insert(pool, rest) < 0) goto out;
    if (!head || !is_none(rest, B_next)) {  /* a split block shrinks */
      if (addi(c, C_sb, -size, NULL)) goto out;
    } else {  /* a new inactive split block appears (_split_delta, inline) */
      if (addi(c, C_sp, 1, NULL) || addi(c, C_sbp, remaining, NULL) || addi(c, C_s, 1, &c_s) ||
          addi(c, C_sb, remaining, &c_sb))
        goto out;
      long long g_s = geti(c, C_g_s), g_sb = geti(c, C_g_sb);
      if (PyErr_Occurred() || ((c_s > g_s || c_sb > g_sb) && call3(split_peaks, c, o, a) < 0)) goto out;
    }
  } else {
    int split = prev != Py_None || !is_none(block, B_next);
    if (del_at(sizes, blocks, i) < 0) goto out;
    size = bsize;
    if (split && (addi(c, C_s, -1, NULL) || addi(c, C_sb, -size, NULL))) goto out;  /* a split block turns active */
  }
  seto(block, B_allocated, Py_True);  /* (a cached block's frames are None already) */
  seto(block, B_requested_size, nbytes_obj);
  long long cn, cb, cr;
  if (addi(c, C_n, 1, &cn) || addi(c, C_b, size, &cb) || addi(c, C_r, nbytes, &cr)) goto out;
  long long g_n = geti(c, C_g_n), g_b = geti(c, C_g_b), g_r = geti(c, C_g_r);
  if (PyErr_Occurred() || ((cn > g_n || cb > g_b || cr > g_r) && call3(alloc_peaks, c, o, a) < 0)) goto out;
  res = block;
  block = NULL;
out:
  Py_XDECREF(block);
  Py_XDECREF(rest);
  Py_XDECREF(prev);
  Py_XDECREF(ptr);
  return res;
}

/* self.<name>(*args): the Python method (new reference) */
static PyObject *call_method(PyObject *self, PyObject *name, PyObject *a0, PyObject *a1, PyObject *a2, int n) {
  PyObject *args[4] = {self, a0, a1, a2};
  return PyObject_VectorcallMethod(name, args, n + 1, NULL);
}

/* the Python malloc (malloc_python), for what the C does not take */
static PyObject *call_python(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  Py_ssize_t total = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
  PyObject *small[8], **stack = total + 1 <= 8 ? small : PyMem_Malloc((total + 1) * sizeof(PyObject *));
  if (!stack) return PyErr_NoMemory();
  stack[0] = self;
  for (Py_ssize_t k = 0; k < total; k++) stack[k + 1] = args[k];
  PyObject *res = PyObject_Vectorcall(malloc_python, stack, nargs + 1, kwnames);
  if (stack != small) PyMem_Free(stack);
  return res;
}

/* malloc's work under the lock (malloc_python's `try` body): the block (new reference) or NULL */
static PyObject *malloc_locked(PyObject *self, long long nbytes, PyObject *nbytes_obj, PyObject *stream,
                               PyObject *deferred) {
  for (;;) {  /* frees first, as if they had been done at once (_Locked._drain) */
    Py_ssize_t left = PyObject_Length(deferred);
    if (left < 0) return NULL;
    if (left == 0) break;
    PyObject *freed = PyObject_CallMethodNoArgs(deferred, s_popleft);
    if (!freed) return NULL;
    int fast = (left == 1) ? truth(self, A_fast) : 0;
    if (fast < 0) { Py_DECREF(freed); return NULL; }
    if (fast) {  /* the last: maybe this malloc takes it straight back */
      PyObject *block = take_back(self, freed, nbytes, nbytes_obj, stream);
      if (block != Py_None) { Py_DECREF(freed); return block; }
    }
    int r = free_block(self, freed);
    Py_DECREF(freed);
    if (r < 0) return NULL;
  }
  int fast = truth(self, A_fast);
  if (fast < 0) return NULL;
  if (fast) {
    PyObject *block = take_cached(self, nbytes, nbytes_obj, stream);
    if (block != Py_None) return block;
    return call_method(self, s_malloc, nbytes_obj, stream, Py_None, 3);
  }
  PyObject *history = get(self, A_history), *frames;  /* a free started something slow (events) */
  if (!history) return NULL;
  PyObject *context = PyObject_GetAttr(history, s_context);
  int gather = context ? PyObject_IsTrue(context) : -1;
  Py_XDECREF(context);
  if (gather < 0) return NULL;
  frames = gather ? PyObject_CallNoArgs(gather_frames) : Py_NewRef(Py_None);
  if (!frames) return NULL;
  PyObject *block = call_method(self, s_malloc, nbytes_obj, stream, frames, 3);
  Py_DECREF(frames);
  return block;
}

/* CachingAllocator.malloc (malloc_python is the specification) */
static PyObject *malloc_method(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
  if (kwnames || nargs < 1 || nargs > 2 || !PyLong_CheckExact(args[0])) return call_python(self, args, nargs, kwnames);
  int fast = truth(self, A_fast), overflow = 0;
  if (fast < 0) return NULL;
  long long nbytes = PyLong_AsLongLongAndOverflow(args[0], &overflow);
  if (!fast || overflow || nbytes <= 0 || nbytes > (1LL << 60)) return call_python(self, args, nargs, kwnames);
  PyObject *stream = nargs == 2 ? args[1] : Py_None;
  if (stream == Py_None) {
    PyObject *current = get(self, A_current_stream);
    stream = current ? PyObject_CallNoArgs(current) : NULL;
    if (!stream) return NULL;
  } else Py_INCREF(stream);
  PyObject *lock = Py_XNewRef(get(self, A_lock)), *deferred = Py_XNewRef(get(self, A_deferred)), *block = NULL;
  PyObject *r = lock && deferred ? PyObject_CallMethodNoArgs(lock, s_acquire) : NULL;
  if (r) {
    Py_DECREF(r);
    block = malloc_locked(self, nbytes, args[0], stream, deferred);
    /* release as `finally` does: keep malloc's exception, if any, across the call */
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    r = PyObject_CallMethodNoArgs(lock, s_release);
    if (et) {
      PyErr_Clear();
      PyErr_Restore(et, ev, tb);
    }
    if (!r) Py_CLEAR(block);
    Py_XDECREF(r);
  }
  Py_DECREF(stream);
  Py_XDECREF(lock);
  PyObject *h = NULL;
  if (block) {
    Py_ssize_t left = PyObject_Length(deferred);
    PyObject *d = left > 0 ? PyObject_CallMethodNoArgs(self, s_drain_deferred) : NULL;
    Py_XDECREF(d);
    PyObject *ptr = get(block, B_ptr);
    if (left >= 0 && (left == 0 || d) && ptr && (h = allocation_type->tp_alloc(allocation_type, 0))) {
      /* no __init__: four slot writes (as malloc_python does) */
      seto(h, H_allocator, self);
      SLOT(h, off[H_block]) = block;  /* (the handle takes the reference) */
      block = NULL;
      seto(h, H_ptr, ptr);
      seto(h, H_size, args[0]);
    }
  }
  Py_XDECREF(block);
  Py_XDECREF(deferred);
  return h;
}

/* Allocation.__del__ (del_python is the specification): a plain free waits, without the lock, for
   the allocator's next call; frees recording events or history entries are done at once */
static PyObject *del_method(PyObject *h, PyObject *unused) {
  PyObject *block = SLOT(h, off[H_block]), *a = SLOT(h, off[H_allocator]), *r;
  if (!block || block == Py_None || !a) Py_RETURN_NONE;
  SLOT(h, off[H_block]) = Py_NewRef(Py_None);  /* (the reference moves here) */
  PyObject *uses = SLOT(block, off[B_stream_uses]);
  int recording = truth(a, A_recording);
  if (recording == 0 && uses == Py_None) {
    PyObject *deferred = get(a, A_deferred);
    r = deferred ? PyObject_CallMethodOneArg(deferred, s_append, block) : NULL;
  } else {
    PyErr_Clear();
    r = PyObject_CallMethodOneArg(a, s_release_block, block);
    if (!r && PyErr_ExceptionMatches(PyExc_Exception)) PyErr_Clear();  /* shutdown: the device may be gone */
  }
  Py_DECREF(block);
  if (!r) return NULL;
  Py_DECREF(r);
  Py_RETURN_NONE;
}

static PyMethodDef malloc_def = {"malloc", (PyCFunction)(void (*)(void))malloc_method, METH_FASTCALL | METH_KEYWORDS,
                                 "malloc(nbytes, stream=None): memory for nbytes usable on stream (an Allocation)"};
static PyMethodDef free_block_def = {"_free_block_of", (PyCFunction)free_block_method, METH_O,
                                     "_free_block_of(block): move a block whose uses are over into its pool"};
static PyMethodDef del_def = {"__del__", (PyCFunction)del_method, METH_NOARGS, "free the memory (gated by events)"};

/* the slot offsets of `cls` for names[first..last) */
static int read_offsets(PyObject *cls, int first, int last) {
  for (int k = first; k < last; k++) {
    PyObject *d = PyObject_GetAttrString(cls, names[k]);
    if (!d) return -1;
    int ok = Py_IS_TYPE(d, &PyMemberDescr_Type) && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
    if (ok) off[k] = ((PyMemberDescrObject *)d)->d_member->offset;
    Py_DECREF(d);
    if (!ok) {
      PyErr_Format(PyExc_TypeError, "fastalloc.install: %s.%s is not a slot", ((PyTypeObject *)cls)->tp_name, names[k]);
      return -1;
    }
  }
  return 0;
}

/* install(CachingAllocator, Block, BlockPool, Counters, Allocation, malloc_python, _split_peaks, _alloc_peaks,
           gather_frames) -> (malloc, _free_block_of, __del__): the method descriptors to set on
   CachingAllocator (two) and Allocation */
static PyObject *install(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 9) {
    PyErr_SetString(PyExc_TypeError, "install(CachingAllocator, Block, BlockPool, Counters, Allocation, "
                                     "malloc_python, split_peaks, alloc_peaks, gather_frames)");
    return NULL;
  }
  for (int k = 0; k < 5; k++)
    if (!PyType_Check(args[k])) { PyErr_SetString(PyExc_TypeError, "install: expected the classes first"); return NULL; }
  if (read_offsets(args[0], A_lock, B_stream) < 0 || read_offsets(args[1], B_stream, P_min_rest) < 0 ||
      read_offsets(args[2], P_min_rest, C_n) < 0 || read_offsets(args[3], C_n, H_ptr) < 0 ||
      read_offsets(args[4], H_ptr, N_OFFSETS) < 0)
    return NULL;
  Py_XSETREF(block_type, Py_NewRef(args[1]));
  Py_XSETREF(allocation_type, (PyTypeObject *)Py_NewRef(args[4]));
  Py_XSETREF(malloc_python, Py_NewRef(args[5]));
  Py_XSETREF(split_peaks, Py_NewRef(args[6]));
  Py_XSETREF(alloc_peaks, Py_NewRef(args[7]));
  Py_XSETREF(gather_frames, Py_NewRef(args[8]));
  PyObject *m = PyDescr_NewMethod((PyTypeObject *)args[0], &malloc_def);
  PyObject *f = m ? PyDescr_NewMethod((PyTypeObject *)args[0], &free_block_def) : NULL;
  PyObject *d = f ? PyDescr_NewMethod((PyTypeObject *)args[4], &del_def) : NULL;
  PyObject *res = d ? PyTuple_Pack(3, m, f, d) : NULL;
  Py_XDECREF(m);
  Py_XDECREF(f);
  Py_XDECREF(d);
  return res;
}

static PyMethodDef methods[] = {{"install", (PyCFunction)(void (*)(void))install, METH_FASTCALL, NULL},
                                {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "vt_fastalloc", NULL, -1, methods};
PyMODINIT_FUNC PyInit_vt_fastalloc(void) {
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  if (!(s_acquire = PyUnicode_InternFromString("acquire")) || !(s_release = PyUnicode_InternFromString("release")) ||
      !(s_popleft = PyUnicode_InternFromString("popleft")) || !(s_append = PyUnicode_InternFromString("append")) ||
      !(s_release_block = PyUnicode_InternFromString("_release")) ||
      !(s_free_block = PyUnicode_InternFromString("_free_block")) ||
      !(s_take_back_plan = PyUnicode_InternFromString("_take_back_plan")) ||
      !(s_malloc = PyUnicode_InternFromString("_malloc")) ||
      !(s_drain_deferred = PyUnicode_InternFromString("_drain_deferred")) ||
      !(s_context = PyUnicode_InternFromString("context"))) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
"""

module = Extension("vt_fastalloc", _SRC, switch="VIBETENSOR_FASTALLOC")
"""The compiled extension, or None where it cannot be built or VIBETENSOR_FASTALLOC=0 (then the Python runs)."""
