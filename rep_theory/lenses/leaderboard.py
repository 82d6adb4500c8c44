"""The lens registry and :func:`lens_leaderboard`: every lens on every site of one model, scored.

>>> rows = lens_leaderboard(model, get_group("S4"), lenses=["neuron", "pca"])   # doctest: +SKIP
>>> rows[0]["lens"], rows[0]["site"], rows[0]["purity"]                         # doctest: +SKIP

Each row holds the columns of :data:`COLUMNS` (scores defined in :mod:`rep_theory.lenses.scores`)
(``seconds``: the lens's own fitting time, scoring excluded) plus ``spliced_loss``.  Lenses defined on one site
only (``transcoder``, ``scae``: the MLP's post-ReLU output) are skipped on the others.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from rep_theory.algebra.groups import Group, get_group
from rep_theory.analysis.metrics import KEY_THRESHOLD, IrrepBases
from rep_theory.device import resolve_device
from rep_theory.lenses.base import LensResult
from rep_theory.lenses.irrep_energy import site_irrep_subspaces
from rep_theory.lenses.lib import lib_lens
from rep_theory.lenses.neuron import neuron_lens
from rep_theory.lenses.pca import pca_lens
from rep_theory.lenses.random_rotation import random_lens
from rep_theory.lenses.sae import sae_lens
from rep_theory.lenses.scae import scae_lens
from rep_theory.lenses.scores import feature_summaries, key_irreps_of, score_lens
from rep_theory.lenses.sites import SiteContext, check_sites
from rep_theory.lenses.transcoder import transcoder_lens
from rep_theory.training.models import GroupModel

__all__ = ["LENSES", "COLUMNS", "LensSpec", "check_lenses", "lens_leaderboard"]

log = logging.getLogger(__name__)

COLUMNS = ("lens", "site", "purity", "coverage", "alignment", "loss_recovered", "l0", "cross_irrep_edge_mass",
           "explained", "n_features", "n_live", "seconds", "irrep_hist")
"""Leaderboard columns, in order (``leaderboard.csv``)."""


@dataclasses.dataclass(frozen=True)
class LensSpec:
    """``fit(ctx, site, seed=..., progress=...) -> LensResult``; ``post_relu_only``: the lens exists
    only on the MLP's output site."""

    fit: Callable[..., LensResult]
    post_relu_only: bool = False
    progress: bool = False   # fit takes a ``progress`` keyword (a training loop)


def _sae_topk(ctx, site, *, seed=0, progress=False):
    return sae_lens(ctx, site, seed=seed, variant="topk", progress=progress)


def _sae_l1(ctx, site, *, seed=0, progress=False):
    return sae_lens(ctx, site, seed=seed, variant="relu_l1", progress=progress)


LENSES: dict[str, LensSpec] = {
    "neuron": LensSpec(neuron_lens),
    "random": LensSpec(random_lens),
    "pca": LensSpec(pca_lens),
    "lib": LensSpec(lib_lens),
    "sae_topk": LensSpec(_sae_topk, progress=True),
    "sae_l1": LensSpec(_sae_l1, progress=True),
    "transcoder": LensSpec(transcoder_lens, post_relu_only=True, progress=True),
    "scae": LensSpec(scae_lens, post_relu_only=True, progress=True),
}
"""Lens name -> how to fit it, in leaderboard order."""


def check_lenses(lenses: Sequence[str] | None) -> list[str]:
    """``lenses`` validated (default: all of :data:`LENSES`); an unknown name lists the valid ones."""
    if lenses is None:
        return list(LENSES)
    if isinstance(lenses, str):
        lenses = [lenses]
    out = []
    for name in lenses:
        if name not in LENSES:
            raise ValueError(f"unknown lens {name!r}; expected one of {list(LENSES)}")
        if name not in out:
            out.append(name)
    return out


