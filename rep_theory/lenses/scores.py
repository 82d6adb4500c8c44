"""Scores of a lens against the group's ground truth (the only module of the lenses that reads the group).

Definitions (``f`` a feature's pair function, shares and dominant irrep from
:mod:`rep_theory.lenses.irrep_energy`; *live* features: centred energy above ``1e-10`` times the
largest of the lens on that site -- dead latents and dead neurons are left out of every average and
counted in ``n_live``):

* ``purity``: fraction of live features whose dominant irrep share is ``>= 0.9`` (the share is of
  the feature's energy in the irreps' x, y and xy spaces, see ``irrep_energy``);
* ``coverage``: fraction of the model's key irreps (non-trivial, logit similarity above 0.005, the
  paper's rule: :func:`key_irreps_of`) for which some live feature has share ``>= 0.9`` in it;
* ``alignment``: mean over live features of ``max_rho ||P_rho w||`` for the unit direction ``w``
  of the feature in the site's space and ``P_rho`` the orthogonal projector on the site's irrep
  subspace of ``rho`` (:func:`rep_theory.lenses.irrep_energy.site_irrep_subspaces`): the largest
  ``|cos|`` between ``w`` and a ground-truth direction;
* ``loss_recovered``: ``(L_zero - L_spliced) / (L_zero - L_model)``, cross-entropy on all pairs,
  with the site zero-ablated (``L_zero``) or replaced by the lens's reconstruction (``L_spliced``);
* ``l0`` (sparse lenses): mean over pairs of the number of features with ``|f| > 1e-8``;
* ``cross_irrep_edge_mass`` (lenses with edges): ``sum of E_ij over edges whose two features have
  different dominant irreps / sum of E_ij``, over edges between live features with a dominant
  irrep (0 for the ground truth, where features interact only within an irrep);
* ``explained``: mean over live features of the share of their centred energy in any irrep's
  x/y/xy spaces (how much of the feature the purity looks at);
* ``irrep_hist``: ``irrep:count;...`` of the live features' dominant irreps (for the stability).

Cross-seed stability (:func:`feature_summaries`, :func:`match_stability`,
:func:`histogram_stability`): features of two runs of one config are compared through their
centred pair functions aggregated by ``a``, by ``b`` and by product (``[k, 3n]``, all a
feature's x/y/xy-space content in a basis shared by every run of the group): ``match`` is the
mean, over the live features of each run, of the largest ``|cos|`` with a feature of the other
(averaged both ways); ``hist`` is ``1 - total variation distance`` of the two runs' normalised
dominant-irrep histograms.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

from rep_theory.algebra.groups import Group
from rep_theory.analysis.metrics import (KEY_THRESHOLD, IrrepBases, aggregate_pairs, logit_similarity,
                                         product_kernel, select_key_irreps)
from rep_theory.lenses.base import LensResult
from rep_theory.lenses.irrep_energy import IrrepEnergy, irrep_energy
from rep_theory.lenses.sites import SiteContext

__all__ = ["PURITY_THRESHOLD", "key_irreps_of", "live_mask", "purity", "coverage", "alignment",
           "cross_irrep_edge_mass", "l0", "score_lens", "feature_summaries", "match_stability",
           "histogram_stability", "parse_hist"]

PURITY_THRESHOLD = 0.9
_LIVE_RTOL = 1e-10


def key_irreps_of(ctx: SiteContext, bases: IrrepBases, *, threshold: float = KEY_THRESHOLD) -> list[str]:
    """The model's key irreps: non-trivial irreps whose logit similarity (the paper's
    ``logit_<irrep>_rep_trace_similarity``, via :func:`rep_theory.analysis.metrics.logit_similarity`)
    exceeds ``threshold``, from the logits on all pairs."""
    n = ctx.n
    with torch.no_grad():
        logits = ctx.spliced_logits(ctx.downstream_site(), ctx.activations(ctx.downstream_site()))
    L = logits.to(bases.device, torch.float64)
    L = L - L.mean(1, keepdim=True)
    by_product = aggregate_pairs(L, bases.product, n)
    sq = L.pow(2).sum()
    sims = {name: float(logit_similarity(by_product, product_kernel(bases.characters[name], bases.product_index), logits_sq=sq))
            for name in bases.names if name != "trivial"}
    return select_key_irreps(sims, threshold=threshold)


def live_mask(energy: IrrepEnergy) -> torch.Tensor:
    """``[k]`` bool: features whose centred energy exceeds ``1e-10`` times the lens's largest."""
    top = energy.total.max() if energy.total.numel() else torch.tensor(0.0)
    return energy.total > _LIVE_RTOL * top if top > 0 else torch.zeros_like(energy.total, dtype=torch.bool)


def purity(energy: IrrepEnergy, live: torch.Tensor, threshold: float = PURITY_THRESHOLD) -> float:
    """Fraction of live features whose dominant irrep share is at least ``threshold``."""
    if not bool(live.any()):
        return math.nan
    return float((energy.dominant_share[live] >= threshold).double().mean())


def coverage(energy: IrrepEnergy, live: torch.Tensor, key_irreps: Sequence[str],
             threshold: float = PURITY_THRESHOLD) -> float:
    """Fraction of ``key_irreps`` that some live feature holds with share at least ``threshold``."""
    if not key_irreps:
        return math.nan
    unknown = [k for k in key_irreps if k not in energy.names]
    if unknown:
        raise ValueError(f"key irreps {unknown} are not non-trivial irreps; expected a subset of {list(energy.names)}")
    share = energy.share[live]
    hit = [bool((share[:, energy.names.index(k)] >= threshold).any()) for k in key_irreps]
    return sum(hit) / len(hit)


