"""Host-time measurement shared by the benchmarks: warm up, then the median over rounds of the
mean time per call (seconds). `sync` (e.g. a CUDA synchronize) runs after warm-up and each round,
so queued device work never leaks into the next round."""
import statistics
import time


def host_seconds(fn, sync=None, calls=2000, rounds=11, warmup=100):
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - t0) / calls)
        if sync:
            sync()
    return statistics.median(samples)
