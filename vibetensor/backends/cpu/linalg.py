"""CPU kernels of the linalg ops, on NumPy."""
