"""CPU kernels of the random ops, on NumPy."""
