"""Layer 2, training: the pair dataset and its split, models (single and seed-batched), run
configs, the paper's float64 loss, the run directory on disk, and full-batch training with resume."""
