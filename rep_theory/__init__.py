"""rep-theory: universality in neural networks through representation theory.

Layers (each imports only from its own layer or those above it in this list; no import cycles;
``tests/test_layering.py`` walks every module's imports to keep this true):

0. ``rep_theory.io``, ``checks``, ``device``, ``locks``: atomic files, argument checks, devices, run locks
1. ``rep_theory.algebra``: groups, irreps, the irrep cache, subgroups, Fourier analysis, rho-sets
2. ``rep_theory.training``: data, models, configs, the run directory, training
3. ``rep_theory.analysis``: metrics, evaluation, summaries, tables, figures
4. ``rep_theory.explain``: cosets, rho-set circuits, accuracy proofs
5. ``rep_theory.lenses``: interpretability methods scored against the irreps
6. ``rep_theory.pipeline``: grids, the batch runner, paper import, the demo
7. ``rep_theory.cli``: the ``rep-theory`` command
"""

__version__ = "0.1.0"
