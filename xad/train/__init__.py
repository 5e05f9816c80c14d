"""Training loops, one module per model family, with progress bars and seeds."""
