"""The ``sae_topk`` and ``sae_l1`` lenses: sparse autoencoders trained on a site's activations.

Sources: ReLU + L1 -- Bricken et al. 2023, "Towards Monosemanticity: Decomposing Language Models
With Dictionary Learning" (Anthropic), with the decoder-norm-weighted L1 of Conerly et al. 2024,
"Circuits Updates -- April 2024: Update on how we train SAEs"; TopK -- Gao et al. 2024, "Scaling
and evaluating sparse autoencoders" (arXiv:2406.04093), decoder rows renormalised after each step.

Both share :func:`train_sparse_dict`, also used by the transcoder (input and target differ there):

* data: the rows of the site on all pairs, centred and divided by one scalar so that
  ``E||x||^2 = 1`` (the reconstruction loss is then the fraction of variance unexplained); an
  embedding half is trained on its ``n`` distinct rows (the same mean loss over pairs);
* encoder ``z = act(x W_enc + b_enc)``, ``act`` = ReLU, or ReLU of the ``k`` largest
  pre-activations (TopK); decoder ``x_hat = z W_dec + b_dec``;
* loss ``mean ||x_hat - y||^2`` (+ ``l1 * mean sum_j z_j ||W_dec[j]||`` for ReLU + L1);
* full batch, Adam, ``steps`` steps, float32, initialisation from a local generator seeded with
  the lens seed (``W_dec`` rows random unit vectors, ``W_enc = W_dec^T`` when input and target
  live in the same space), so a run is deterministic on the CPU.

Default hyperparameters (chosen for CPU budgets, not tuned per model; see the README's "Interpretability lenses against an exact ground truth"):
``min(4 d, 1024)`` latents, ``k = 8``, ``l1 = 0.1`` (normalised units; L0 about 35 on the S5 MLP's
hidden layer, 0.3 gives L0 7 at 40% unexplained variance), 300 steps at lr 3e-3.
No dead-latent resampling or auxiliary loss: dead latents count against purity only through
``n_live`` (they have no pair function), and are reported.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from tqdm.auto import tqdm

from rep_theory.lenses.base import LensResult, generator
from rep_theory.lenses.sites import SiteContext

__all__ = ["SparseDict", "train_sparse_dict", "sae_lens", "SAE_DEFAULTS"]

SAE_DEFAULTS = {"expansion": 4, "max_latents": 1024, "k": 8, "l1": 0.1, "steps": 300, "lr": 3e-3}


@dataclasses.dataclass
class SparseDict:
    """A trained sparse dictionary in normalised units.

    ``W_enc [d_in, k]``, ``b_enc [k]``, ``W_dec [k, d_out]``, ``b_dec [d_out]``; the input is
    normalised as ``(x - in_mean) / in_scale`` and the output denormalised as ``y * out_scale + out_mean``.
    """

    W_enc: torch.Tensor
    b_enc: torch.Tensor
    W_dec: torch.Tensor
    b_dec: torch.Tensor
    in_mean: torch.Tensor
    in_scale: float
    out_mean: torch.Tensor
    out_scale: float
    variant: str
    k: int
    final_loss: float = math.nan

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, k_latents]``: encoder pre-activations of raw inputs ``x [N, d_in]``."""
        return ((x.float() - self.in_mean) / self.in_scale) @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, k_latents]``: latent activations of raw inputs ``x [N, d_in]``."""
        return _activate(self.pre(x), self.variant, self.k)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``[N, d_out]`` in raw output units."""
        return (z @ self.W_dec + self.b_dec) * self.out_scale + self.out_mean


def _activate(pre: torch.Tensor, variant: str, k: int) -> torch.Tensor:
    if variant == "topk":
        vals, idx = pre.topk(min(k, pre.shape[1]), dim=1)
        return torch.zeros_like(pre).scatter(1, idx, torch.relu(vals))
    return torch.relu(pre)


