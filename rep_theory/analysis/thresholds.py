"""The metrics' thresholds and learning-order rules, without torch (the command line's ``--help``
reads them); :mod:`rep_theory.analysis.metrics` uses and re-exports them."""

from __future__ import annotations

__all__ = ["KEY_THRESHOLD", "ORDER_THRESHOLD", "ORDER_RULES"]

KEY_THRESHOLD = 0.005
"""Final-model logit similarity above which a non-trivial irrep is *key* (the paper's value)."""

ORDER_THRESHOLD = 0.05
"""Logit similarity at which a key irrep counts as learnt, for the learning order (the paper's)."""

ORDER_RULES = ("package", "paper")
"""Learning-order rules of :func:`rep_theory.analysis.metrics.learning_order`."""
