"""One trial: the training loop (one config or a pack), the Ray Tune function, ``search train``."""
