"""CPU kernels of the conv ops, on NumPy."""