def alignment(directions: torch.Tensor, subspaces: Mapping[str, torch.Tensor]) -> float:
    """Mean over the rows of ``directions [k, d]`` of ``max_rho ||Q_rho^T w|| / ||w||`` (``Q_rho [d, m]``)."""
    if directions.shape[0] == 0:
        return math.nan
    if not subspaces:
        return 0.0
    w = directions.to(torch.float64)
    w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-300)
    best = torch.stack([(w @ Q.to(w.device, torch.float64)).norm(dim=1) for Q in subspaces.values()]).max(0).values
    return float(best.mean())


def l0(features: torch.Tensor) -> float:
    """Mean over pairs of the number of features with ``|f| > 1e-8``."""
    return float((features.abs() > 1e-8).double().sum(1).mean())


def cross_irrep_edge_mass(weight: torch.Tensor, up: IrrepEnergy, down: IrrepEnergy) -> float:
    """``weight [k_up, k_down]``: share of edge mass between features of different dominant irreps
    (edges touching a dead feature or one without irrep energy are left out)."""
    du = torch.where(live_mask(up), up.dominant, torch.full_like(up.dominant, -1))
    dd = torch.where(live_mask(down), down.dominant, torch.full_like(down.dominant, -1))
    w = weight.to(torch.float64).cpu().abs()
    valid = (du[:, None] >= 0) & (dd[None, :] >= 0)
    total = float(w[valid].sum())
    if total <= 0:
        return math.nan
    return float(w[valid & (du[:, None] != dd[None, :])].sum()) / total


def _hist(energy: IrrepEnergy, live: torch.Tensor) -> str:
    dom = energy.dominant[live]
    counts = [(name, int((dom == i).sum())) for i, name in enumerate(energy.names)]
    return ";".join(f"{name}:{c}" for name, c in counts if c)


def parse_hist(text: str) -> dict[str, int]:
    """Inverse of the ``irrep_hist`` column: ``"a:3;b:1"`` -> ``{"a": 3, "b": 1}``."""
    out = {}
    for part in str(text or "").split(";"):
        if ":" in part:
            name, count = part.rsplit(":", 1)
            out[name] = int(count)
    return out


def score_lens(result: LensResult, ctx: SiteContext, bases: IrrepBases, *, key_irreps: Sequence[str],
               subspaces: Mapping[str, torch.Tensor]) -> dict:
    """Every score of one lens on one site (see the module docstring), as a flat dict."""
    G = bases.group
    energy = irrep_energy(result.features, G, bases=bases)
    live = live_mask(energy)
    row = {"lens": result.lens, "site": result.site, "n_features": int(result.features.shape[1]),
           "n_live": int(live.sum()), "purity": purity(energy, live), "coverage": coverage(energy, live, key_irreps),
           "alignment": alignment(result.directions[live.to(result.directions.device)], subspaces),
           "loss_recovered": math.nan, "l0": math.nan, "cross_irrep_edge_mass": math.nan,
           "explained": float(energy.explained[live].mean()) if bool(live.any()) else math.nan}
    if result.reconstruction is not None:
        l_zero, l_model = ctx.zero_ablated_loss(result.site), ctx.model_loss()
        l_spliced = ctx.spliced_loss(result.site, result.reconstruction)
        row["loss_recovered"] = (l_zero - l_spliced) / (l_zero - l_model) if l_zero != l_model else math.nan
        row["spliced_loss"] = l_spliced
    if result.sparse:
        row["l0"] = l0(result.features)
    if result.edges is not None:
        e = result.edges
        row["cross_irrep_edge_mass"] = cross_irrep_edge_mass(e.weight, irrep_energy(e.upstream, G, bases=bases),
                                                             irrep_energy(e.downstream, G, bases=bases))
    row["irrep_hist"] = _hist(energy, live)
    return row


def feature_summaries(features: torch.Tensor, G: Group, bases: IrrepBases | None = None) -> torch.Tensor:
    """``[k_live, 3n]`` float32: the live features' centred pair functions summed by ``a``, ``b`` and product."""
    bases = bases if bases is not None else IrrepBases.for_group(G)
    n = G.order
    energy = irrep_energy(features, G, bases=bases)
    F = features.detach().to(bases.device, torch.float64)[:, live_mask(energy).to(bases.device)]
    F = F - F.mean(0, keepdim=True)
    agg = torch.cat([aggregate_pairs(F, bases.left, n), aggregate_pairs(F, bases.right, n), bases.sum_by_product(F)])
    return agg.T.float().cpu()


def match_stability(s1: torch.Tensor, s2: torch.Tensor) -> float:
    """Mean over each run's features of the largest ``|cos|`` with the other's, averaged both ways
    (``s1 [k1, m]``, ``s2 [k2, m]`` from :func:`feature_summaries`)."""
    if s1.shape[0] == 0 or s2.shape[0] == 0:
        return math.nan
    u = s1.double() / s1.double().norm(dim=1, keepdim=True).clamp_min(1e-300)
    v = s2.double() / s2.double().norm(dim=1, keepdim=True).clamp_min(1e-300)
    c = (u @ v.T).abs()
    return float((c.max(1).values.mean() + c.max(0).values.mean()) / 2)


def histogram_stability(h1: Mapping[str, int], h2: Mapping[str, int]) -> float:
    """``1 - TV`` of two dominant-irrep histograms (``{irrep: count}``), normalised to sum 1."""
    t1, t2 = sum(h1.values()), sum(h2.values())
    if t1 == 0 or t2 == 0:
        return math.nan
    keys = set(h1) | set(h2)
    return 1.0 - 0.5 * sum(abs(h1.get(k, 0) / t1 - h2.get(k, 0) / t2) for k in keys)
