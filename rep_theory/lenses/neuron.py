"""The ``neuron`` lens: the standard basis of the site (calibration end "the model's own axes").

Each feature is one coordinate of the site (one hidden neuron, one embedding coordinate, one
residual-stream dimension); the reconstruction is the site itself, so the loss recovered is 1.
In a GCR MLP the hidden neurons are known to cluster by irrep (Chughtai, Chan & Nanda 2023,
"A Toy Model of Universality: Reverse Engineering How Networks Learn Group Operations", ICML):
the neuron lens of the hidden layer is the ground-truth reading there, and a fair baseline
elsewhere (an embedding's coordinates are not privileged, since no nonlinearity acts on them).
"""

from __future__ import annotations

import torch

from rep_theory.lenses.base import LensResult
from rep_theory.lenses.sites import SiteContext

__all__ = ["neuron_lens"]


def neuron_lens(ctx: SiteContext, site: str, *, seed: int = 0) -> LensResult:
    """Features = coordinates of ``site``: ``features = X [n_pairs, d]``, ``directions = I [d, d]``."""
    X = ctx.activations(site).to(torch.float64)
    d = X.shape[1]
    return LensResult(lens="neuron", site=site, features=X, directions=torch.eye(d, dtype=torch.float64, device=X.device),
                      reconstruction=X, info={"n_features": d})
