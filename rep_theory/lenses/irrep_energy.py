"""Ground truth for the lens benchmark: how much of a feature's pair function lives in each irrep.

A *feature* of a lens is a function of the input pair: its activation on all ``n^2`` pairs,
``f [pair]`` (row-major ``p = a*n + b``, as everywhere in the package).  Its irrep energies use the
projection machinery of :mod:`rep_theory.analysis.metrics` (:class:`IrrepBases`): for a
non-trivial irrep ``rho`` with orthonormal coefficient basis ``Q_rho [n, r]`` the three pair
subspaces ``Q^a`` (functions ``(a, b) -> rho(a)_ij``), ``Q^b`` (``rho(b)_ij``) and ``Q^ab``
(``rho(ab)_ij``) are orthonormal in ``R^(n^2)`` and mutually orthogonal (also across irreps, since
each is orthogonal to the constants).  With ``f_c = f - mean(f)``:

    E_rho(f) = ||(Q^a)^T f_c||^2 + ||(Q^b)^T f_c||^2 + ||(Q^ab)^T f_c||^2
             = (||Q_rho^T f_left||^2 + ||Q_rho^T f_right||^2 + ||Q_rho^T f_prod||^2) / n,

where ``f_left [n]`` sums ``f_c`` over ``b``, ``f_right`` over ``a`` and ``f_prod`` over the pairs
with each product (:func:`rep_theory.analysis.metrics.aggregate_pairs`).  The trivial irrep's three
spaces are the constants, which centring removes, so only non-trivial irreps carry energy.

Two normalisations are reported:

* ``explained(f) = sum_rho E_rho(f) / ||f_c||^2``: the share of the centred energy that lies in the
  union of the x, y and xy spaces (a ReLU of ``u(a) + v(b)`` also has energy outside them: its
  products and powers of ``u`` and ``v`` are general functions of ``(a, b)``);
* ``share_rho(f) = E_rho(f) / sum_sigma E_sigma(f)``: the irrep *mix* of the part of ``f`` that lives
  in any irrep's x/y/xy space.  Purity uses this share (see :mod:`rep_theory.lenses.scores`).

A feature with no energy (constant on all pairs) gets all shares 0 and no dominant irrep (``-1``).
Everything here is float64 whatever the input dtype.
"""

from __future__ import annotations

import dataclasses

import torch

from rep_theory.algebra.groups import Group
from rep_theory.analysis.metrics import IrrepBases, aggregate_pairs

__all__ = ["IrrepEnergy", "irrep_energy", "site_irrep_subspaces"]

_DEAD_TOL = 1e-20  # centred energy (per pair) below which a feature counts as constant


@dataclasses.dataclass(frozen=True)
class IrrepEnergy:
    """Per-feature irrep energies of ``k`` pair functions.

    Attributes
    ----------
    names : tuple of str          the non-trivial irreps, in the group's order
    energy : ``[k, n_irreps]``    ``E_rho`` (float64), summed over the x, y and xy spaces
    parts : ``[3, k, n_irreps]``  the x, y and xy terms of ``energy``
    total : ``[k]``               ``||f_c||^2``
    """

    names: tuple
    energy: torch.Tensor
    parts: torch.Tensor
    total: torch.Tensor

    @property
    def attributed(self) -> torch.Tensor:
        """``[k]``: ``sum_rho E_rho``."""
        return self.energy.sum(1)

    @property
    def explained(self) -> torch.Tensor:
        """``[k]``: ``sum_rho E_rho / ||f_c||^2`` (0 for a constant feature)."""
        return torch.where(self.total > 0, self.attributed / self.total.clamp_min(1e-300), torch.zeros_like(self.total))

    @property
    def share(self) -> torch.Tensor:
        """``[k, n_irreps]``: ``E_rho / sum_sigma E_sigma`` (rows of 0 for features without irrep energy)."""
        att = self.attributed[:, None]
        return torch.where(att > 0, self.energy / att.clamp_min(1e-300), torch.zeros_like(self.energy))

    @property
    def dominant(self) -> torch.Tensor:
        """``[k]`` LongTensor: index into ``names`` of the largest share, ``-1`` for a feature without energy."""
        idx = self.energy.argmax(1)
        return torch.where(self.attributed > 0, idx, torch.full_like(idx, -1))

    @property
    def dominant_share(self) -> torch.Tensor:
        """``[k]``: the largest share (0 for a feature without energy)."""
        return self.share.max(1).values if self.share.shape[1] else torch.zeros(self.share.shape[0], dtype=torch.float64)


