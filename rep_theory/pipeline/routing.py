"""The gradient-routing experiment: routed and unrouted runs of one config, routed, ablated, measured.

Gradient routing and Expand, Route, Ablate are from Cloud, Goldman-Wetzler, Wybitul, Miller and
Turner, "Gradient Routing: Masking Gradients to Localize Computation in Neural Networks", 2024,
arXiv 2410.04332 (reference code github.com/kxcloud/gradient-routing); the routing itself is
:mod:`rep_theory.training.routing`, the measures :mod:`rep_theory.analysis.routing`.

:func:`run_routing_experiment` writes::

    OUT_DIR/runs/routed/<run>/      run directories (cfg.json with the route, model.pt, routing.json ...)
    OUT_DIR/runs/unrouted/<run>/    the control: the same config and width without the route
                                    (same initialisation), measured on the same designated units
    OUT_DIR/routing.csv             one row per seed and arm (ROUTING_COLUMNS)
    OUT_DIR/routing.md              the table, the means per arm, key-irrep counts per arm
    OUT_DIR/routing.html            plotly figure: localisation, ablation ratio, accuracies

Both arms train seed-batched through :func:`rep_theory.training.train.train_runs`, so running the
same command again resumes or skips finished runs; ``routing.json`` files that match the requested
measurement are reused.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from rep_theory.algebra.groups import get_group
from rep_theory.analysis.routing import ROUTING_NAME, measure_runs
from rep_theory.device import resolve_device
from rep_theory.io import atomic_write_text
from rep_theory.training.config import RunConfig
from rep_theory.training.route_spec import parse_route
from rep_theory.training.routing import check_route
from rep_theory.pipeline.routing_experiment import RoutingExperiment
from rep_theory.training.rundir import MODEL_NAME, new_run, stamp_matches
from rep_theory.training.train import train_runs

__all__ = ["RoutingExperiment", "routing_configs", "run_routing_experiment", "routing_rows", "ROUTING_COLUMNS",
           "routing_markdown", "fig_routing", "jointly_faithful"]

ROUTING_COLUMNS = ("seed", "arm", "routed_irrep", "localisation", "chance", "purity", "similarity_before",
                   "similarity_ablated", "ablated_similarity_ratio", "train_acc", "test_acc", "ablated_train_acc",
                   "ablated_test_acc", "finetuned_test_acc", "finetuned_similarity_ratio", "routed_irrep_key",
                   "key_irreps", "ablated_key_irreps", "ablated_keys_faithful")
"""Columns of ``routing.csv`` (irrep lists joined with ``;``)."""

ARMS = ("routed", "unrouted")


def routing_configs(exp: RoutingExperiment, device: str = "auto") -> dict[str, list[RunConfig]]:
    """``{"routed": [...], "unrouted": [...]}``: one config per seed ``1..exp.seeds`` and arm."""
    if exp.seeds < 1:
        raise ValueError(f"seeds must be >= 1, got seeds={exp.seeds}")
    shared = dict(group=exp.group, model="OneLayerMLP", num_epochs=exp.num_epochs, embed_dim=exp.embed_dim,
                  frac_train=exp.frac_train, lr=exp.lr, log_every=exp.log_every, device=device)
    route = parse_route(exp.route(), hidden_dim=exp.hidden_dim, model="OneLayerMLP")
    check_route(get_group(exp.group), route)   # before any run of either arm is created
    return {"routed": [RunConfig(seed=s, hidden_dim=exp.hidden_dim, route=route, **shared)
                       for s in range(1, exp.seeds + 1)],
            "unrouted": [RunConfig(seed=s, hidden_dim=exp.hidden_dim + exp.expand, **shared)
                         for s in range(1, exp.seeds + 1)]}


def jointly_faithful(group, irreps: Sequence[str]) -> bool:
    """Whether the direct sum of ``irreps`` is faithful (the intersection of their kernels is trivial):
    only then can logits built from them tell every product apart."""
    G = get_group(group) if isinstance(group, str) else group
    kernel = np.ones(G.order, dtype=bool)
    for rho in G.irreps():
        if rho.name in irreps:
            chi = np.einsum("gii->g", np.asarray(rho.matrices, dtype=np.float64))
            kernel &= np.abs(chi - rho.dim) < 1e-8
    return int(kernel.sum()) == 1


def routing_rows(measures: dict[str, Sequence[dict]], group) -> list[dict]:
    """``routing.csv`` rows from ``{arm: [routing.json dicts]}``."""
    rows = []
    for arm, ms in measures.items():
        for m in ms:
            irrep = m["routed_irrep"]
            rows.append({
                "seed": m["seed"], "arm": arm, "routed_irrep": irrep,
                **{k: m.get(k) for k in ROUTING_COLUMNS if k in m and k not in ("seed", "routed_irrep")},
                "routed_irrep_key": irrep in m["key_irreps"] if irrep else None,
                "key_irreps": ";".join(m["key_irreps"]), "ablated_key_irreps": ";".join(m["ablated_key_irreps"]),
                "ablated_keys_faithful": jointly_faithful(group, m["ablated_key_irreps"]),
            })
    return rows


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3f}"
    return "" if v is None else str(v)


def _csv(rows: Sequence[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=ROUTING_COLUMNS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(v) if isinstance(v, float) else ("" if v is None else v)) for k, v in r.items()})
    return buf.getvalue()


_MEAN_COLUMNS = ("localisation", "chance", "purity", "similarity_before", "ablated_similarity_ratio", "test_acc",
                 "ablated_test_acc", "finetuned_test_acc", "finetuned_similarity_ratio")


def routing_markdown(rows: Sequence[dict], exp: RoutingExperiment | None = None) -> str:
    """The per-seed table, the means per arm and the key-irrep counts per arm, as markdown."""
    cols = [c for c in ROUTING_COLUMNS if c not in ("routed_irrep", "train_acc", "ablated_train_acc")]
    lines = []
    if exp is not None:
        lines += [f"Routing experiment: {json.dumps(dataclasses.asdict(exp))}", ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    lines += ["", "Means per arm (NaN-free values; booleans as fractions):", "",
              "| arm | seeds | " + " | ".join(_MEAN_COLUMNS) + " | routed irrep key | ablated keys faithful |",
              "|" + "---|" * (len(_MEAN_COLUMNS) + 4)]
    for arm in ARMS:
        rs = [r for r in rows if r["arm"] == arm]
        if not rs:
            continue
        means = []
        for c in _MEAN_COLUMNS + ("routed_irrep_key", "ablated_keys_faithful"):
            vals = [float(r[c]) for r in rs if r.get(c) is not None and not (isinstance(r[c], float) and math.isnan(r[c]))]
            means.append(_fmt(sum(vals) / len(vals)) if vals else "")
        lines.append(f"| {arm} | {len(rs)} | " + " | ".join(means) + " |")
    lines += ["", "Key irreps (final logit similarity > 0.005) per arm, seeds with each irrep:", ""]
    for arm in ARMS:
        rs = [r for r in rows if r["arm"] == arm]
        if rs:
            counts: dict[str, int] = {}
            for r in rs:
                for k in filter(None, r["key_irreps"].split(";")):
                    counts[k] = counts.get(k, 0) + 1
            lines.append(f"* {arm}: " + ", ".join(f"{k} {v}/{len(rs)}" for k, v in sorted(counts.items())))
    return "\n".join(lines) + "\n"


def fig_routing(rows: Sequence[dict], title: str = "Gradient routing"):
    """Plotly figure: localisation (with chance), ablated similarity ratio, and test accuracy before /
    after ablation / after fine-tuning, one point per seed, per arm."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=("localisation (dashed: chance k/m)",
                                                        "similarity after / before ablation",
                                                        "test accuracy"))
    colours = {"routed": "#d62728", "unrouted": "#1f77b4"}
    for arm in ARMS:
        rs = [r for r in rows if r["arm"] == arm]
        if not rs:
            continue
        seeds = [f"seed {r['seed']}" for r in rs]
        kw = dict(mode="markers", marker=dict(color=colours[arm], size=9), legendgroup=arm)
        fig.add_trace(go.Scatter(x=[arm] * len(rs), y=[r["localisation"] for r in rs], text=seeds, name=arm, **kw),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=[arm] * len(rs), y=[r["ablated_similarity_ratio"] for r in rs], text=seeds,
                                 name=arm, showlegend=False, **kw), row=1, col=2)
        for stage, key in (("trained", "test_acc"), ("ablated", "ablated_test_acc"), ("fine-tuned", "finetuned_test_acc")):
            ys = [r.get(key) for r in rs]
            if any(y is not None for y in ys):
                fig.add_trace(go.Scatter(x=[f"{arm}<br>{stage}"] * len(rs), y=ys, text=seeds, name=arm,
                                         showlegend=False, **kw), row=1, col=3)
    chance = [r["chance"] for r in rows if r.get("chance") is not None]
    if chance:
        fig.add_hline(y=chance[0], line_dash="dash", row=1, col=1)
    fig.update_layout(title=title, template="plotly_white", height=450, width=1200)
    return fig


