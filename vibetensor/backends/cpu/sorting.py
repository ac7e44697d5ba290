"""CPU kernels of the sorting ops, on NumPy."""
