"""The ``transcoder`` lens: a sparse layer trained to replace the MLP, input -> post-ReLU output.

Source: Dunefsky, Chlenski & Nanda 2024, "Transcoders Find Interpretable LLM Feature Circuits"
(arXiv:2406.11474): a wide sparse layer ``z = act(x_in W_enc + b_enc)``, ``y_hat = z W_dec + b_dec``
trained so that ``y_hat`` matches the MLP's output ``y`` (here the post-ReLU layer itself, the
site the reconstruction is spliced into).  Input: the MLP's pre-activation ``embed_stack @ W``
(= ``Lx[a] + Ly[b]``, the embedding sum) for ``OneLayerMLP``; ``resid_mid`` at the last position
for the ``Transformer``.  Trained by :func:`rep_theory.lenses.sae.train_sparse_dict` with the
TopK activation (the paper used ReLU + L1; TopK fixes L0 without tuning a coefficient per model),
same defaults as the SAEs.  Defined only on the post-ReLU site (``hidden`` / ``mlp_post``).

Edges (a choice of this benchmark; the paper's input-invariant edges need an upstream
dictionary): the transcoder's input is split over the pair by a two-way ANOVA,
``x(a, b) = mean + x_a(a) + x_b(b) + x_ab(a, b)`` (``x_a`` the mean over ``b`` minus the grand
mean, ...; the MLP's ``x_ab`` is exactly 0).  Latent ``j``'s pre-activation splits accordingly into
three upstream pair functions ``u_j^part = x_part @ W_enc[:, j] / scale``; the edge ``(j, part) -> j``
carries ``E[(u_j^part)^2 1[z_j > 0]]``.  An edge crosses irreps when the input part's dominant
irrep differs from the latent's: a latent reading a ``rho`` function of ``a`` and a ``sigma``
function of ``b`` is a cross-irrep interaction.
"""

from __future__ import annotations

import torch

from rep_theory.lenses.base import Edges, LensResult
from rep_theory.lenses.sae import SAE_DEFAULTS, SparseDict, n_latents_for, sparse_result, train_sparse_dict
from rep_theory.lenses.sites import SiteContext

__all__ = ["fit_transcoder", "transcoder_lens", "anova_parts"]


def anova_parts(x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean [d], x_a [n_pairs, d], x_b [n_pairs, d], x_ab [n_pairs, d])`` of ``x [n_pairs, d]`` (row-major pairs)."""
    X = x.to(torch.float64).view(n, n, -1)
    mean = X.mean((0, 1))
    xa = X.mean(1, keepdim=True) - mean                      # [n, 1, d]: function of a
    xb = X.mean(0, keepdim=True) - mean                      # [1, n, d]: function of b
    xab = X - mean - xa - xb
    d = X.shape[-1]
    return mean, xa.expand(n, n, d).reshape(n * n, d), xb.expand(n, n, d).reshape(n * n, d), xab.reshape(n * n, d)


def fit_transcoder(ctx: SiteContext, *, seed: int = 0, progress: bool = False, **overrides) -> SparseDict:
    """The transcoder of ``ctx``'s MLP (memoised on ``ctx`` per seed and hyperparameters)."""
    hp = {**SAE_DEFAULTS, **overrides}
    key = ("transcoder", seed, tuple(sorted(hp.items())))
    memo = ctx.__dict__.setdefault("_memo", {})
    if key not in memo:
        y = ctx.activations(ctx.downstream_site())
        memo[key] = train_sparse_dict(ctx.mlp_input(), y, n_latents=n_latents_for(y.shape[1], hp["expansion"], hp["max_latents"]),
                                      variant="topk", k=hp["k"], l1=hp["l1"], steps=hp["steps"], lr=hp["lr"],
                                      seed=seed, progress=progress, desc="transcoder")
    return memo[key]


def transcoder_lens(ctx: SiteContext, site: str, *, seed: int = 0, progress: bool = False, **overrides) -> LensResult:
    """Transcoder latents on all pairs (features), decoder rows (directions in the output site),
    the output rebuilt from them (spliced into ``site``) and the ANOVA edges."""
    if site != ctx.downstream_site():
        raise ValueError(f"the transcoder lens lives on the MLP's output site {ctx.downstream_site()!r}, got {site!r}")
    sd = fit_transcoder(ctx, seed=seed, progress=progress, **overrides)
    x_in = ctx.mlp_input()
    result = sparse_result("transcoder", site, sd, x_in)
    z = result.features
    _, xa, xb, xab = anova_parts(x_in, ctx.n)
    W = sd.W_enc.double() / sd.in_scale                                  # [d_in, k]
    parts = [p.to(W.device) @ W for p in (xa, xb, xab)]                  # 3 x [n_pairs, k]
    active = (z > 0).double()
    k = z.shape[1]
    weight = torch.zeros((3 * k, k), dtype=torch.float64)
    diag = torch.arange(k)
    for i, u in enumerate(parts):
        weight[i * k + diag, diag] = (u.pow(2) * active).mean(0).cpu()
    result.edges = Edges(upstream=torch.cat(parts, 1), downstream=z, weight=weight)
    return result