def _stored(run_dir: Path, exp: RoutingExperiment, route: dict) -> dict | None:
    path = run_dir / ROUTING_NAME
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if not stamp_matches(run_dir / MODEL_NAME, m.get("weights"), deep=True):
        return None                                     # measured on other weights (or before stamps)
    expected_irrep = exp.irrep
    if m.get("route") != route or m.get("finetune_steps") != exp.finetune_steps or m.get("routed_irrep") != expected_irrep:
        return None
    return m


def run_routing_experiment(out_dir: str | Path, exp: RoutingExperiment = RoutingExperiment(), *,
                           device: str = "auto", progress: bool = True) -> list[dict]:
    """Train both arms, measure every run (``routing.json``), write the CSV, markdown and figure; the rows."""
    out = Path(out_dir)
    cfgs = routing_configs(exp, device)
    route = cfgs["routed"][0].route
    dirs = {arm: [new_run(out / "runs" / arm / c.run_name, c) for c in cfgs[arm]] for arm in ARMS}
    train_runs([d for arm in ARMS for d in dirs[arm]], device=device, progress=progress)
    measures = {}
    for arm in ARMS:
        stored = [_stored(Path(d), exp, route.to_dict()) for d in dirs[arm]]
        if all(m is not None for m in stored):
            measures[arm] = stored
        else:
            measures[arm] = measure_runs(dirs[arm], route=route, irrep=exp.irrep, finetune_steps=exp.finetune_steps,
                                         device=resolve_device(device), progress=progress)
    rows = routing_rows(measures, exp.group)
    atomic_write_text(out / "routing.csv", _csv(rows))
    atomic_write_text(out / "routing.md", routing_markdown(rows, exp))
    what = f"subgroup {exp.subgroup}" if exp.subgroup else f"irrep {exp.irrep}"
    title = (f"Gradient routing on {exp.group}: {what} -> last {exp.units} of "
             f"{exp.hidden_dim + exp.expand} hidden units ({exp.mask} masks), {exp.seeds} seeds")
    atomic_write_text(out / "routing.html", fig_routing(rows, title).to_html(include_plotlyjs=True, full_html=True))
    return rows
