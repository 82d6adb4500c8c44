"""The ``lib`` lens: the Local Interaction Basis (a reimplementation of its core).

Source: Bushnaq, Heimersheim, Goldowsky-Dill, Braun, Mendel, Hänni, Griffin, Stöhler, Wache and
Hobbhahn 2024, "The Local Interaction Basis: Identifying Computationally-Relevant and Sparsely
Interacting Features in Neural Networks" (arXiv:2405.10928), and its ``rib`` library (not
installable here).  What this module computes, per layer, from the output backwards:

* activations ``f [N, d]`` of the layer on all ``N = n^2`` pairs (uniform weights);
  Gram ``G = E[f f^T] = U D U^T`` (uncentred, as LIB: the mean is a direction like any other);
  directions with ``D < rtol_gram * max D`` are dropped (they carry no data);
* whitening ``R = U D^-1/2 [d, d']``: whitened coordinates ``z = R^T f`` have ``E[z z^T] = I``;
* ``M = E[J_z^T C C^T J_z] = V Lambda V^T`` where ``J_z`` is the Jacobian, w.r.t. ``z``, of the next
  layer's activations and ``C`` that layer's LIB basis, so ``C^T J`` is the Jacobian of the next
  layer's LIB functions.  In ``f`` coordinates ``M = D^1/2 U^T M_f U D^1/2`` with
  ``M_f = E[J_f^T C C^T J_f]``;
* basis ``C = R V Lambda^1/2 [d, k]``, functions ``fhat = f @ C`` (so ``E[fhat fhat^T] = Lambda``);
  eigenvalues ``Lambda < rtol_lambda * max Lambda`` are truncated (directions the next layer
  does not read);
* interaction edges ``E_ij = E[(d fhat^next_i / d fhat_j * fhat_j)^2]`` (their attribution
  formula's squared form).

Choices made here, where the paper or this setting leaves room (listed in the README's "Interpretability lenses against an exact ground truth"):

* Output layer: the logits with ``C = P = I - 11^T/n`` (the centring projector; softmax ignores a
  common shift, so LIB should not spend a direction on it).
* Layer chain.  MLP: ``embed`` (either half, or the stack) -> ``hidden`` -> logits; ``hidden -> logits`` is
  linear (``J = W_U^T``) and ``embed -> hidden`` is ``relu(x W + rest)`` with ``J = diag(m) W^T``,
  ``m = 1[pre > 0]``; for an embedding half the other half is held fixed.  Because ``J`` is a masked
  copy of ``W^T``, ``M_f = W ((C C^T) * E[m m^T]) W^T`` exactly (Hadamard product), with no per-pair
  Jacobians.  Transformer: ``mlp_post -> logits`` is linear (``J = (W_out W_U)^T``); for
  ``resid_mid`` the next layer is the logits through both the residual path and the MLP,
  ``J = W_U^T + (W_out W_U)^T diag(m) W_in^T``, again in closed form.  The transformer's edges
  are ``resid_mid -> mlp_post`` (Jacobian through ``W_in``); the MLP's are ``embed -> hidden``.
* Reconstruction: ``fhat`` decoded by ``Dec = Lambda^-1/2 V^T D^1/2 U^T [k, d]`` (the whitened-space
  projection on the kept directions, mapped back); without truncation it is ``f`` exactly.
  Feature directions are the rows of ``Dec``.
* Edges are averaged over at most ``max_edge_pairs`` pairs drawn with the lens seed (cost ``k_up
  k_down d`` per pair).
"""

from __future__ import annotations

import dataclasses

import torch

from rep_theory.lenses.base import Edges, LensResult, generator
from rep_theory.lenses.sites import SiteContext
from rep_theory.training.models import OneLayerMLP

__all__ = ["LIBBasis", "lib_basis", "lib_edges", "lib_lens"]

RTOL_GRAM = 1e-10
RTOL_LAMBDA = 1e-6
MAX_EDGE_PAIRS = 4096


