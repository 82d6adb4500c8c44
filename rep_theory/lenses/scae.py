"""The ``scae`` lens: sparsely-connected SAEs across the MLP (upstream SAE -> pruned layer -> downstream SAE).

Idea: features of consecutive layers should be connected by few edges (Marks et al. 2024,
"Sparse Feature Circuits: Discovering and Editing Interpretable Causal Graphs in Language
Models", arXiv:2403.19647, which prunes SAE-feature graphs by attribution; Farnik et al. 2025,
"Jacobian Sparse Autoencoders: Sparsify Computations, Not Just Activations", arXiv:2502.18147,
which trains for sparse feature-to-feature Jacobians).  This module is this benchmark's own
reconstruction of "sparsely-connected SAEs", in four steps:

1. Upstream dictionary: TopK SAEs (:mod:`rep_theory.lenses.sae`) on the MLP's input site --
   ``embed_left`` and ``embed_right`` for ``OneLayerMLP`` (their latents are functions of ``a``
   and of ``b``), ``resid_mid`` for the ``Transformer``; activations ``A [n_pairs, k_up]``, kept fixed.
2. Downstream dictionary: the TopK SAE of the post-ReLU site (``hidden`` / ``mlp_post``),
   latents ``z_j = TopK(pre_j)``.
3. Pruning: the attribution of upstream ``i`` to downstream ``j`` is ``|w_ij| * rms(A_i)`` with
   ``w_ij`` the pair-averaged gradient ``E_p[d pre_j / d A_i]`` through the real layer
   (``(D_up W) diag(E[m]) W_enc^down`` with ``m = 1[pre-activation > 0]``, exact for the mean mask);
   each downstream latent keeps its top ``C`` upstream latents (default ``C = 8``).
4. Pruned forward pass ``z_j = TopK(relu(sum_{i in S_j} w_ij A_i + c_j))``, ``h_hat = z W_dec + b_dec``;
   ``w`` (on the kept edges), ``c``, ``W_dec``, ``b_dec`` finetuned full batch with Adam on
   ``||h_hat - h||^2 / E||h - mean h||^2 + CE(logits with h_hat spliced)``, 200 steps at lr 1e-3.

Features: the pruned-pass latents ``z`` at the post-ReLU site; edges ``E_ij = E[(w_ij A_i)^2
1[z_j > 0]]`` on the kept connections.  Defined on the post-ReLU site only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from rep_theory.lenses.base import Edges, LensResult
from rep_theory.lenses.sae import _activate, fit_site_sae
from rep_theory.lenses.sites import SiteContext
from rep_theory.training.models import OneLayerMLP

__all__ = ["SCAE_DEFAULTS", "scae_lens"]

SCAE_DEFAULTS = {"connections": 8, "steps": 200, "lr": 1e-3, "ce_weight": 1.0}


def _upstream(ctx: SiteContext, seed: int, progress: bool) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Upstream blocks ``(rows_features [m, k], index [n_pairs], decoder [k, d_site], W [d_site, H])``:
    ``A = rows_features[index]``, and the block's contribution to the MLP pre-activation is
    ``(A @ decoder) @ W`` (plus constants)."""
    sites = ("embed_left", "embed_right") if ctx.kind is OneLayerMLP else ("resid_mid",)
    out = []
    for site in sites:
        sd = fit_site_sae(ctx, site, "topk", seed=seed, progress=progress)
        rows, index = ctx.unique_rows(site)
        with torch.no_grad():
            feats = sd.encode(rows)                                       # [m, k] normalised units
        W, _, _ = ctx.relu_layer(site)
        out.append((feats, index, sd.W_dec * sd.out_scale, W.float()))
    return out


