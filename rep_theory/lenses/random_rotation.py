"""The ``random`` lens: a Haar-random rotation of the site (calibration end "chance").

Features are the site's coordinates in a random orthonormal basis (QR of a Gaussian matrix with
the signs of ``R``'s diagonal fixed, which makes the rotation Haar-distributed: Mezzadri 2007,
"How to generate random matrices from the classical compact groups", Notices of the AMS).  The
basis is complete, so the reconstruction is exact and the loss recovered is 1: only the
interpretability scores (purity, alignment) tell it from a good lens.
"""

from __future__ import annotations

import torch

from rep_theory.lenses.base import LensResult, generator, orthonormal_reconstruction
from rep_theory.lenses.sites import SiteContext

__all__ = ["random_rotation", "random_lens"]


def random_rotation(d: int, seed: int = 0) -> torch.Tensor:
    """``[d, d]`` float64 Haar-random orthogonal matrix, drawn from a local generator seeded with ``seed``."""
    A = torch.randn(d, d, generator=generator(seed), dtype=torch.float64)
    Q, R = torch.linalg.qr(A)
    return Q * torch.sign(torch.diagonal(R))[None, :]


def random_lens(ctx: SiteContext, site: str, *, seed: int = 0) -> LensResult:
    """Features = ``X @ Q`` ``[n_pairs, d]`` for a random rotation ``Q [d, d]``; directions = columns of ``Q``."""
    X = ctx.activations(site).to(torch.float64)
    Q = random_rotation(X.shape[1], seed).to(X.device)
    feats, recon = orthonormal_reconstruction(X, Q)
    return LensResult(lens="random", site=site, features=feats, directions=Q.T, reconstruction=recon,
                      info={"n_features": X.shape[1]})
