"""Model architectures, one per module; each registers with :func:`xad.weights.register`."""
