"""Operator declarations: one module per family. Importing this package declares every op."""
from vibetensor.ops import elementwise  # noqa: F401
from vibetensor.ops import creation, views  # noqa: F401,E402
