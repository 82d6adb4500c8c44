"""Choosing the size of the Fourier proof's explanation, model by model, by running the proof.

The Fourier proof (:mod:`~rep_theory.explain.proofs.fourier_proof`) has two sizes to choose: the
cores per key irrep (``n_cores``) and the rank of the residual's quadratic bound (``rank``).  More of
either certifies more pairs and costs more: ``2 |G|^2 m`` FLOPs per pair and functional.  The paper's
50 S5 networks differ widely in what they need (rank 4 certifies 100% of some, rank 16 is needed for
others, and those with a 5-d key irrep need several cores), so one size for all either wastes FLOPs
or leaves models uncertified.

:func:`fit_fourier_search` fits the explanation once at the largest sizes, then runs the proof for
every candidate size (a truncation of that fit: :meth:`FourierExplanation.truncated`) and keeps the
cheapest, in counted FLOPs, whose bound is within ``tol`` of the best candidate's.  This is part of
*finding* the proof, like the rest of the fit (``fit_seconds``), not of the proof: the proof that is
timed and counted is the one run on the chosen explanation, which is checked as any other.  Any
choice keeps the proof sound; the search only decides which proof is run.

Gross et al. ("Compact Proofs of Model Performance via Mechanistic Interpretability", NeurIPS 2024)
frame the trade-off as a proof's length against its bound; this picks, per model, a point of that
frontier.  The criterion (most bound, then fewest FLOPs) is our choice.
"""

from __future__ import annotations

import argparse
from typing import Sequence

import torch

from rep_theory.algebra.groups import Group
from rep_theory.explain.proofs.core import Flops
from rep_theory.explain.proofs.fourier_proof import FourierExplanation, fit_fourier, fourier_proof

__all__ = ["SEARCH_CORES", "SEARCH_RANKS", "fit_fourier_search", "is_search", "parse_sizes", "size_argument",
           "add_size_arguments"]

SEARCH_CORES = (1, 2, 3, 6)
"""Cores per key irrep tried by default."""

SEARCH_RANKS = (4, 8, 12, 16, 24)
"""Ranks of the residual bound tried by default."""


def is_search(n_cores, rank) -> bool:
    """Whether fitting options ask for a search: either size given as a sequence of candidates or ``"auto"``."""
    return any(isinstance(v, (list, tuple)) or v == "auto" for v in (n_cores, rank))


def parse_sizes(text: str, name: str):
    """``n_cores`` or ``rank`` from text (the command line's): ``"16"`` -> 16, ``"4,8,16"`` -> a tuple
    of candidates (a search), ``"auto"`` -> :data:`SEARCH_CORES` or :data:`SEARCH_RANKS`."""
    if name not in ("n_cores", "rank"):
        raise ValueError(f"name must be 'n_cores' or 'rank', got {name!r}")
    if text.strip() == "auto":
        return SEARCH_CORES if name == "n_cores" else SEARCH_RANKS
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{name}: expected an int, a comma-separated list of ints or 'auto', got {text!r}") from None
    least = 1 if name == "n_cores" else 0
    if min(values) < least:
        raise ValueError(f"{name}: expected values >= {least}, got {text!r}")
    return values if "," in text else values[0]


def size_argument(name: str):
    """An argparse ``type`` for ``--n-cores`` or ``--rank``: :func:`parse_sizes`, its ``ValueError``
    turned into an argparse error that names the value."""
    def parse(text: str):
        try:
            return parse_sizes(text, name)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def add_size_arguments(parser: argparse.ArgumentParser, *, n_cores: int = 1, rank: int = 16) -> None:
    """``--n-cores`` and ``--rank`` (``dest`` ``n_cores`` and ``rank``) as the benchmarks take them:
    an int, a comma-separated list or ``auto`` (:func:`size_argument`)."""
    parser.add_argument("--n-cores", type=size_argument("n_cores"), default=n_cores, metavar="C[,C...]|auto",
                        help="cores per key irrep of the fourier methods; several or 'auto': chosen per model")
    parser.add_argument("--rank", type=size_argument("rank"), default=rank, metavar="R[,R...]|auto",
                        help="rank of the fourier methods' residual bound; several or 'auto': chosen per model")


