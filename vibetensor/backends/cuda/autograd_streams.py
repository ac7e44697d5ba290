"""Autograd on CUDA streams: a node's backward runs on the stream its forward ran on.

The engine records, per node, the stream current when the node was made (`current`), runs the
node's backward inside `enter(stream)`, and passes every gradient through `sync(grad, producer,
consumer)` on its way to the next node. Where producer and consumer streams differ, the
consumer's stream waits for the producer's (an event, no host sync) and the gradient's memory is
recorded on the consumer's stream so the allocator does not reuse it early. A node whose
stream is the caller's current one (the common case: everything on one stream) costs one
identity comparison. Installed when the CUDA backend loads."""
import contextlib

from vibetensor.autograd import engine
from vibetensor.runtime import cuda as rt
from vibetensor.runtime.cuda import stream as streams

_NULL = contextlib.nullcontext()
_current_stream = streams.current_stream_at  # (the hooks run for every node made, run and fed)


def current(device):
    """The stream a node made now on `device` records (None off CUDA)."""
    if device.type != "cuda":
        return None
    return _current_stream(device.index or 0)


def enter(stream):
    """Make `stream` current while a node's backward runs. If it is not the caller's stream, it
    first waits for the caller's work (the root gradients were made there)."""
    caller = _current_stream(stream.device_index)
    if caller is stream:
        return _NULL
    stream.wait_stream(caller)
    return streams.stream(stream)


def sync(grad, producer, consumer):
    """A gradient made on producer's stream, safe to use on consumer's (or, for nodes without a
    stream such as AccumulateGrad, on the caller's current stream)."""
    made_on = producer.stream
    if made_on is None:
        return grad
    used_on = consumer.stream or _current_stream(made_on.device_index)
    if used_on is not made_on:
        used_on.wait_stream(made_on)
        rt.record_stream(grad._storage.data, used_on)
    return grad


engine.set_stream_hooks(enter, sync, current, _current_stream)
