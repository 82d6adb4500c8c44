"""Compact proofs of accuracy: verifiers that turn an explanation into a certified lower bound on a
one-layer MLP's accuracy over all ``|G|^2`` pairs, with their cost counted in FLOPs.

Wu, Jaburi, Drori and Gross, "Towards a Unified and Verified Understanding of Group-Operation
Networks", ICLR 2025 (arXiv 2410.07476); Gross et al., "Compact Proofs of Model Performance via
Mechanistic Interpretability", NeurIPS 2024 (arXiv 2406.11779).

Modules: :mod:`~.core` (result, FLOP ledger, deviation lemma), :mod:`~.rhofit` (fitting the rho-set
interpretation), :mod:`~.rhoset` (the rho-set proof and the hybrid), :mod:`~.baselines` (brute
force, GCR, cosets), :mod:`~.planted` (hand-built circuits), :mod:`~.api` (``verify``, ``verify_run``).
"""

from rep_theory.explain.proofs.api import METHODS, format_verify_table, verify, verify_run, verify_table
from rep_theory.explain.proofs.core import VerifyResult
from rep_theory.explain.proofs.planted import planted_circuits_mlp, planted_circuits_state
from rep_theory.explain.proofs.rhofit import fit_rhoset

__all__ = ["METHODS", "VerifyResult", "verify", "verify_run", "verify_table", "format_verify_table",
           "planted_circuits_mlp", "planted_circuits_state", "fit_rhoset"]