def lens_leaderboard(model: GroupModel, G: Group | str, *, lenses: Sequence[str] | None = None,
                     sites: Sequence[str] | None = None, key_irreps: Sequence[str] | None = None,
                     seed: int = 0, device: torch.device | str | None = None, progress: bool = True,
                     summaries: dict | None = None, done: Mapping[tuple[str, str], tuple[dict, torch.Tensor]] | None = None,
                     on_result: Callable[[str, str, dict, torch.Tensor], None] | None = None) -> list[dict]:
    """Fit and score ``lenses`` on ``sites`` of ``model`` (a single-seed ``OneLayerMLP`` or ``Transformer``).

    Parameters
    ----------
    model, G : the model and its group, a :class:`Group` or a spec (the lenses never see ``G``; the
        scores do).
    lenses : names from :data:`LENSES` (default all).
    sites : site names (default :func:`rep_theory.lenses.sites.default_sites`).
    key_irreps : the model's key irreps for the coverage (default: logit similarity above 0.005,
        computed from the model, :func:`rep_theory.lenses.scores.key_irreps_of`).
    seed : seeds every stochastic lens (random rotation, SAE inits, edge subsampling).
    device : where to compute (default: the model's device).
    progress : tqdm bars over the (lens, site) jobs and the training loops.
    summaries : if a dict is given, ``summaries[(lens, site)]`` receives each lens's
        :func:`rep_theory.lenses.scores.feature_summaries` (for the cross-seed stability).
    done : ``{(lens, site): (row, summary)}`` of jobs already computed for this model with the same
        ``seed`` and ``key_irreps`` (an interrupted run's): returned as they are, not fitted again.
    on_result : called ``(lens, site, row, summary)`` after each job computed here, e.g. to save
        progress (:func:`rep_theory.lenses.runs.run_lenses` does).

    Returns
    -------
    list of dict, one per (lens, site) in lens-major order, keys :data:`COLUMNS` (+ ``spliced_loss``).
    """
    names = check_lenses(lenses)
    G = get_group(G)   # a Group, or a spec; anything else is a named TypeError
    if device is not None:
        model = model.to(resolve_device(device))
    ctx = SiteContext(model, G)
    site_names = check_sites(model, sites)
    bases = IrrepBases.for_group(G, ctx.device)
    if key_irreps is None:
        key_irreps = key_irreps_of(ctx, bases, threshold=KEY_THRESHOLD)
    key_irreps = list(key_irreps)
    subspaces = {site: site_irrep_subspaces(ctx.activations(site), G, bases=bases) for site in site_names}
    jobs = [(lens, site) for lens in names for site in site_names
            if not (LENSES[lens].post_relu_only and site != ctx.downstream_site())]
    rows = []
    bar = tqdm(jobs, desc="lenses", disable=not progress)
    for lens, site in bar:
        bar.set_postfix_str(f"{lens} @ {site}")
        if done is not None and (lens, site) in done:
            row, summary = done[(lens, site)]
            rows.append(dict(row))
            if summaries is not None:
                summaries[(lens, site)] = summary
            continue
        spec = LENSES[lens]
        start = time.perf_counter()
        kwargs = {"seed": seed, "progress": progress} if spec.progress else {"seed": seed}
        result = spec.fit(ctx, site, **kwargs)
        seconds = time.perf_counter() - start
        row = score_lens(result, ctx, bases, key_irreps=key_irreps, subspaces=subspaces[site])
        row["seconds"] = seconds
        row["key_irreps"] = " ".join(key_irreps)
        rows.append(row)
        summary = feature_summaries(result.features, G, bases) if summaries is not None or on_result else None
        if summaries is not None:
            summaries[(lens, site)] = summary
        if on_result is not None:
            on_result(lens, site, row, summary)
        log.info("%s @ %s: purity %.3f, loss recovered %.3f (%.1fs)", lens, site, row["purity"],
                 row["loss_recovered"], seconds)
    return rows
