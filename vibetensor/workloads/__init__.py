"""Reference workloads (being written)."""
