"""Operator declarations: one module per family. Importing this package declares every op."""
from vibetensor.ops import creation, elementwise, indexing, joining, linalg, random, reduction, views  # noqa: F401
