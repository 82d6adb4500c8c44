"""The names of the verifiers, without torch (the command line's ``--help`` lists them)."""

from __future__ import annotations

__all__ = ["METHODS"]

METHODS = ("brute", "gcr", "coset", "rhoset", "hybrid", "fourier", "fourier_hybrid")
"""The verifiers, cheapest explanation last: see the modules of :mod:`rep_theory.explain.proofs`."""
