"""Measuring gradient routing: where the routed irrep lives, and what ablating its units does.

Gradient routing (Cloud, Goldman-Wetzler, Wybitul, Miller and Turner, "Gradient Routing: Masking
Gradients to Localize Computation in Neural Networks", 2024, arXiv 2410.04332) promises that routed
data or targets are learnt in the designated units.  On group tasks this is measured exactly,
because every hidden unit's irrep content is known (:func:`rep_theory.analysis.neurons.neuron_irrep_fractions`):

* **energy** of irrep ``rho`` in unit ``j``: its fraction of the unit's variance over all pairs times
  that variance (``sum_pairs (h_j - mean h_j)^2``), so energies add up over units;
* **localisation** of ``rho``: the share of its hidden-layer energy in the designated units
  (chance: ``k / m``, the designated share of the ``m`` units);
* **purity**: the share of the designated units' total variance that is ``rho``'s energy;
* **ablation**: the designated units zeroed (:func:`rep_theory.training.routing.ablate_units`); the
  routed irrep's logit similarity (``logit_<irrep>_rep_trace_similarity`` of
  :func:`rep_theory.analysis.metrics.checkpoint_metrics`) after it relative to before (NaN when the
  irrep was not key before: similarity <= 0.005), and the
  train/test accuracy, without and with fine-tuning on the non-routed signal
  (:func:`rep_theory.training.routing.finetune_ablated`).

``routing.json`` (in the run directory, beside ``summary_metrics.json``, which keeps describing the
unablated ``model.pt``) holds one :func:`routing_measures` dict.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Sequence

import torch

from rep_theory.algebra.groups import Group, get_group
from rep_theory.analysis.metrics import KEY_THRESHOLD, IrrepBases, checkpoint_metrics, select_key_irreps
from rep_theory.analysis.neurons import neuron_irrep_fractions
from rep_theory.io import atomic_write_json
from rep_theory.training.config import RunConfig, load_config
from rep_theory.training.data import make_split
from rep_theory.training.route_spec import RouteSpec
from rep_theory.training.routing import ablate_units, finetune_ablated
from rep_theory.training.rundir import MODEL_NAME, file_stamp, load_run_model

__all__ = ["unit_irrep_energy", "localisation", "purity", "routing_measures", "measure_models",
           "measure_runs", "ROUTING_NAME"]

ROUTING_NAME = "routing.json"


def unit_irrep_energy(model, group: Group | str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``(energy [m, k], variance [m], names)``: each hidden unit's energy per non-trivial irrep (float64)."""
    fractions, names = neuron_irrep_fractions(model, group)
    H = model.hidden_all_pairs().detach().to("cpu", torch.float64)
    variance = (H - H.mean(dim=0)).pow(2).sum(dim=0)
    return fractions.to(torch.float64) * variance[:, None], variance, names


def localisation(energy: torch.Tensor, units: Sequence[int]) -> float:
    """Share of ``energy [m]`` (one irrep's per-unit energies) in ``units``; NaN when it is all zero."""
    total = float(energy.sum())
    return float(energy[list(units)].sum()) / total if total > 0 else math.nan


def purity(energy: torch.Tensor, variance: torch.Tensor, units: Sequence[int]) -> float:
    """Share of the ``units``' total variance that is ``energy`` (one irrep's); NaN for dead units."""
    total = float(variance[list(units)].sum())
    return float(energy[list(units)].sum()) / total if total > 0 else math.nan


def _sims(metrics: dict, names: Sequence[str]) -> dict[str, float]:
    return {name: metrics[f"logit_{name}_rep_trace_similarity"] for name in names}