@dataclasses.dataclass
class LIBBasis:
    """One layer's LIB.  ``C [d, k]`` (functions ``fhat = f @ C``), ``dec [k, d]`` (``f ~ fhat @ dec``),
    ``lambdas [k]`` (decreasing, ``E[fhat_i^2]``), ``fhat [N, k]`` on the activations it was built from."""

    C: torch.Tensor
    dec: torch.Tensor
    lambdas: torch.Tensor
    fhat: torch.Tensor


def lib_basis(f: torch.Tensor, M_f: torch.Tensor, *, rtol_gram: float = RTOL_GRAM,
              rtol_lambda: float = RTOL_LAMBDA) -> LIBBasis:
    """LIB of a layer from its activations ``f [N, d]`` and ``M_f = E[J_f^T C C^T J_f]`` ``[d, d]`` (float64).

    Example (linear, whitened input): with ``E[f f^T] = I`` and a linear next layer ``J = W^T``
    read in the identity basis, ``M_f = W W^T``, so ``C = V S`` for the SVD ``W = V S Y^T``: LIB
    functions are the input's coordinates along ``W``'s left singular vectors, scaled by ``s``.
    """
    f = f.to(torch.float64)
    M_f = M_f.to(torch.float64)
    gram = f.T @ f / f.shape[0]
    D, U = torch.linalg.eigh(gram)
    keep = D > rtol_gram * D.max().clamp_min(1e-300)
    D, U = D[keep], U[:, keep]
    half = D.sqrt()
    R = U / half                                                   # [d, d'] = U D^-1/2
    M = (U * half).T @ M_f @ (U * half)                            # [d', d'] = D^1/2 U^T M_f U D^1/2
    M = (M + M.T) / 2
    lam, V = torch.linalg.eigh(M)
    order = torch.argsort(lam, descending=True)
    lam, V = lam[order], V[:, order]
    keep = lam > rtol_lambda * lam[0].clamp_min(1e-300) if lam.numel() else lam > 0
    lam, V = lam[keep], V[:, keep]
    # fix each function's sign (eigenvectors have none): largest |entry| of V positive
    V = V * torch.sign(V.gather(0, V.abs().argmax(0, keepdim=True)))
    C = R @ V * lam.sqrt()                                         # [d, k]
    dec = (V / lam.sqrt()).T @ (U * half).T                        # [k, d] = Lambda^-1/2 V^T D^1/2 U^T
    return LIBBasis(C=C, dec=dec, lambdas=lam, fhat=f @ C)


def lib_edges(fhat_up: torch.Tensor, dec_up: torch.Tensor, W: torch.Tensor, mask: torch.Tensor,
              C_down: torch.Tensor, *, chunk: int = 256) -> torch.Tensor:
    """``[k_up, k_down]``: ``E_ij = mean_p (d fhat^down_j / d fhat^up_i * fhat^up_i)^2`` for a ReLU layer.

    ``fhat_up [N, k_up]`` upstream LIB functions, ``dec_up [k_up, d_up]`` (``f_up = fhat_up @ dec_up``),
    ``W [d_up, H]`` (``down = relu(f_up @ W + rest)``), ``mask [N, H]`` (``1[pre > 0]``), ``C_down [H, k_down]``.
    Per pair the Jacobian is ``C_down^T diag(m_p) W^T dec_up^T`` ``[k_down, k_up]`` (float32 products,
    float64 sums).
    """
    Q = (W.T.to(torch.float64) @ dec_up.T.to(torch.float64)).float()     # [H, k_up]
    Ct = C_down.T.float()                                                 # [k_down, H]
    out = torch.zeros((C_down.shape[1], Q.shape[1]), dtype=torch.float64, device=Q.device)
    for s in range(0, fhat_up.shape[0], chunk):
        m = mask[s:s + chunk].float()                                     # [p, H]
        J = torch.matmul(Ct[None] * m[:, None, :], Q)                     # [p, k_down, k_up]
        out += (J * fhat_up[s:s + chunk, None, :].float()).pow(2).sum(0).double()
    return (out / fhat_up.shape[0]).T


