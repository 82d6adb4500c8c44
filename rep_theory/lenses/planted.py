"""Planted models for calibrating the lenses: hand-set weights whose ground truth is known by construction.

:func:`planted_irrep_mlp` builds a ``OneLayerMLP`` whose every hidden neuron lives in one chosen
irrep: neuron ``k`` of irrep ``rho`` has pre-activation

    B + s_rho * (u_k(a) + v_k(b)),   u_k(a) = <alpha_k, rho(a)>_F,   v_k(b) = <beta_k, rho(b)>_F,

with random unit coefficient matrices ``alpha_k, beta_k`` and an offset ``B`` larger than every
``|s_rho (u_k + v_k)|``, so the ReLU never clips and the neuron's pair function is exactly in
``rho``'s x and y spaces (purity 1 for the neuron lens).  Different irreps' pair functions are
orthogonal over all pairs, so the hidden covariance is block-diagonal by irrep: PCA's eigenvectors
are irrep-pure whenever no eigenvalue is shared across blocks (generic), while a random rotation
mixes the irreps.  (Unlike the GCR construction of ``tests/test_planted.py``, whose gated neurons
``relu(gate_h(a) + rho(h b)_ij)`` are correct on the task but spread over all irreps through the
indicator gate, these neurons are pure but do not solve the task: they calibrate the interpretability
scores, not the loss.)  The embedding is the identity stack ``W = [I; I]`` (left embedding holds
``B + s u``, right ``s v``), the unembedding a seeded Gaussian.

:func:`planted_sparse_dictionary` draws activations that are sparse non-negative combinations of
known unit atoms, for checking that an SAE recovers its dictionary.
"""

from __future__ import annotations

from typing import Mapping

import torch

from rep_theory.algebra.groups import Group
from rep_theory.lenses.base import generator
from rep_theory.training.models import OneLayerMLP

__all__ = ["planted_irrep_mlp", "planted_sparse_dictionary"]


def planted_irrep_mlp(G: Group, scales: Mapping[str, float], neurons_per_irrep: int = 8, *,
                      seed: int = 0) -> tuple[OneLayerMLP, list[str]]:
    """``(model, irrep_of_neuron)``: a ``OneLayerMLP`` (``embed = hidden = len(scales) * neurons_per_irrep``)
    whose hidden neuron ``k`` lives in irrep ``irrep_of_neuron[k]`` (see the module docstring)."""
    g = generator(seed)
    n = G.order
    lefts, rights, labels = [], [], []
    for name, scale in scales.items():
        R = G.irrep(name).matrices.to(torch.float64).reshape(n, -1)            # [n, d^2]
        for _ in range(neurons_per_irrep):
            alpha = torch.randn(R.shape[1], generator=g, dtype=torch.float64)
            beta = torch.randn(R.shape[1], generator=g, dtype=torch.float64)
            lefts.append(scale * R @ (alpha / alpha.norm()))
            rights.append(scale * R @ (beta / beta.norm()))
            labels.append(name)
    left, right = torch.stack(lefts, 1), torch.stack(rights, 1)               # [n, width]
    offset = 1.0 + float((left.abs().max(0).values + right.abs().max(0).values).max())
    width = left.shape[1]
    model = OneLayerMLP(n, width, width, seed=seed)
    eye = torch.eye(width, dtype=torch.float64)
    with torch.no_grad():
        model.W_x.copy_(left + offset)
        model.W_y.copy_(right)
        model.W.copy_(torch.cat([eye, eye]))
        model.W_U.copy_(torch.randn(width, n, generator=g) / width ** 0.5)
    return model, labels


def planted_sparse_dictionary(n_samples: int, dim: int, n_atoms: int, active: int, *,
                              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X [n_samples, dim], atoms [n_atoms, dim])``: each row of ``X`` is a combination of ``active``
    distinct random unit atoms with coefficients uniform in ``[1, 2]`` (float32)."""
    g = generator(seed)
    atoms = torch.randn(n_atoms, dim, generator=g)
    atoms = atoms / atoms.norm(dim=1, keepdim=True)
    idx = torch.rand(n_samples, n_atoms, generator=g).argsort(1)[:, :active]
    coef = torch.zeros(n_samples, n_atoms).scatter(1, idx, 1.0 + torch.rand(n_samples, active, generator=g))
    return coef @ atoms, atoms