def routing_measures(model, ablated, finetuned, bases: IrrepBases, *, train_pairs: torch.Tensor, units: Sequence[int],
                     irrep: str | None) -> dict:
    """The routing measures of one model (see the module docstring) as a JSON-ready dict.

    ``ablated``: the model with ``units`` zeroed; ``finetuned``: that model fine-tuned, or ``None``;
    ``irrep``: the routed (or measured) irrep, ``None`` to report per-irrep values only.
    """
    G = bases.group
    energy, variance, names = unit_irrep_energy(model, G)
    if irrep is not None and irrep not in names:
        raise ValueError(f"irrep={irrep!r} is not a non-trivial irrep of {G.name}; expected one of {names}")
    width = energy.shape[0]
    before = checkpoint_metrics(model, bases, train_pairs=train_pairs)
    after = checkpoint_metrics(ablated, bases, train_pairs=train_pairs)
    tuned = checkpoint_metrics(finetuned, bases, train_pairs=train_pairs) if finetuned is not None else None
    loc = {name: localisation(energy[:, i], units) for i, name in enumerate(names)}
    pur = {name: purity(energy[:, i], variance, units) for i, name in enumerate(names)}
    sim_before, sim_after = _sims(before, names), _sims(after, names)
    out = {
        "routed_irrep": irrep, "units": list(units), "width": width, "chance": len(units) / width,
        "localisation": loc[irrep] if irrep else None, "purity": pur[irrep] if irrep else None,
        "similarity_before": sim_before[irrep] if irrep else None,
        "similarity_ablated": sim_after[irrep] if irrep else None,
        "ablated_similarity_ratio": _ratio(sim_after[irrep], sim_before[irrep]) if irrep else None,
        "train_acc": before["train_acc"], "test_acc": before["test_acc"],
        "ablated_train_acc": after["train_acc"], "ablated_test_acc": after["test_acc"],
        "key_irreps": select_key_irreps(sim_before), "ablated_key_irreps": select_key_irreps(sim_after),
        "localisation_by_irrep": loc, "purity_by_irrep": pur,
        "similarity_before_by_irrep": sim_before, "similarity_ablated_by_irrep": sim_after,
    }
    if tuned is not None:
        sim_tuned = _sims(tuned, names)
        out.update(finetuned_train_acc=tuned["train_acc"], finetuned_test_acc=tuned["test_acc"],
                   finetuned_similarity_ratio=_ratio(sim_tuned[irrep], sim_before[irrep]) if irrep else None,
                   similarity_finetuned_by_irrep=sim_tuned, finetuned_key_irreps=select_key_irreps(sim_tuned))
    return out


def _ratio(after: float, before: float) -> float:
    """``after / before``; NaN when the irrep was not key before (``|before| <= KEY_THRESHOLD``), where a
    ratio of two near-zero similarities means nothing."""
    return after / before if abs(before) > KEY_THRESHOLD else math.nan


def measure_models(models: Sequence, cfgs: Sequence[RunConfig], route: RouteSpec, *, irrep: str | None = None,
                   finetune_steps: int = 0, device: str | torch.device = "cpu", progress: bool = False) -> list[dict]:
    """:func:`routing_measures` of models that share a config up to seed, under ``route``'s designated units.

    ``route`` need not be the one the models trained with: an unrouted control is measured (and
    ablated, fine-tuned) on the same units.  ``irrep`` defaults to the route's irrep (irrep routes).
    """
    if irrep is None and route.kind == "irrep":
        irrep = route.target
    G = get_group(cfgs[0].spec)
    bases = IrrepBases.for_group(G)
    width = models[0].W.shape[-1]
    units = list(route.designated(width))
    tuned = (finetune_ablated(models, cfgs, route, steps=finetune_steps, device=device, progress=progress)
             if finetune_steps > 0 else [None] * len(models))
    out = []
    for model, cfg, ft in zip(models, cfgs, tuned):
        model = model.cpu()
        ablated = ablate_units(copy.deepcopy(model), units)
        split = make_split(G, cfg.frac_train, cfg.seed, paper_order=cfg.paper_order)
        m = routing_measures(model, ablated, ft, bases, train_pairs=split.train, units=units, irrep=irrep)
        m.update(seed=cfg.seed, route=route.to_dict(), trained_with_route=cfg.route is not None,
                 finetune_steps=finetune_steps, finetune_lr=cfg.lr if finetune_steps > 0 else None)
        out.append(m)
    return out


def measure_runs(run_dirs: Sequence[str | os.PathLike], *, route: RouteSpec | None = None, irrep: str | None = None,
                 finetune_steps: int = 0, device: str | torch.device = "cpu", progress: bool = False) -> list[dict]:
    """Measure finished runs and write each one's ``routing.json`` (atomically); returns the dicts.

    ``route``: the route whose designated units are measured (default: each run's own; a run trained
    without one needs it).  Runs are fine-tuned together when their configs differ only in seed.
    """
    groups: dict[tuple, list[tuple[Path, RunConfig]]] = {}
    for d in run_dirs:
        d = Path(d)
        cfg = load_config(d)
        if not (d / MODEL_NAME).is_file():
            raise FileNotFoundError(f"{d} has no {MODEL_NAME}: train it first (rep-theory train {d})")
        r = route if route is not None else cfg.route
        if r is None:
            raise ValueError(f"{d} was trained without a route; pass the route whose units to measure")
        groups.setdefault((cfg.replace(seed=0).batch_key(), r), []).append((d, cfg))
    results: dict[Path, dict] = {}
    for (_, r), members in groups.items():
        stamps = [file_stamp(d / MODEL_NAME) for d, _ in members]               # before loading: what was measured
        models = [load_run_model(d) for d, _ in members]
        for (d, _), stamp, m in zip(members, stamps, measure_models(models, [c for _, c in members], r, irrep=irrep,
                                                                     finetune_steps=finetune_steps, device=device,
                                                                     progress=progress)):
            m = dict(m, weights=stamp)
            atomic_write_json(d / ROUTING_NAME, m)
            results[d] = m
    return [results[Path(d)] for d in run_dirs]
