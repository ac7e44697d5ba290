"""Operator declarations: one module per family. Importing this package declares every op."""
from vibetensor.ops import (  # noqa: F401
    conv, creation, decompositions, elementwise, foreach, indexing, joining, linalg, nn, random, reduction, scans, scatter, shape_ops,
    sorting, views)