def _candidates(values, name: str) -> list[int]:
    if values == "auto":
        values = SEARCH_CORES if name == "n_cores" else SEARCH_RANKS
    values = [values] if isinstance(values, int) else list(values)
    if not values or any(not isinstance(v, int) or isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be an int or a non-empty sequence of ints, got {values!r}")
    low = 1 if name == "n_cores" else 0
    if min(values) < low:
        raise ValueError(f"every {name} must be >= {low}, got {values!r}")
    return sorted(set(values))


def fit_fourier_search(G: Group, L: torch.Tensor, R: torch.Tensor, U: torch.Tensor, *,
                       n_cores: int | Sequence[int] = SEARCH_CORES, rank: int | Sequence[int] = SEARCH_RANKS,
                       tol: float = 0.005, fallback: bool = False, **fit_options) -> FourierExplanation:
    """The Fourier explanation of ``(L, R, U)`` (each ``[n, m]``) whose proof is the cheapest among
    the candidate sizes with a bound within ``tol`` of the best candidate's; with ``fallback``
    (``fourier_hybrid``, whose bound is the exact accuracy whatever the size), the one whose proof
    plus brute force on the pairs it leaves costs the fewest FLOPs.

    Parameters
    ----------
    n_cores, rank : int, sequence of ints or ``"auto"`` (:data:`SEARCH_CORES`, :data:`SEARCH_RANKS`)
        the candidate sizes (every combination is tried)
    tol : float in [0, 1]   how much bound (fraction of the ``|G|^2`` pairs) may be given up for FLOPs
    fallback : bool   rank by the cost of the proof finished by brute force (``2m + 2nm + n`` FLOPs
        per uncertified pair, :func:`~rep_theory.explain.proofs.core.brute_margins`) instead
    fit_options : passed to :func:`~rep_theory.explain.proofs.fourier_proof.fit_fourier`
        (``key_irreps``, ``key_power``, ``sample``, ``column_sample``, ``seed``)

    Returns the chosen explanation; its ``search`` field lists every candidate as
    ``[n_cores, rank, bound, flops]`` (proof FLOPs without forming ``L, R, U``) and the choice.
    """
    cores, ranks = _candidates(n_cores, "n_cores"), _candidates(rank, "rank")
    if not 0.0 <= tol <= 1.0:
        raise ValueError(f"tol must be in [0, 1], got {tol}")
    full = fit_fourier(G, L, R, U, n_cores=max(cores), rank=max(ranks), **fit_options)
    n, m = L.shape
    tried = []
    # sizes beyond what was fitted (more cores than d^2 allows, a rank above m) are the largest fitted
    for c in sorted({min(c, full.n_cores) for c in cores}):
        for r in sorted({min(r, full.rank) for r in ranks}):
            candidate = full.truncated(c, r)
            flops = Flops()
            out = fourier_proof(G, L, R, U, candidate, fallback=False, flops=flops)
            tried.append((candidate.n_cores, candidate.rank, int(out["certified"].sum()) / (n * n), flops.total))
    if fallback:
        per_pair = 2 * m + 2 * n * m + n
        c, r, bound, flops = min(tried, key=lambda t: (t[3] + round((1 - t[2]) * n * n) * per_pair, -t[2]))
    else:
        best = max(t[2] for t in tried)
        c, r, bound, flops = min((t for t in tried if t[2] >= best - tol), key=lambda t: (t[3], -t[2]))
    chosen = full.truncated(c, r)
    chosen.search = {"objective": "proof and brute force on the rest" if fallback else f"bound within {tol}",
                     "candidates": [list(t) for t in tried], "chosen": [c, r]}
    return chosen
