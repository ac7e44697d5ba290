"""Reference workloads, each written once for any torch-like module (vibetensor.torch or torch).

    reversal   a causal decoder-only transformer that learns to reverse sequences (issue 8):
               the main job (`python3 -m vibetensor train`) and `vibetensor bench reversal`
    plot       a dependency-free PNG line plot (loss curves)
    progress   a one-line progress bar (iteration, loss, it/s)
"""
