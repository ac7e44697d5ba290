"""Kernels per device, registered with the dispatcher. cpu/ (NumPy) is always loaded; cuda/ when a
CUDA device is first used."""
