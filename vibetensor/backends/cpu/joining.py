"""CPU kernels of the joining ops, on NumPy."""