def _centring(n: int, device) -> torch.Tensor:
    return torch.eye(n, dtype=torch.float64, device=device) - 1.0 / n


def _post_relu_lib(ctx: SiteContext, site: str) -> LIBBasis:
    """LIB of ``hidden`` / ``mlp_post``: next layer the logits, linear: ``M_f = Ro P Ro^T``."""
    key = ("lib", site)
    memo = ctx.__dict__.setdefault("_memo", {})
    if key not in memo:
        Ro = ctx.readout(site).to(torch.float64)                          # [d, n]
        M_f = Ro @ _centring(ctx.n, Ro.device) @ Ro.T
        memo[key] = lib_basis(ctx.activations(site), M_f)
    return memo[key]


def _pre_relu_lib(ctx: SiteContext, site: str) -> tuple[LIBBasis, torch.Tensor, torch.Tensor, str]:
    """LIB of a site feeding the ReLU layer; returns ``(basis, W, mask, downstream site)``."""
    key = ("lib", site)
    memo = ctx.__dict__.setdefault("_memo", {})
    W, pre, down = ctx.relu_layer(site)
    mask = (pre > 0).to(torch.float64)                                    # [N, H]
    if key not in memo:
        W64 = W.to(torch.float64)
        mm = mask.T @ mask / mask.shape[0]                                # [H, H] = E[m m^T]
        if ctx.kind is OneLayerMLP:
            C_h = _post_relu_lib(ctx, down).C
            M_f = W64 @ ((C_h @ C_h.T) * mm) @ W64.T
        else:  # resid_mid -> logits through the residual path and the MLP
            m = ctx.model
            P = _centring(ctx.n, W64.device)
            A = m.unembed.W_U.detach().to(torch.float64).T                 # [n, D]
            B = ctx.readout(down).to(torch.float64).T                     # [n, H]
            Cm = W64.T                                                    # [H, D]
            cross = A.T @ P @ B @ (mask.mean(0)[:, None] * Cm)           # [D, D]
            M_f = A.T @ P @ A + cross + cross.T + Cm.T @ ((B.T @ P @ B) * mm) @ Cm
        memo[key] = lib_basis(ctx.activations(site), M_f)
    return memo[key], W, mask, down


def lib_lens(ctx: SiteContext, site: str, *, seed: int = 0, max_edge_pairs: int = MAX_EDGE_PAIRS) -> LensResult:
    """LIB features of ``site`` (``fhat [N, k]``), decoder directions, reconstruction and edges.

    Edges: for a site feeding the ReLU layer, from its LIB functions to the downstream site's;
    for the post-ReLU site, from the upstream site's (``embed`` / ``resid_mid``) to its own.
    """
    if site in ("hidden", "mlp_post"):
        basis = _post_relu_lib(ctx, site)
        up_site = "embed" if ctx.kind is OneLayerMLP else "resid_mid"
        up, W, mask, _ = _pre_relu_lib(ctx, up_site)
        down = basis
    else:
        basis, W, mask, down_site = _pre_relu_lib(ctx, site)
        up, down = basis, _post_relu_lib(ctx, down_site)
    N = mask.shape[0]
    idx = torch.arange(N, device=mask.device)
    if N > max_edge_pairs:
        idx = torch.randperm(N, generator=generator(seed))[:max_edge_pairs].sort().values.to(mask.device)
    weight = lib_edges(up.fhat[idx], up.dec, W, mask[idx], down.C)
    dec = basis.dec
    directions = dec / dec.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return LensResult(lens="lib", site=site, features=basis.fhat, directions=directions,
                      reconstruction=basis.fhat @ dec,
                      edges=Edges(upstream=up.fhat, downstream=down.fhat, weight=weight),
                      info={"n_features": basis.C.shape[1], "lambda_max": float(basis.lambdas[0]),
                            "edge_pairs": int(len(idx))})
