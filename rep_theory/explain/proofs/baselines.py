"""Brute force and the verifiers built from the two earlier explanations (irreps/GCR and cosets).

``brute``: every pair through the network; the bound is the exact accuracy.  ``O(|G|^3 m)``.

``gcr`` (from Chughtai, Chan and Nanda, "A Toy Model of Universality", ICML 2023, arXiv 2302.03025:
the network computes ``sum_rho alpha_rho chi_rho(x y z^-1)`` through the key irreps):

* fit: the key irreps ``K`` (non-trivial irreps holding at least ``key_power`` of the centred
  Fourier power of ``U``, unless given), the projections ``L^P, R^P`` of ``L, R`` onto ``K`` plus the
  trivial irrep and ``U^P`` of ``U`` onto ``K``, and one coefficient per key irrep;
* proof: ``|margin_f - margin_{f^P}| <= sum_i c_i h_i + d_i |h_i - h^P_i|`` (the deviation lemma),
  and, since ``U^P``'s columns lie in the key isotypic components,
  ``f^P(z | x, y) = sum_rho w_rho tr(C_rho(x, y)^T rho(z))`` with ``C_rho = sum_i h^P_i Uhat_rho[i]``
  ``[d, d]`` (``w_rho``: Plancherel weight).  The ideal puts ``C_rho = alpha'_rho rho(xy)``, whose logits
  are ``sum_rho w_rho alpha'_rho chi_rho((xy)^-1 z)``, margin ``min_{g != e} sum w alpha' (d - chi(g))``;
  Cauchy-Schwarz bounds the rest by ``sum_rho w_rho ||C_rho - alpha'_rho rho(xy)||_F sqrt(2d - 2 min chi)``.
  Cost ``O(|G|^2 m sum_K d^2)``: cheaper than brute force only while ``sum_K d^2 < |G|``.

``coset`` (from Stander, Yu, Fan and Biderman, "Grokking Group Multiplication with Cosets",
ICML 2024, arXiv 2312.06581: each neuron's pre-activation is constant on the cosets of a subgroup):

* fit: per neuron, the largest subgroup on whose left or right cosets ``L[:, i]`` (resp. ``R[:, i]``)
  keeps at least 0.9 of its centred energy (:func:`rep_theory.algebra.subgroups.best_cosets`);
  the ideal replaces ``L[:, i]``, ``R[:, i]`` by their coset averages and keeps ``U``;
* proof: the ideal network's margins on every pair (the coset explanation offers no shortcut for the
  readout, so this is brute force on the ideal, ``O(|G|^3 m)``) minus the deviation lemma's bound.
"""

from __future__ import annotations

import math

import torch

from rep_theory.algebra.fourier import fourier, inverse_fourier, plancherel_weights
from rep_theory.algebra.groups import Group
from rep_theory.algebra.subgroups import best_cosets, coset_labels
from rep_theory.explain.proofs.core import (Flops, brute_margins, check_key_irreps, deviation_bound, hidden,
                                            logit_scale, readout_key_irreps, rounding_slack)

__all__ = ["brute_proof", "fit_gcr", "gcr_proof", "fit_coset", "coset_proof"]


def brute_proof(G: Group, L, R, U, flops: Flops) -> dict:
    """Every pair through the network: ``certified`` = strictly correct."""
    margins = brute_margins(L, R, U, G.table, flops)
    certified = margins > 0
    return {"certified": certified, "failures": {"wrong": int((~certified).sum())}, "details": {},
            "diagnostics": {"margin": margins}}


# --- GCR --------------------------------------------------------------------------------------------
def _project(G: Group, f: torch.Tensor, names) -> torch.Tensor:
    fh = fourier(G, f)
    return inverse_fourier(G, {k: fh[k] for k in names})


def _coefficients(G: Group, hP_rows: torch.Tensor, Uhat: dict) -> dict:
    """``{name: [r, n, d, d]}``: ``C_rho(x, y) = sum_i hP_i(x, y) Uhat_rho[i]`` for a block of rows."""
    return {k: torch.einsum("xym,mij->xyij", hP_rows, v) for k, v in Uhat.items()}


def fit_gcr(G: Group, L, R, U, *, key_irreps=None, key_power: float = 0.05) -> dict:
    """The GCR explanation: key irreps, projected weights and one coefficient ``alpha'`` per key irrep."""
    names = [r.name for r in G.irreps()]
    w = plancherel_weights(G)
    Uhat_all = fourier(G, U)
    key_irreps = readout_key_irreps(G, Uhat_all, w, key_irreps, key_power)
    LP, RP = _project(G, L, [names[0], *key_irreps]), _project(G, R, [names[0], *key_irreps])
    UP = _project(G, U, key_irreps) if key_irreps else torch.zeros_like(U)
    Uhat = {k: Uhat_all[k] for k in key_irreps}
    n = G.order
    num = {k: 0.0 for k in key_irreps}
    for s in range(n):
        C = _coefficients(G, hidden(LP, RP, slice(s, s + 1)), Uhat)
        for k in key_irreps:
            num[k] += float((C[k][0] * G.irrep(k).matrices[G.table[s]]).sum())
    alpha = {k: num[k] / (n * n * G.irrep(k).dim) for k in key_irreps}
    return {"key_irreps": list(key_irreps), "LP": LP, "RP": RP, "UP": UP, "Uhat": Uhat, "alpha": alpha}


