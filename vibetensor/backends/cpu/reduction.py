"""CPU kernels of the reduction ops, on NumPy."""
