"""CPU kernels of the scatter ops, on NumPy."""
