"""Planted rho-set circuits: OneLayerMLPs built by hand in Wu et al.'s idealised form.

``f(z | x, y) = -sum_{b, b' in B} b^T rho(z) b' ReLU[b^T rho(x) a - a^T rho(y) b']`` realised with
one hidden neuron per pair ``(b, b')`` (``embed = hidden = |B|^2``): ``W_x[x, (b,b')] = b^T rho(x) a``,
``W_y[y, (b,b')] = -a^T rho(y) b'``, ``W = [I; I]``, ``W_U[(b,b'), z] = -scale * b^T rho(z) b'``
(Wu, Jaburi, Drori and Gross, ICLR 2025, arXiv 2410.07476, section 4).  Each circuit is
:func:`rep_theory.explain.planted.circuit_functions` (one construction serves both): here ``a`` is a
random unit vector and the scale is given, there ``a`` is chosen for the largest margin and the scale
sets the margin.
"""

from __future__ import annotations

import torch

from rep_theory.algebra.groups import Group, get_group
from rep_theory.explain.planted import circuit_functions
from rep_theory.explain.proofs.rhofit import candidate_rho_sets
from rep_theory.training.models import make_model

__all__ = ["planted_circuits_state", "planted_circuits_mlp"]


def planted_circuits_state(G: Group | str, irreps: dict, *, seed: int = 0, rho_set: int = 0) -> dict[str, torch.Tensor]:
    """State dict (float32) of the sum of the circuits ``{irrep name: scale}``; ``a`` is a random unit
    vector (``seed``), ``B`` the ``rho_set``-th candidate of
    :func:`~rep_theory.explain.proofs.rhofit.candidate_rho_sets`."""
    G = get_group(G)
    if not isinstance(irreps, dict) or not irreps:
        raise TypeError(f"irreps must be a non-empty dict {{irrep name: scale}}, got {irreps!r}")
    gen = torch.Generator().manual_seed(seed)
    lefts, rights, reads = [], [], []
    for name, scale in irreps.items():
        rho = G.irrep(name)
        candidates = candidate_rho_sets(G, rho)
        if not candidates:
            raise ValueError(f"{G.name}:{name} has no rho-set candidate (no one-dimensional fixed space)")
        B = candidates[rho_set % len(candidates)]
        a = torch.randn(rho.dim, generator=gen, dtype=torch.float64)
        left, right, unembed = circuit_functions(G, rho, B.to(torch.float64), a / a.norm())
        lefts.append(left)
        rights.append(right)
        reads.append(scale * unembed.T)
    left, right, W_U = torch.cat(lefts, 1), torch.cat(rights, 1), torch.cat(reads, 0)
    eye = torch.eye(left.shape[1], dtype=torch.float64)
    return {"W_x": left.float(), "W_y": right.float(), "W": torch.cat([eye, eye]).float(), "W_U": W_U.float()}


def planted_circuits_mlp(G: Group | str, irreps: dict | str, **kwargs):
    """``(model, G)``: a OneLayerMLP holding :func:`planted_circuits_state` (``irreps`` a name means scale 1)."""
    G = get_group(G)
    if not isinstance(irreps, (str, dict)) or not irreps:
        raise TypeError(f"irreps must be an irrep name or a non-empty dict {{irrep name: scale}}, got {irreps!r}")
    irreps = {irreps: 1.0} if isinstance(irreps, str) else irreps
    state = planted_circuits_state(G, irreps, **kwargs)
    width = state["W_U"].shape[0]
    model = make_model("OneLayerMLP", G.order, embed_dim=width, hidden_dim=width)
    model.load_state_dict(state)
    return model, G
