"""CPU kernels of the shape_ops ops, on NumPy."""
