"""Compact proofs of accuracy: verifiers that turn an explanation into a certified lower bound on a
one-layer MLP's accuracy over all ``|G|^2`` pairs, with their cost counted in FLOPs.

Wu, Jaburi, Drori and Gross, "Towards a Unified and Verified Understanding of Group-Operation
Networks", ICLR 2025 (arXiv 2410.07476); Gross et al., "Compact Proofs of Model Performance via
Mechanistic Interpretability", NeurIPS 2024 (arXiv 2406.11779).

Modules: :mod:`~.core` (result, FLOP ledger, deviation lemma), :mod:`~.rhofit` (fitting the rho-set
interpretation), :mod:`~.rhoset` (the rho-set proof and the hybrid), :mod:`~.baselines` (brute
force, GCR, cosets), :mod:`~.fourier_proof` (ours), :mod:`~.fourier_search` (its size, chosen per
model), :mod:`~.planted` (hand-built circuits), :mod:`~.methods` (the names), :mod:`~.api`
(``verify``, ``verify_run``).
"""

import importlib

from rep_theory.explain.proofs.methods import METHODS

# Everything else is imported on first use (PEP 562), so that ``METHODS`` costs no torch import.
_LAZY = {"VerifyResult": "core", "verify": "api", "verify_run": "api", "verify_table": "api",
         "format_verify_table": "api", "planted_circuits_mlp": "planted", "planted_circuits_state": "planted",
         "fit_rhoset": "rhofit"}

__all__ = ["METHODS", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"rep_theory.explain.proofs.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
