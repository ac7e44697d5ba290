"""CPU kernels of the indexing ops, on NumPy."""
