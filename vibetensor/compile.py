"""vibetensor.compile: whole-step CUDA graph capture (being written)."""
