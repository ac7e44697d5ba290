"""CPU kernels of the scans ops, on NumPy."""
