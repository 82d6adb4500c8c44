"""Layer 3, what one trained model is: irrep bases, GCR metrics per checkpoint, per-neuron irrep
content, evaluation of a run directory, run summaries, tables and figures."""
