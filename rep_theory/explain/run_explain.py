"""``RUN_DIR/explain/``: the coset and rho-set view of one trained MLP, as files and a figure.

:func:`explain_model` joins :func:`rep_theory.explain.rhoset_neurons.analyse_neurons` (irrep, rank
one, rho-set, idealisation error; Wu et al., ICLR 2025) and
:func:`rep_theory.explain.cosets.neuron_cosets` (best coset subgroup of each neuron's left
function; Stander et al., ICML 2024) into one row per neuron; :func:`explain_run` writes them to
``RUN_DIR/explain/neurons.csv`` with ``RUN_DIR/explain/summary.json`` (atomic writes).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

from rep_theory.algebra.groups import Group, get_group
from rep_theory.analysis.style import irrep_colours
from rep_theory.explain.cosets import FUNCTIONS, neuron_cosets, neuron_functions
from rep_theory.explain.rhoset_neurons import analyse_neurons
from rep_theory.io import atomic_write_json, atomic_write_text
from rep_theory.training.config import load_config
from rep_theory.training.rundir import MODEL_NAME, file_stamp, load_run_model

__all__ = ["explain_model", "explain_run", "fig_neuron_structure", "EXPLAIN_DIR"]

EXPLAIN_DIR = "explain"


def explain_model(model, G: Group, *, threshold: float = 0.9, progress: bool = False,
                  loss_changes: bool = True) -> tuple[list[dict], dict]:
    """``(rows, summary)``: one dict per neuron and a JSON-ready summary of the whole model.

    Each row has the columns of :meth:`NeuronReport.rows` plus, per function ``f`` in ``left``,
    ``right``, ``unembed``: ``coset_<f>_subgroup`` (type), ``coset_<f>_order``, ``coset_<f>_side``,
    ``coset_<f>_concentration`` (empty / NaN where no subgroup reaches ``threshold``).
    """
    if not all(hasattr(model, k) for k in ("W_x", "W_y", "W", "W_U")):
        raise ValueError(f"the per-neuron explanation needs a OneLayerMLP, got a {type(model).__name__}")
    report = analyse_neurons(model, G, fixed_threshold=threshold, progress=progress, loss_changes=loss_changes)
    cosets = neuron_cosets(model, G, threshold=threshold, functions=neuron_functions(model))
    rows = report.rows()
    for f in FUNCTIONS:
        fit = cosets.fits[f]
        for j, row in enumerate(rows):
            row[f"coset_{f}_subgroup"] = fit.class_name[j]
            row[f"coset_{f}_order"] = int(fit.order[j])
            row[f"coset_{f}_side"] = fit.side[j]
            row[f"coset_{f}_concentration"] = float(fit.concentration[j])
    summary = {"group": G.name, "threshold": threshold, "neurons": report.summary(),
               "cosets": cosets.summary()}
    return rows, _finite(summary)


def _finite(obj):
    """JSON has no NaN: replace non-finite floats by None, recursively."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def explain_run(run_dir: str | Path, *, threshold: float = 0.9, progress: bool = False
                ) -> tuple[Path, Path, list[dict], dict]:
    """Write ``RUN_DIR/explain/neurons.csv`` and ``summary.json``; returns their paths, rows and summary.

    ``summary.json`` records under ``weights`` the stamp of the ``model.pt`` it describes (taken
    before loading it), so a reader can tell a retrained run's old explanation from a current one."""
    run_dir = Path(run_dir)
    config = load_config(run_dir)
    G = get_group(config.spec)
    stamp = file_stamp(run_dir / MODEL_NAME)
    model = load_run_model(run_dir)
    rows, summary = explain_model(model, G, threshold=threshold, progress=progress)
    summary = {"run": run_dir.name, **summary, "weights": stamp}
    out = run_dir / EXPLAIN_DIR
    csv_path = atomic_write_text(out / "neurons.csv", _csv_text(rows))
    json_path = atomic_write_json(out / "summary.json", summary)
    return csv_path, json_path, rows, summary


def fig_neuron_structure(rows: list[dict], *, title: str = "", group_irreps: Sequence[str] | None = None):
    """Plotly figure, one point per live neuron: its rho-set size (x, log) against the coset
    concentration of its left function (y), coloured by irrep, marker size by rank-one ratio."""
    import plotly.graph_objects as go
    fig = go.Figure()
    present = {r["irrep"] for r in rows if r["irrep"]}
    irreps = [name for name in (group_irreps or sorted(present)) if name in present]
    colours = irrep_colours(group_irreps or irreps)  # the colours of every other figure of the group
    for name in irreps:
        mine = [r for r in rows if r["irrep"] == name]
        fig.add_trace(go.Scatter(
            x=[r["rho_set_size"] for r in mine],
            y=[0.0 if not math.isfinite(r["coset_left_concentration"]) else r["coset_left_concentration"]
               for r in mine],
            mode="markers", name=name,
            marker={"size": [6 + 10 * max(0.0, min(1.0, r["rank_one_left"])) for r in mine], "opacity": 0.7,
                    "color": colours[name]},
            text=[f"neuron {r['neuron']}: {name}, rank-one {r['rank_one_left']:.2f}/{r['rank_one_right']:.2f}/"
                  f"{r['rank_one_unembed']:.2f}, stabiliser {r['stabilizer']}, cosets of "
                  f"{r['coset_left_subgroup'] or 'none'} ({r['coset_left_side'] or '-'}), "
                  f"idealisation error {r['preact_rel_error']:.2g}" for r in mine],
            hoverinfo="text"))
    fig.update_layout(title=title or "Neurons: rho-set size vs coset concentration (marker size: rank-one ratio)",
                      xaxis_title="size of the rho-set of b (log scale)", xaxis_type="log",
                      yaxis_title="coset concentration of the left function (0: none >= threshold)",
                      yaxis_range=[-0.05, 1.05], template="plotly_white")
    return fig

