"""CPU kernels of the nn ops, on NumPy."""