def _normalise(x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    mean = (weights[:, None] * x).sum(0)
    scale = float((weights * (x - mean).pow(2).sum(1)).sum().sqrt())
    return (x - mean) / max(scale, 1e-12), mean, max(scale, 1e-12)


def train_sparse_dict(x_in: torch.Tensor, y_out: torch.Tensor | None = None, weights: torch.Tensor | None = None, *,
                      n_latents: int, variant: str = "topk", k: int = 8, l1: float = 0.1, steps: int = 300,
                      lr: float = 3e-3, seed: int = 0, progress: bool = False, desc: str = "sae") -> SparseDict:
    """Train a sparse dictionary mapping ``x_in [m, d_in]`` to ``y_out [m, d_out]`` (default: ``x_in``).

    ``weights [m]``: each row's weight in the mean (default uniform).  ``variant``: ``"topk"`` or
    ``"relu_l1"``.  Full batch, Adam, deterministic for a given ``seed`` on the CPU.
    """
    if variant not in ("topk", "relu_l1"):
        raise ValueError(f"unknown sparse-dictionary variant {variant!r}; expected 'topk' or 'relu_l1'")
    same = y_out is None
    x_in = x_in.detach().float()
    y_out = x_in if same else y_out.detach().float()
    m = x_in.shape[0]
    w = torch.full((m,), 1.0 / m, device=x_in.device) if weights is None else (weights / weights.sum()).float().to(x_in.device)
    xn, in_mean, in_scale = _normalise(x_in, w)
    yn, out_mean, out_scale = (xn, in_mean, in_scale) if same else _normalise(y_out, w)
    g = generator(seed)
    d_in, d_out = xn.shape[1], yn.shape[1]
    W_dec = torch.randn(n_latents, d_out, generator=g)
    W_dec = (W_dec / W_dec.norm(dim=1, keepdim=True)).to(x_in.device)
    if same:
        W_enc = W_dec.T.clone()
    else:
        W_enc = (torch.randn(d_in, n_latents, generator=g) / math.sqrt(d_in)).to(x_in.device)
    # ReLU + L1 starts with small encoder weights so that it does not begin with every latent on
    if variant == "relu_l1":
        W_enc = W_enc * 0.1
    params = [torch.nn.Parameter(t) for t in (W_enc, torch.zeros(n_latents, device=x_in.device), W_dec,
                                               torch.zeros(d_out, device=x_in.device))]
    opt = torch.optim.Adam(params, lr=lr)
    loss_value = math.nan
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        We, be, Wd, bd = params
        z = _activate(xn @ We + be, variant, k)
        err = (w * (z @ Wd + bd - yn).pow(2).sum(1)).sum()
        loss = err
        if variant == "relu_l1":
            loss = loss + l1 * (w * (z * Wd.norm(dim=1)).sum(1)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if variant == "topk":  # unit decoder rows, so the latent carries the scale (Gao et al.)
            with torch.no_grad():
                Wd /= Wd.norm(dim=1, keepdim=True).clamp_min(1e-12)
        loss_value = float(err.detach())
    We, be, Wd, bd = (p.detach() for p in params)
    return SparseDict(W_enc=We, b_enc=be, W_dec=Wd, b_dec=bd, in_mean=in_mean, in_scale=in_scale,
                      out_mean=out_mean, out_scale=out_scale, variant=variant, k=k, final_loss=loss_value)


def n_latents_for(d: int, expansion: int = SAE_DEFAULTS["expansion"], max_latents: int = SAE_DEFAULTS["max_latents"]) -> int:
    return int(min(expansion * d, max_latents))


def fit_site_sae(ctx: SiteContext, site: str, variant: str, *, seed: int = 0, progress: bool = False,
                 **overrides) -> SparseDict:
    """The SAE of ``site`` (memoised on ``ctx`` per variant, seed and hyperparameters)."""
    hp = {**SAE_DEFAULTS, **overrides}
    key = ("sae", site, variant, seed, tuple(sorted(hp.items())))
    memo = ctx.__dict__.setdefault("_memo", {})
    if key not in memo:
        rows, _ = ctx.unique_rows(site)
        memo[key] = train_sparse_dict(rows, n_latents=n_latents_for(rows.shape[1], hp["expansion"], hp["max_latents"]),
                                      variant=variant, k=hp["k"], l1=hp["l1"], steps=hp["steps"], lr=hp["lr"],
                                      seed=seed, progress=progress, desc=f"sae_{variant} {site}")
    return memo[key]


def sparse_result(lens: str, site: str, sd: SparseDict, x_in: torch.Tensor, **info) -> LensResult:
    """Features, unit decoder directions, reconstruction and L0 of a dictionary on all pairs."""
    with torch.no_grad():
        z = sd.encode(x_in)                                            # [N, k]
        recon = sd.decode(z)                                           # [N, d_out]
    directions = sd.W_dec.double()
    directions = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return LensResult(lens=lens, site=site, features=z.double(), directions=directions, reconstruction=recon.double(),
                      sparse=True, info={"n_features": z.shape[1], "variant": sd.variant, "k": sd.k,
                                         "fvu": sd.final_loss, **info})


def sae_lens(ctx: SiteContext, site: str, *, seed: int = 0, variant: str = "topk", progress: bool = False,
             **overrides) -> LensResult:
    """SAE features of ``site`` on all pairs (``variant`` ``"topk"`` or ``"relu_l1"``)."""
    sd = fit_site_sae(ctx, site, variant, seed=seed, progress=progress, **overrides)
    name = "sae_topk" if variant == "topk" else "sae_l1"
    return sparse_result(name, site, sd, ctx.activations(site))
