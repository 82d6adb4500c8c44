"""The ``pca`` lens: principal directions of the site's activations over all pairs.

Pearson 1901 / Hotelling 1933: the eigenvectors of the covariance ``X_c^T X_c / n_pairs``
(``X_c`` centred over pairs), by decreasing variance.  Directions whose variance is below
``rtol`` times the largest are dropped (they are numerically zero: e.g. an embedding of ``n``
elements spans at most ``n - 1`` centred directions).  The reconstruction adds the mean back, so
it is exact up to the dropped, zero-variance directions.

Why it can be right here: distinct irreps' pair functions are orthogonal over all pairs, so when
the site's irrep parts have distinct variances the covariance is block-diagonal by irrep and its
eigenvectors are irrep-pure; when two irreps share a variance PCA may mix them.
"""

from __future__ import annotations

import torch

from rep_theory.lenses.base import LensResult, orthonormal_reconstruction
from rep_theory.lenses.sites import SiteContext

__all__ = ["pca_basis", "pca_lens"]


def pca_basis(X: torch.Tensor, *, rtol: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean [d], components [d, k], variances [k])`` of ``X [m, d]`` (float64), variances decreasing."""
    X = X.to(torch.float64)
    mean = X.mean(0)
    cov = (X - mean).T @ (X - mean) / X.shape[0]
    evals, evecs = torch.linalg.eigh(cov)
    order = torch.argsort(evals, descending=True)
    evals, evecs = evals[order], evecs[:, order]
    keep = evals > rtol * evals[0].clamp_min(1e-300)
    return mean, evecs[:, keep], evals[keep]


def pca_lens(ctx: SiteContext, site: str, *, seed: int = 0) -> LensResult:
    """Features = centred coordinates along the principal directions ``[n_pairs, k]`` (``seed`` unused:
    PCA is deterministic up to each direction's sign, fixed here by making its largest entry positive)."""
    rows, _ = ctx.unique_rows(site)               # same mean and covariance as all pairs (equal counts)
    mean, comps, var = pca_basis(rows)
    sign = torch.sign(comps.gather(0, comps.abs().argmax(0, keepdim=True)))
    comps = comps * sign
    X = ctx.activations(site).to(torch.float64)
    feats, recon = orthonormal_reconstruction(X, comps, mean)
    return LensResult(lens="pca", site=site, features=feats, directions=comps.T, reconstruction=recon,
                      info={"n_features": comps.shape[1], "top_variance_share": float(var[0] / var.sum())})
