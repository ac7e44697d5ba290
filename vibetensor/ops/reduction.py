"""reduction operators: declarations (see ops/elementwise.py for the pattern)."""
