"""Layer 5, interpretability methods that are not told the group (PCA, the Local Interaction Basis,
sparse autoencoders, transcoders, sparsely-connected SAEs), run on a model and scored against the
ground truth of layers 3-4."""
