"""Host-time measurement shared by the benchmarks: warm up, then the median over rounds of the
mean time per call (seconds). `sync` (e.g. a CUDA synchronize) runs after warm-up and each round,
so queued device work never leaks into the next round."""
import gc
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


def round_robin_us(cases, rounds):
    """{key: median us per call} of cases {key: (fn, calls, sync)}, measured round-robin (one round of
    each case in turn, `sync` after each) after a full garbage collection and a warm-up round: a slow
    spell of a shared host, or a collection, then falls on every case alike instead of on the one
    measured at that moment (the first case measured alone read 2-3x high in several runs)."""
    gc.collect()
    samples = {key: [] for key in cases}
    for r in range(rounds + 1):
        for key, (fn, calls, sync) in cases.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            if r:  # round 0 warms up
                samples[key].append((time.perf_counter() - t0) / calls * 1e6)
            sync()
    return {key: statistics.median(v) for key, v in samples.items()}
