"""Layer 6, many runs: grids and batch directories, the batch runner and its backends (processes,
Ray), evaluation followed by figures, paper import, and the demo."""
