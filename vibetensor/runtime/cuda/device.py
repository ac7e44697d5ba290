"""The real CUDA device behind the caching allocator (tests use simulated.SimulatedDevice).

The allocator asks a device for raw memory, events and the current stream; this adapter answers
with driver calls (cuMemAlloc / cuMemFree, our Event and stream objects) and, for
backend:cudaMallocAsync, the device's default stream-ordered memory pool.
"""
import functools

from vibetensor.runtime.cuda import driver as drv
from vibetensor.runtime.cuda import stream as streams
from vibetensor.runtime.cuda.allocator import DeviceOutOfMemory


def _on_own_device(method):
    """Run a driver call in this device's context, the caller's device current again afterwards: an
    allocation for cuda:1 while cuda:0 is current must neither land on cuda:0 nor switch devices."""
    @functools.wraps(method)
    def run(self, *args):
        if drv.in_context(self.index):
            return method(self, *args)
        with drv.on_device(self.index):
            return method(self, *args)
    return run


class CudaDevice:
    def __init__(self, index):
        self.index = drv.check_device(index)
        # current_stream(): this thread's current stream here; the allocator asks on every malloc,
        # so a C partial rather than a method frame
        self.current_stream = functools.partial(streams.current_stream_at, self.index)
        self._cu = drv._driver()
        self._oom = int(self._cu.CUresult.CUDA_ERROR_OUT_OF_MEMORY)

    @_on_own_device
    def raw_malloc(self, nbytes):
        # A new segment may be needed while a graph is being captured (its private pool grows);
        # cuMemAlloc is legal then only in relaxed capture mode, so switch for this call.
        cu = self._cu
        relaxed = cu.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED
        _, previous = cu.cuThreadExchangeStreamCaptureMode(relaxed)
        try:
            err, ptr = cu.cuMemAlloc(nbytes)
        finally:
            cu.cuThreadExchangeStreamCaptureMode(previous)
        if int(err) == self._oom:
            raise DeviceOutOfMemory(nbytes)
        if int(err) != 0:
            raise drv._error("cuMemAlloc", err)
        return int(ptr)

    @_on_own_device
    def raw_free(self, ptr):
        drv.call(self._cu.cuMemFree, ptr)

    def mem_get_info(self):
        return drv.mem_get_info(self.index)

    @_on_own_device
    def create_event(self):
        return streams.Event()

    def stream_wait_event(self, stream, event):
        stream.wait_event(event)

    def synchronize(self):
        streams.synchronize(self.index)

    # -- backend:cudaMallocAsync: the device's default stream-ordered pool --------------------------
    def _pool(self):
        return drv.call(self._cu.cuDeviceGetDefaultMemPool, drv.call(self._cu.cuDeviceGet, self.index))

    @_on_own_device
    def malloc_async(self, nbytes, stream):
        err, ptr = self._cu.cuMemAllocAsync(nbytes, stream.handle)
        if int(err) == self._oom:
            raise DeviceOutOfMemory(nbytes)
        if int(err) != 0:
            raise drv._error("cuMemAllocAsync", err)
        return int(ptr)

    @_on_own_device
    def free_async(self, ptr, stream):
        drv.call(self._cu.cuMemFreeAsync, ptr, stream.handle)

    def pool_trim_to(self, nbytes):
        drv.call(self._cu.cuMemPoolTrimTo, self._pool(), nbytes)

    def pool_usage(self):
        A = self._cu.CUmemPool_attribute
        get = lambda a: int(drv.call(self._cu.cuMemPoolGetAttribute, self._pool(), a))  # noqa: E731
        return (get(A.CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), get(A.CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH),
                get(A.CU_MEMPOOL_ATTR_USED_MEM_CURRENT), get(A.CU_MEMPOOL_ATTR_USED_MEM_HIGH))

    def pool_reset_peaks(self):
        A = self._cu.CUmemPool_attribute
        zero = self._cu.cuuint64_t(0)
        for a in (A.CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH, A.CU_MEMPOOL_ATTR_USED_MEM_HIGH):
            drv.call(self._cu.cuMemPoolSetAttribute, self._pool(), a, zero)
