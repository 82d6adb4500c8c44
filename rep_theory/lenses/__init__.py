"""Interpretability lenses scored against the exact ground truth of group-composition networks.

Lenses (one module each): ``neuron`` and ``random`` (calibration ends), ``pca``, ``lib`` (Local
Interaction Basis), ``sae_topk`` / ``sae_l1`` (sparse autoencoders), ``transcoder``, ``scae``
(sparsely-connected SAEs).  Ground truth: :mod:`rep_theory.lenses.irrep_energy`; scores:
:mod:`rep_theory.lenses.scores`; entry points :func:`lens_leaderboard` (a model and its group),
:func:`run_lenses` (a run directory) and :func:`batch_lens_table` (a batch of runs).
"""

from rep_theory.lenses.leaderboard import COLUMNS, LENSES, lens_leaderboard
from rep_theory.lenses.runs import batch_lens_table, lens_staleness, run_lenses

__all__ = ["COLUMNS", "LENSES", "lens_leaderboard", "run_lenses", "batch_lens_table", "lens_staleness"]