def scae_lens(ctx: SiteContext, site: str, *, seed: int = 0, progress: bool = False, **overrides) -> LensResult:
    """Sparsely-connected SAE latents of the post-ReLU ``site`` on all pairs, with their edges."""
    if site != ctx.downstream_site():
        raise ValueError(f"the scae lens lives on the MLP's output site {ctx.downstream_site()!r}, got {site!r}")
    hp = {**SCAE_DEFAULTS, **overrides}
    down = fit_site_sae(ctx, site, "topk", seed=seed, progress=progress)
    blocks = _upstream(ctx, seed, progress)
    _, pre_mlp, _ = ctx.relu_layer("embed" if ctx.kind is OneLayerMLP else "resid_mid")
    mbar = (pre_mlp > 0).float().mean(0)                                  # [H]
    enc = down.W_enc / down.in_scale                                      # [H, k_down] (raw units)
    h = ctx.activations(site).float()
    with torch.no_grad():
        pre_down = down.pre(h)                                            # [N, k_down]
    # step 3: mean-gradient connection weights and their attribution
    w0 = [(dec @ W) @ (mbar[:, None] * enc) for _, _, dec, W in blocks]   # [k_up_b, k_down] each
    rms = [feats.pow(2).mean(0).sqrt() for feats, _, _, _ in blocks]     # mean over rows = mean over pairs
    score = torch.cat([w.abs() * r[:, None] for w, r in zip(w0, rms)])   # [k_up, k_down]
    C = min(int(hp["connections"]), score.shape[0])
    keep = torch.zeros_like(score, dtype=torch.bool)
    keep.scatter_(0, score.topk(C, dim=0).indices, True)
    sizes = [w.shape[0] for w in w0]
    masks = list(keep.split(sizes))
    A_mean = sum((feats[index].mean(0) @ (w * mk)) for (feats, index, _, _), w, mk in zip(blocks, w0, masks))
    c0 = pre_down.mean(0) - A_mean                                        # matches the mean pre-activation
    # step 4: finetune the pruned pass
    ws = [torch.nn.Parameter((w * mk).clone()) for w, mk in zip(w0, masks)]
    c = torch.nn.Parameter(c0.clone())
    W_dec = torch.nn.Parameter(down.W_dec.clone())
    b_dec = torch.nn.Parameter(down.b_dec.clone())
    opt = torch.optim.Adam([*ws, c, W_dec, b_dec], lr=hp["lr"])
    hn = (h - down.out_mean) / down.out_scale                            # normalised target, E||hn||^2 = 1
    readout = ctx.readout(site).float()
    labels = ctx.labels
    other = None
    if ctx.kind is not OneLayerMLP:  # transformer logits also have the residual path, fixed here
        with torch.no_grad():
            other = ctx.spliced_logits(site, torch.zeros_like(h)).float()

    def forward():
        pre = c + sum(((feats @ (w * mk)))[index] for (feats, index, _, _), w, mk in zip(blocks, ws, masks))
        z = _activate(torch.relu(pre), "topk", down.k)
        return z, (z @ W_dec + b_dec)

    loss_value = math.nan
    for _ in tqdm(range(int(hp["steps"])), desc="scae", disable=not progress, leave=False):
        z, hn_hat = forward()
        mse = (hn_hat - hn).pow(2).sum(1).mean()
        logits = (hn_hat * down.out_scale + down.out_mean) @ readout
        if other is not None:
            logits = logits + other
        loss = mse + hp["ce_weight"] * F.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(mse.detach())
    with torch.no_grad():
        z, hn_hat = forward()
        recon = hn_hat * down.out_scale + down.out_mean
        active = (z > 0).float()
        weight = torch.cat([(feats[index].pow(2).T @ active) / active.shape[0] * (w * mk).pow(2)
                            for (feats, index, _, _), w, mk in zip(blocks, ws, masks)])
        used = weight.sum(1) > 0                  # upstream latents without a kept edge add nothing
        upstream = torch.cat([feats[index] for feats, index, _, _ in blocks], 1)[:, used]
        weight = weight[used]
    directions = W_dec.detach().double()
    directions = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return LensResult(lens="scae", site=site, features=z.double(), directions=directions, reconstruction=recon.double(),
                      sparse=True, edges=Edges(upstream=upstream.double(), downstream=z.double(), weight=weight.double()),
                      info={"n_features": z.shape[1], "connections": C, "fvu": loss_value})