def irrep_energy(features: torch.Tensor, G: Group, *, bases: IrrepBases | None = None) -> IrrepEnergy:
    """Irrep energies of the pair functions ``features [n_pairs, k]`` (see the module docstring).

    ``features`` holds each feature's activation on all ``n^2`` pairs, row-major; any dtype and
    device (computed in float64 on the device of ``bases``, default CPU).
    """
    n = G.order
    if features.ndim != 2 or features.shape[0] != n * n:
        raise ValueError(f"features must be [n_pairs, k] with n_pairs = n^2 = {n * n} for {G.name}, "
                         f"got shape {tuple(features.shape)}")
    bases = bases if bases is not None else IrrepBases.for_group(G)
    F = features.detach().to(bases.device, torch.float64)
    F = F - F.mean(0, keepdim=True)
    total = F.pow(2).sum(0)
    # features that are constant up to rounding carry no signal: zero them so they get no irrep
    dead = total <= _DEAD_TOL * n * n * (1 + features.detach().to(torch.float64).abs().max().item() ** 2)
    F[:, dead.to(F.device)] = 0.0
    total = torch.where(dead, torch.zeros_like(total), total)
    aggs = (aggregate_pairs(F, bases.left, n), aggregate_pairs(F, bases.right, n), bases.sum_by_product(F))  # [n, k] each
    names = tuple(name for name in bases.names if name != "trivial")
    parts = torch.zeros((3, F.shape[1], len(names)), dtype=torch.float64, device=F.device)
    for j, name in enumerate(names):
        Q = bases.bases[name]                                           # [n, r]
        for i, agg in enumerate(aggs):
            parts[i, :, j] = (Q.T @ agg).pow(2).sum(0) / n
    return IrrepEnergy(names=names, energy=parts.sum(0).cpu(), parts=parts.cpu(), total=total.cpu())


def site_irrep_subspaces(activations: torch.Tensor, G: Group, *, min_share: float = 0.5,
                         bases: IrrepBases | None = None) -> dict[str, torch.Tensor]:
    """The ground-truth irrep subspaces of a site: ``{irrep: [d, m] orthonormal basis}``.

    ``activations [n_pairs, d]`` (all pairs).  For a direction ``w`` of the site the feature
    ``X w`` has irrep energy ``w^T C_rho w`` with ``C_rho = sum over the x, y, xy spaces of
    X_c^T P X_c`` ``[d, d]`` and total energy ``w^T C w``, ``C = X_c^T X_c``.  The subspace of
    ``rho`` is spanned by the generalised eigenvectors of ``C_rho w = lambda C w`` with
    ``lambda >= min_share`` (orthonormalised in the Euclidean metric).  With ``min_share >= 0.5`` two
    irreps' subspaces meet only in 0: a direction in both would have more than all of its energy
    in irreps.  Directions outside the span of the data are left out (``C`` restricted to its range).
    """
    n = G.order
    bases = bases if bases is not None else IrrepBases.for_group(G)
    X = activations.detach().to(bases.device, torch.float64)
    X = X - X.mean(0, keepdim=True)
    C = X.T @ X                                                           # [d, d]
    evals, evecs = torch.linalg.eigh(C)
    keep = evals > 1e-10 * evals.max().clamp_min(1e-300)
    if not bool(keep.any()):
        return {}
    # whitened coordinates of the data's range: w = W z, W = U D^-1/2, so that w^T C w = |z|^2
    W = evecs[:, keep] / evals[keep].sqrt()                               # [d, m]
    Z = X @ W                                                             # [pair, m], orthonormal columns
    aggs = (aggregate_pairs(Z, bases.left, n), aggregate_pairs(Z, bases.right, n), bases.sum_by_product(Z))
    out = {}
    for name in bases.names:
        if name == "trivial":
            continue
        Q = bases.bases[name]
        Crho = sum((Q.T @ agg).T @ (Q.T @ agg) for agg in aggs) / n        # [m, m] = W^T C_rho W
        lam, vec = torch.linalg.eigh(Crho)
        sel = lam >= min_share
        if bool(sel.any()):
            directions = W @ vec[:, sel]                                  # [d, m_rho], C-orthonormal
            q, _ = torch.linalg.qr(directions)
            out[name] = q.cpu()
    return out