def gcr_proof(G: Group, L, R, U, fit: dict, flops: Flops) -> dict:
    n, m = L.shape
    w = plancherel_weights(G)
    keys = check_key_irreps(G, fit["key_irreps"])                          # a repeat would count twice
    if not all(math.isfinite(float(fit["alpha"][k])) for k in keys):
        raise ValueError(f"the explanation's alpha must be finite, got {fit['alpha']}")
    sq = sum(G.irrep(k).dim ** 2 for k in keys)
    ideal = torch.zeros(n, dtype=torch.float64)
    kappa = {}
    for k in keys:
        r = G.irrep(k)
        ideal += w[k] * fit["alpha"][k] * (r.dim - r.character)
        kappa[k] = math.sqrt(max(0.0, 2 * r.dim - 2 * float(r.character.min())))
    margin = float(ideal[1:].min()) if keys else 0.0
    flops.add("ideal margin", 3 * n * len(keys) + n)
    # the projected readout and its coefficients, derived here (the argument below needs UP to lie in the
    # key irreps and Uhat to be its transform; the fit's values are not trusted); one transform suffices,
    # since projecting onto the key irreps leaves their coefficients as they are
    Uhat = {k: v for k, v in fourier(G, fit["UP"]).items() if k in keys}
    UP = inverse_fourier(G, Uhat) if keys else torch.zeros_like(U)
    flops.add("projected readout", 2 * 2 * n * n * m)
    eps1, _ = deviation_bound(L, R, U, fit["LP"], fit["RP"], UP, lipschitz=False, flops=flops)
    eps2 = torch.zeros((n, n), dtype=torch.float64)
    for s in range(n):
        C = _coefficients(G, hidden(fit["LP"], fit["RP"], slice(s, s + 1)), Uhat)
        for k in keys:
            target = G.irrep(k).matrices[G.table[s]]                         # [n, d, d]  rho(x y)
            gap = (C[k][0] - fit["alpha"][k] * target).pow(2).sum((-2, -1)).sqrt()
            eps2[s] += w[k] * kappa[k] * gap
    flops.add("hidden (projected)", 2 * n * n * m)
    flops.add("coefficients", 2 * n * n * m * sq)
    flops.add("coefficient deviation", n * n * (4 * sq + 4 * len(keys)))
    # the projected network's and the ideal's own scales enter the slack: they are computed too
    ideal_scale = sum(abs(float(fit["alpha"][k])) * float(w[k]) * 2 * G.irrep(k).dim for k in keys)
    slack = rounding_slack(L, R, U, margin, float(eps1.max()), float(eps2.max()),
                           logit_scale(fit["LP"], fit["RP"], UP), ideal_scale)
    certified = (margin - eps1 - eps2) > slack
    flops.add("certify", 3 * n * n)
    failures = ({"ideal_margin_not_positive": n * n} if margin <= slack else
                {"weight_deviation": int((eps1 >= margin - slack).sum()),
                 "character_deviation": int((~certified & (eps1 < margin - slack)).sum())})
    details = {"key_irreps": keys, "alpha": fit["alpha"], "ideal_margin": margin, "rounding_slack": slack}
    return {"certified": certified, "failures": failures, "details": details,
            "diagnostics": {"eps_weights": eps1, "eps_characters": eps2}}


# --- cosets -----------------------------------------------------------------------------------------
def _coset_average(G: Group, f: torch.Tensor, threshold: float) -> tuple[torch.Tensor, list]:
    """Each column of ``f [n, m]`` replaced by its average over the cosets (left or right, whichever
    admits the larger subgroup) of its best subgroup; zero where none reaches ``threshold``."""
    n, m = f.shape
    out = torch.zeros_like(f)
    chosen = []
    sides = {side: best_cosets(G, f, side=side, threshold=threshold) for side in ("left", "right")}
    for i in range(m):
        side = max(sides, key=lambda s: (int(sides[s].order[i]), float(torch.nan_to_num(sides[s].fraction[i], -1))))
        res = sides[side]
        if int(res.index[i]) < 0:
            chosen.append(None)
            continue
        H = res.subgroups[int(res.index[i])]
        labels = coset_labels(G, H, side=side)
        sums = torch.zeros(n, dtype=torch.float64).index_add_(0, labels, f[:, i])
        out[:, i] = sums[labels] / H.order
        chosen.append((side, H.order))
    return out, chosen


def fit_coset(G: Group, L, R, U, *, threshold: float = 0.9) -> dict:
    LC, left = _coset_average(G, L, threshold)
    RC, right = _coset_average(G, R, threshold)
    both = torch.tensor([a is not None and b is not None for a, b in zip(left, right)])
    LC[:, ~both], RC[:, ~both] = 0.0, 0.0
    UC = U.clone()
    UC[:, ~both] = 0.0
    return {"LC": LC, "RC": RC, "UC": UC, "explained_neurons": int(both.sum())}


def coset_proof(G: Group, L, R, U, fit: dict, flops: Flops) -> dict:
    ideal = brute_margins(fit["LC"], fit["RC"], fit["UC"], G.table, flops)
    eps, _ = deviation_bound(L, R, U, fit["LC"], fit["RC"], fit["UC"], lipschitz=False, flops=flops)
    # the ideal's margins are computed in float64 too: its own logits' scale enters the slack
    slack = rounding_slack(L, R, U, float(ideal.abs().max()), float(eps.max()),
                           logit_scale(fit["LC"], fit["RC"], fit["UC"]))
    certified = (ideal - eps) > slack
    flops.add("certify", 3 * G.order ** 2)
    bad_ideal = ideal <= slack
    failures = {"ideal_wrong": int(bad_ideal.sum()), "weight_deviation": int((~certified & ~bad_ideal).sum())}
    details = {"explained_neurons": fit["explained_neurons"], "rounding_slack": slack}
    return {"certified": certified, "failures": failures, "details": details,
            "diagnostics": {"ideal_margin": ideal, "eps": eps}}
