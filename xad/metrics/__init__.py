"""Metrics: small pure NumPy functions (no torch, no I/O), tested on hand-checkable arrays."""
