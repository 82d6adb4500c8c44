"""Per-neuron irrep content: how much of each hidden neuron's variance lives in each irrep."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from rep_theory.algebra.groups import Group
from rep_theory.analysis.metrics import IrrepBases, project

__all__ = ["neuron_irrep_fractions"]


def neuron_irrep_fractions(model, group: Group | str, *, irreps: Sequence[str] | None = None):
    """Fraction of each hidden neuron's variance in each irrep: ``([hidden, k] float64, names)``.

    ``H`` ``[pair, hidden]`` is the model's hidden layer on all pairs, centred over pairs.  For
    irrep ``rho`` (``Q^a``, ``Q^b``, ``Q^ab`` as in :mod:`rep_theory.analysis.metrics`) neuron ``j`` gets
    ``(|Q^a^T h_j|^2 + |Q^b^T h_j|^2 + |Q^ab^T h_j|^2) / |h_j|^2``: the per-neuron version of the
    total hidden FVE.  ``irreps`` defaults to every non-trivial irrep.  Neurons of a network that
    computes GCR each live (almost) entirely in one key irrep.
    """
    bases = IrrepBases.for_group(group, model.device)
    names = [n for n in bases.names if n != "trivial"] if irreps is None else list(irreps)
    unknown = sorted(set(names) - set(bases.names))
    if unknown:
        raise ValueError(f"group {group} has no irreps {unknown}; its irreps are {list(bases.names)}")
    n = bases.n
    hidden = model.hidden_all_pairs()                               # [pair, hidden], model dtype
    width = hidden.shape[1]
    sums = [torch.zeros((n, width), dtype=torch.float64, device=hidden.device) for _ in range(3)]
    total_sum = torch.zeros(width, dtype=torch.float64, device=hidden.device)
    total_sq = torch.zeros(width, dtype=torch.float64, device=hidden.device)
    step = max(1, 2**22 // max(width, 1))                           # rows per float64 chunk
    for start in range(0, n * n, step):
        block = hidden[start:start + step].to(torch.float64)
        rows = slice(start, start + step)
        for acc, index in zip(sums, (bases.left, bases.right, bases.product)):
            acc.index_add_(0, index[rows], block)
        total_sum += block.sum(dim=0)
        total_sq += block.pow(2).sum(dim=0)
    mean = total_sum / (n * n)
    # Centring over pairs: every element is the left, right and product of exactly n pairs.
    sums = [(acc - n * mean) / math.sqrt(n) for acc in sums]        # each [n, hidden]
    total = (total_sq - n * n * mean.pow(2)).clamp_min(1e-300)      # [hidden]
    fractions = torch.stack([sum(project(s, bases.bases[name]).pow(2).sum(dim=0) for s in sums)
                             for name in names], dim=1) / total[:, None]
    return fractions.cpu(), names
