"""What every lens returns: features on all pairs, their directions, a reconstruction, edges.

A lens looks at one site ``X [n_pairs, d]`` of one model (see :mod:`rep_theory.lenses.sites`)
and returns a :class:`LensResult`; :mod:`rep_theory.lenses.scores` turns it into scores against
the group's ground truth.  Lenses never see the group.
"""

from __future__ import annotations

import dataclasses

import torch

__all__ = ["Edges", "LensResult", "generator", "orthonormal_reconstruction"]


@dataclasses.dataclass
class Edges:
    """Interactions between upstream and downstream features (both as pair functions).

    Attributes
    ----------
    upstream : ``[n_pairs, k_up]``      upstream features' activations on all pairs
    downstream : ``[n_pairs, k_down]``  downstream features' activations on all pairs
    weight : ``[k_up, k_down]``         non-negative interaction mass of each edge
    """

    upstream: torch.Tensor
    downstream: torch.Tensor
    weight: torch.Tensor


@dataclasses.dataclass
class LensResult:
    """One lens on one site.

    Attributes
    ----------
    lens, site : names
    features : ``[n_pairs, k]``        each feature's activation on all pairs (what purity scores)
    directions : ``[k, d]``            each feature's direction in the site's space (decoder rows)
    reconstruction : ``[n_pairs, d]``  the site rebuilt from the features (spliced in for the loss)
                                      or ``None`` when the lens has none
    sparse : bool                      report L0 (mean number of active features per pair)
    edges : :class:`Edges` or ``None``
    info : dict                        lens details for the report (hyperparameters, training loss)
    """

    lens: str
    site: str
    features: torch.Tensor
    directions: torch.Tensor
    reconstruction: torch.Tensor | None
    sparse: bool = False
    edges: Edges | None = None
    info: dict = dataclasses.field(default_factory=dict)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A local generator seeded with ``seed`` (the global RNG is untouched: lenses are deterministic)."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def orthonormal_reconstruction(X: torch.Tensor, basis: torch.Tensor, mean: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features [n_pairs, k], reconstruction [n_pairs, d])`` of ``X`` in an orthonormal ``basis [d, k]``.

    ``features = (X - mean) @ basis``, ``reconstruction = mean + features @ basis.T`` (``mean`` [d]
    or ``None`` for 0); with a complete basis the reconstruction is ``X`` itself.
    """
    Xc = X if mean is None else X - mean
    feats = Xc @ basis
    recon = feats @ basis.T
    return feats, recon if mean is None else recon + mean
