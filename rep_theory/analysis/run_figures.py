"""Per-run figures: interactive plotly HTML files in ``<run_dir>/figures/``.

Each figure is one self-contained-offline HTML file that loads ``plotly.min.js`` from the same
folder (written once per run; no network is needed to view them).  Epochs are on a log axis
(checkpoint 0 is drawn at epoch 1/2 so it stays visible); key irreps are drawn in colour, the other
irreps thin and grey.

=============================  =======================================================================
file                           content
=============================  =======================================================================
``loss_accuracy.html``         train/test loss (log scale) and accuracy
``logit_similarity.html``      logit similarity of every non-trivial irrep
``fve.html``                   FVE per irrep of the left/right embeddings, unembedding, hidden layer
``excluded_restricted.html``   total excluded/restricted losses (hidden and logit) with train/test
                               loss, and the per-irrep hidden excluded/restricted losses of key irreps
=============================  =======================================================================
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rep_theory.analysis.style import (EPOCH_AXIS, LOSS_AXIS, METRIC_COLOURS, OTHER_IRREP_LINE, figure_html,
                                        irrep_colours)

from rep_theory.io import atomic_write_json, atomic_write_text
from rep_theory.training.rundir import FIGURES_MARKER, METRICS_NAME, read_lines, read_metrics_csv

__all__ = ["write_run_figures", "run_figures", "FIGURE_FILES"]

log = logging.getLogger(__name__)

FIGURE_FILES = ("loss_accuracy.html", "logit_similarity.html", "fve.html", "excluded_restricted.html")


def _epochs(history: Sequence[Mapping[str, float]]) -> list[float]:
    return [r["epoch"] if r["epoch"] > 0 else 0.5 for r in history]


def _series(history, key):
    return [r[key] for r in history]


def _irrep_traces(fig, history, template: str, irreps: Sequence[str], key_irreps: Sequence[str], *,
                  row=None, col=None, showlegend=True, colours=None):
    x = _epochs(history)
    colour = colours if colours is not None else irrep_colours(irreps)
    # Others first so key irreps are drawn on top.
    for name in sorted(irreps, key=lambda nm: nm in key_irreps):
        key = template.format(name)
        if key not in history[0]:
            continue
        is_key = name in key_irreps
        line = dict(color=colour[name], width=2.5) if is_key else OTHER_IRREP_LINE
        trace = go.Scatter(x=x, y=_series(history, key), mode="lines", name=name, line=line,
                           legendgroup=name, showlegend=showlegend and is_key,
                           hovertemplate=f"{name}<br>epoch %{{x}}<br>%{{y:.4g}}<extra></extra>")
        if row is None:
            fig.add_trace(trace)
        else:
            fig.add_trace(trace, row=row, col=col)


def run_figures(history: Sequence[Mapping[str, float]], *, irreps: Sequence[str], key_irreps: Sequence[str],
                title: str = "") -> dict[str, go.Figure]:
    """The figures of one run from its ``metrics.csv`` rows (sorted by epoch): ``{file name: figure}``."""
    if not history:
        raise ValueError("run_figures needs at least one row of metrics, got none")
    x = _epochs(history)
    prefix = f"{title}: " if title else ""
    figs: dict[str, go.Figure] = {}

    colours = irrep_colours(irreps)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for key in ("train_loss", "test_loss"):
        fig.add_trace(go.Scatter(x=x, y=_series(history, key), name=key, line=dict(color=METRIC_COLOURS[key])),
                      row=1, col=1)
    for key in ("train_acc", "test_acc"):
        fig.add_trace(go.Scatter(x=x, y=_series(history, key), name=key,
                                 line=dict(color=METRIC_COLOURS[key], dash="dot")), row=1, col=2)
    fig.update_xaxes(**EPOCH_AXIS)
    fig.update_yaxes(**LOSS_AXIS, row=1, col=1)
    fig.update_layout(title=f"{prefix}loss and accuracy")
    figs["loss_accuracy.html"] = fig

    fig = go.Figure()
    _irrep_traces(fig, history, "logit_{}_rep_trace_similarity", [i for i in irreps if i != "trivial"], key_irreps,
                  colours=colours)
    fig.update_xaxes(**EPOCH_AXIS)
    fig.update_yaxes(title_text="cosine similarity of logits and chi(a b c^-1)")
    fig.update_layout(title=f"{prefix}logit similarity per irrep (key irreps in colour)")
    figs["logit_similarity.html"] = fig

    panels = (("percent_x_embed_{}_rep", "left embedding"), ("percent_y_embed_{}_rep", "right embedding"),
              ("percent_unembed_{}_rep", "unembedding"), ("total_percent_hidden_{}_rep", "hidden layer (x + y + xy)"))
    fig = make_subplots(rows=2, cols=2, subplot_titles=[p[1] for p in panels])
    for i, (template, _) in enumerate(panels):
        _irrep_traces(fig, history, template, irreps, key_irreps, row=i // 2 + 1, col=i % 2 + 1,
                      showlegend=(i == 0), colours=colours)
    fig.update_xaxes(**EPOCH_AXIS)
    fig.update_yaxes(title_text="FVE", range=[0, 1])
    fig.update_layout(title=f"{prefix}fraction of variance explained per irrep", height=800)
    figs["fve.html"] = fig

    fig = make_subplots(rows=1, cols=3, subplot_titles=("totals over key irreps", "hidden excluded loss per irrep",
                                                        "hidden restricted loss per irrep"))
    totals = (("train_loss", "solid"), ("test_loss", "solid"), ("total_hidden_excluded_loss", "dash"),
              ("total_hidden_restricted_loss", "dash"), ("total_logit_excluded_loss", "dot"),
              ("total_logit_restricted_loss", "dot"))
    for key, dash in totals:
        fig.add_trace(go.Scatter(x=x, y=_series(history, key), name=key,
                                 line=dict(color=METRIC_COLOURS[key], dash=dash)), row=1, col=1)
    _irrep_traces(fig, history, "hidden_excluded_loss_{}_rep", irreps, key_irreps, row=1, col=2, colours=colours)
    _irrep_traces(fig, history, "hidden_restricted_loss_{}_rep", irreps, key_irreps, row=1, col=3, showlegend=False,
                  colours=colours)
    fig.update_xaxes(**EPOCH_AXIS)
    fig.update_yaxes(**LOSS_AXIS, title_text="loss")
    fig.update_layout(title=f"{prefix}excluded and restricted losses", legend=dict(orientation="h", y=-0.25))
    figs["excluded_restricted.html"] = fig
    return figs


def write_run_figures(run_dir: str | Path, history: Sequence[Mapping[str, float]], *, irreps: Sequence[str],
                      key_irreps: Sequence[str]) -> list[Path]:
    """Write :func:`run_figures` into ``run_dir/figures/`` (plus ``plotly.min.js``); returns the paths."""
    folder = Path(run_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    js = folder / "plotly.min.js"
    if not js.is_file():
        from plotly.offline import get_plotlyjs
        atomic_write_text(js, get_plotlyjs())
    written = []
    for name, fig in run_figures(history, irreps=irreps, key_irreps=key_irreps, title=Path(run_dir).name).items():
        html = figure_html(fig, include_plotlyjs="directory", full_html=True)
        written.append(atomic_write_text(folder / name, html))
    log.info("wrote %d figures to %s", len(written), folder)
    return written


def draw_run_figures(run_dir: str | Path) -> list[Path]:
    """Draw the figures of an evaluated run from its files (``metrics.csv``, ``irreps.txt``,
    ``key_reps.txt``), then write ``figures/complete.json`` last (what "evaluated" checks).

    A run without checkpoint metrics gets no figures, and figures left from other weights are removed.
    """
    run_dir = Path(run_dir)
    csv_path = run_dir / METRICS_NAME
    history = read_metrics_csv(csv_path) if csv_path.is_file() else []
    marker = run_dir / FIGURES_MARKER
    if not history:
        for name in (*FIGURE_FILES, FIGURES_MARKER):
            (run_dir / "figures" / Path(name).name).unlink(missing_ok=True)
        return []
    marker.unlink(missing_ok=True)
    written = write_run_figures(run_dir, history, irreps=read_lines(run_dir / "irreps.txt"),
                                key_irreps=read_lines(run_dir / "key_reps.txt"))
    atomic_write_json(marker, {"figures": [p.name for p in written], "metrics_rows": len(history)})
    return written
