"""shape_ops operators: declarations and derivatives (see ops/elementwise.py for the pattern)."""
