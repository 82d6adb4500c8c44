"""Figures over many runs: which irreps seeds learn, how many, in what order, and when.

Every ``fig_*`` function is a pure function of run summaries (:class:`rep_theory.analysis.summaries.RunSummary`)
or of per-checkpoint metric rows and returns a ``plotly.graph_objects.Figure``;
:func:`write_figures` draws all of them for a batch directory and writes ``BATCH_DIR/figures/``:

* ``irrep_frequency_<G>_<m>[_<v>].html``: fraction of seeds in which each irrep is key (the
  paper's S5 MLP figure over 50 seeds);
* ``key_irrep_count_<G>_<m>[_<v>].html``: how many key irreps each seed uses;
* ``learning_order_<G>_<m>[_<v>].html``: position in the learning order against irrep dimension
  (the paper: lower-dimensional irreps tend to be learned first);
* ``grokking_<G>_<m>[_<v>].html``: train and test loss of every seed against epoch, from each
  run's ``train_log.csv`` (the trainer's log) or else its ``metrics.csv`` (the paper's runs);
* ``neuron_irreps_<run>.html``: per hidden neuron, the fraction of its variance in each key irrep
  (:func:`neuron_irrep_fractions`), for the lowest seed of each group, model and variant whose
  ``model.pt`` is present.

HTML files load ``plotly.min.js`` from the same folder (written once), so they open offline;
PNG copies are written too when an image exporter (kaleido) is importable.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import plotly.graph_objects as go

from rep_theory.algebra.groups import get_group
from rep_theory.analysis.neurons import neuron_irrep_fractions
from rep_theory.analysis.summaries import RunSummary, collect_runs, group_sort_key, run_sort_key
from rep_theory.analysis.style import EPOCH_AXIS, LOSS_AXIS, figure_html
from rep_theory.analysis.tables import display_irrep
from rep_theory.training.rundir import load_run_model, read_metrics_csv
from rep_theory.io import atomic_write_bytes, atomic_write_text

__all__ = ["irrep_dims", "irrep_names", "fig_irrep_frequency",
           "fig_key_irrep_count", "fig_learning_order", "fig_grokking", "fig_neuron_irreps",
           "write_figure", "write_figures", "PLOTLY_JS_NAME"]

logger = logging.getLogger(__name__)

PLOTLY_JS_NAME = "plotly.min.js"
_MAX_NEURON_ELEMENTS = 2 * 10**8  # pair x hidden entries held for the neuron figure (800 MB float32)
_MODEL_NAMES = {"MLP": "MLP", "T": "Transformer", "B": "Bilinear"}


# --------------------------------------------------------------------------------------------
# Irrep facts used for axes
# --------------------------------------------------------------------------------------------
def irrep_names(group: str) -> list[str] | None:
    """Non-trivial irrep names of ``group`` in the package's order, or ``None`` if not computable."""
    try:
        return [rho.name for rho in get_group(group).irreps() if rho.name != "trivial"]
    except (NotImplementedError, ValueError, KeyError) as err:
        logger.info("irreps of %s unavailable (%s); using the names seen in runs", group, err)
        return None


def irrep_dims(group: str, names: Iterable[str] = ()) -> dict[str, int]:
    """Dimension of each irrep of ``group`` by name.

    From ``get_group(group).irreps()`` when the package can build them; otherwise read off the
    paper's naming scheme for ``names`` (``freq_k`` -> 2, ``sign``/``trivial`` -> 1, ``standard``
    of S_n/A_n -> n - 1, ``<k>d`` in the name -> k); names it cannot read are left out.
    """
    try:
        return {rho.name: rho.dim for rho in get_group(group).irreps()}
    except (NotImplementedError, ValueError, KeyError):
        pass
    dims = {}
    degree = re.fullmatch(r"[SA](\d+)", group)
    for name in names:
        if name.startswith("freq_"):
            dims[name] = 2
        elif name in ("trivial", "sign") or name.startswith("sign_"):
            dims[name] = 1
        elif name in ("standard", "standard_sign") and degree:
            dims[name] = int(degree[1]) - 1
        elif (match := re.search(r"(?:^|_)(\d+)d(?:_|$)", name)):
            dims[name] = int(match[1])
    return dims


def _label(group: str, model: str, variant: str) -> str:
    return f"{group} {_MODEL_NAMES.get(model, model)}" + (f" ({variant})" if variant else "")


def _select(runs: Iterable[RunSummary], group: str, model: str, variant: str) -> list[RunSummary]:
    return sorted((r for r in runs if (r.group, r.model, r.variant) == (group, model, variant)),
                  key=run_sort_key)


# --------------------------------------------------------------------------------------------
# Figures over seeds
# --------------------------------------------------------------------------------------------
def fig_irrep_frequency(runs: Iterable[RunSummary], *, group: str, model: str,
                        variant: str = "") -> go.Figure:
    """Bar chart: for each non-trivial irrep, the fraction of seeds in which it is a key irrep."""
    selected = _select(runs, group, model, variant)
    if not selected:
        raise ValueError(f"no runs of {_label(group, model, variant)} to plot")
    counts = Counter(name for run in selected for name in set(run.key_irreps))
    names = irrep_names(group) or sorted(counts, key=lambda n: (-counts[n], n))
    names = [n for n in names if counts[n]] if len(names) > 30 else names
    dims = irrep_dims(group, names)
    fractions = [counts[n] / len(selected) for n in names]
    fig = go.Figure(go.Bar(
        x=[display_irrep(n, group) for n in names], y=fractions,
        text=[f"{counts[n]}/{len(selected)}" for n in names], textposition="outside",
        hovertext=[f"{n} (dim {dims.get(n, '?')})" for n in names]))
    fig.update_layout(title=f"{_label(group, model, variant)}: how often each irrep is key "
                            f"({len(selected)} seeds)",
                      xaxis_title="irrep", yaxis_title="fraction of seeds",
                      yaxis_range=[0, 1.1], template="plotly_white")
    return fig


def fig_key_irrep_count(runs: Iterable[RunSummary], *, group: str, model: str,
                        variant: str = "") -> go.Figure:
    """Bar chart: number of seeds using each number of key irreps."""
    selected = _select(runs, group, model, variant)
    if not selected:
        raise ValueError(f"no runs of {_label(group, model, variant)} to plot")
    counts = Counter(len(run.key_irreps) for run in selected)
    xs = list(range(min(counts), max(counts) + 1))
    fig = go.Figure(go.Bar(x=xs, y=[counts[x] for x in xs],
                           hovertext=[", ".join(f"seed {r.seed}" for r in selected
                                                if len(r.key_irreps) == x) for x in xs]))
    fig.update_layout(title=f"{_label(group, model, variant)}: number of key irreps per seed",
                      xaxis_title="number of key irreps", yaxis_title="seeds",
                      xaxis_dtick=1, template="plotly_white")
    return fig


def fig_learning_order(runs: Iterable[RunSummary], *, group: str, model: str,
                       variant: str = "") -> go.Figure:
    """Scatter: position of each key irrep in its seed's learning order (1 = first) against its dim.

    Points are jittered horizontally; the line joins the mean position per dimension.
    """
    selected = _select(runs, group, model, variant)
    if not selected:
        raise ValueError(f"no runs of {_label(group, model, variant)} to plot")
    names = {n for run in selected for n in run.key_irreps}
    dims = irrep_dims(group, names)
    xs, ys, texts = [], [], []
    for run in selected:
        for position, name in enumerate(run.key_irreps, start=1):
            if name not in dims:
                continue
            jitter = 0.25 * math.sin(7.0 * run.seed + 3.0 * position)  # deterministic jitter
            xs.append(dims[name] + jitter)
            ys.append(position)
            texts.append(f"seed {run.seed}: {display_irrep(name, group)}")
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="markers", text=texts, name="key irrep",
                               marker={"opacity": 0.6}))
    by_dim: dict[int, list[int]] = {}
    for x, y in zip(xs, ys):
        by_dim.setdefault(round(x), []).append(y)
    if by_dim:
        ds = sorted(by_dim)
        fig.add_trace(go.Scatter(x=ds, y=[sum(by_dim[d]) / len(by_dim[d]) for d in ds],
                                 mode="lines+markers", name="mean position"))
    fig.update_layout(title=f"{_label(group, model, variant)}: learning order against irrep dimension",
                      xaxis_title="irrep dimension", yaxis_title="position in learning order",
                      xaxis_dtick=1, template="plotly_white")
    return fig


def fig_grokking(curves: Mapping[int, Sequence[Mapping[str, float]]], *, title: str = "",
                 metrics: Sequence[str] = ("train_loss", "test_loss")) -> go.Figure:
    """Train/test curves of several seeds: ``curves[seed]`` is a list of metric rows with ``epoch``.

    Losses use a log y axis; the x axis is the epoch (log scale, as checkpoints are log-spaced).
    """
    if not curves:
        raise ValueError("fig_grokking needs at least one seed's curve, got none")
    fig = go.Figure()
    dashes = {"train_loss": "dot", "test_loss": "solid", "train_acc": "dot", "test_acc": "solid"}
    # one seed: the metric colours every figure uses; several: one grey level per seed
    palette = ("#000000", "#5a5a5a", "#8c8c8c", "#b4b4b4", "#2b2b2b", "#737373", "#a0a0a0")
    for k, (seed, rows) in enumerate(sorted(curves.items())):
        for metric in metrics:
            points = [(r["epoch"], r[metric]) for r in rows if metric in r and r["epoch"] > 0]
            if not points:
                continue
            fig.add_trace(go.Scatter(
                x=[p[0] for p in points], y=[p[1] for p in points], mode="lines",
                name=f"seed {seed} {metric.replace('_', ' ')}", legendgroup=f"seed {seed}",
                line={"color": palette[k % len(palette)], "dash": dashes.get(metric, "solid")}))
    losses = all(m.endswith("loss") for m in metrics)
    fig.update_layout(title=title or "Training curves", template="plotly_white")
    fig.update_xaxes(**EPOCH_AXIS)
    fig.update_yaxes(**(dict(LOSS_AXIS, title_text="loss") if losses else dict(title_text="value")))
    return fig


def fig_neuron_irreps(fractions, *, irrep_labels: Sequence[str], title: str = "",
                      max_neurons: int | None = None) -> go.Figure:
    """Heat map of ``fractions`` ``[hidden, n_irreps]``: the share of each neuron's variance per irrep.

    Neurons are sorted by their dominant irrep, which shows the clustering of neurons into irreps.
    """
    import numpy as np
    values = np.asarray(fractions, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != len(irrep_labels):
        raise ValueError(f"fractions must have shape [hidden, {len(irrep_labels)}], "
                         f"got {values.shape}")
    order = np.lexsort((-values.max(axis=1), values.argmax(axis=1)))
    if max_neurons is not None:
        order = order[:max_neurons]
    fig = go.Figure(go.Heatmap(z=values[order].T, x=[int(i) for i in order], y=list(irrep_labels),
                               zmin=0.0, zmax=1.0, colorscale="Viridis",
                               colorbar={"title": "fraction"}))
    fig.update_layout(title=title or "Fraction of each neuron's variance in each irrep",
                      xaxis_title="hidden neuron (sorted by dominant irrep)", xaxis_type="category",
                      yaxis_title="irrep", template="plotly_white")
    return fig


def _neuron_fractions(run: RunSummary):
    """``(fractions [hidden, k], labels)`` over a run's key irreps, or ``None`` without weights."""
    if run.path is None or not (run.path / "model.pt").is_file() or not run.key_irreps:
        return None
    try:
        G = get_group(run.group)
    except ValueError:
        return None
    n = G.order
    if n * n * max(run.hidden_dim or 0, 512 if run.model == "T" else 0) > _MAX_NEURON_ELEMENTS:
        logger.info("%s: hidden layer too large for the neuron figure; skipped", run.run)
        return None
    try:
        model = load_run_model(run.path)
        fractions, names = neuron_irrep_fractions(model, G, irreps=run.key_irreps)
    except (FileNotFoundError, NotImplementedError, ValueError, RuntimeError) as err:
        logger.warning("no neuron clustering for %s: %s", run.run, err)
        return None
    return fractions, [display_irrep(n, run.group) for n in names]


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def _png_exporter_available() -> bool:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return True


def write_figure(fig: go.Figure, path: str | Path, *, png: bool | None = None) -> list[Path]:
    """Write ``fig`` as ``path`` (.html, loading ``plotly.min.js`` from its folder) and maybe a PNG.

    ``plotly.min.js`` is written next to it once, so the HTML opens offline.  ``png=None`` writes a
    PNG when kaleido is importable.
    """
    from plotly.offline import get_plotlyjs
    path = Path(path).with_suffix(".html")
    js = path.parent / PLOTLY_JS_NAME
    if not js.is_file():
        atomic_write_text(js, get_plotlyjs())
    written = [atomic_write_text(path, figure_html(fig, include_plotlyjs="directory", full_html=True))]
    if png is None:
        png = _png_exporter_available()
    if png:
        try:
            written.append(atomic_write_bytes(path.with_suffix(".png"), fig.to_image(format="png")))
        except (ValueError, RuntimeError) as err:  # exporter present but not working
            logger.warning("PNG export of %s failed: %s", path.name, err)
    return written


def write_figures(batch_dir: str | Path, out_dir: str | Path | None = None, *,
                  only: str | None = None, runs: Sequence[RunSummary] | None = None,
                  neurons: bool = True) -> dict[str, Path]:
    """Draw every batch figure of ``batch_dir`` into ``out_dir`` (default ``BATCH_DIR/figures``).

    ``runs`` overrides the runs read from the batch (e.g. :func:`rep_theory.analysis.summaries.paper_runs`
    to redraw the paper's figures).  Returns file name -> path of what was written.
    """
    batch_dir = Path(batch_dir)
    out_dir = batch_dir / "figures" if out_dir is None else Path(out_dir)
    if runs is None:
        runs, _ = collect_runs(batch_dir, only=only)
    if not runs:
        raise ValueError(f"no evaluated runs in {batch_dir} to draw; evaluate runs first")
    written: dict[str, Path] = {}

    def save(fig: go.Figure, stem: str) -> None:
        for path in write_figure(fig, out_dir / f"{stem}.html"):
            written[path.name] = path

    combos = sorted({(r.group, r.model, r.variant) for r in runs},
                    key=lambda c: (group_sort_key(c[0]), c[1], c[2]))
    for group, model, variant in combos:
        stem = f"{group}_{model}" + (f"_{variant}" if variant else "")
        save(fig_irrep_frequency(runs, group=group, model=model, variant=variant),
             f"irrep_frequency_{stem}")
        save(fig_key_irrep_count(runs, group=group, model=model, variant=variant),
             f"key_irrep_count_{stem}")
        save(fig_learning_order(runs, group=group, model=model, variant=variant),
             f"learning_order_{stem}")
        curves = {}
        for run in _select(runs, group, model, variant):
            for log_name in ("train_log.csv", "metrics.csv"):  # the trainer's log is denser
                if run.path is not None and (run.path / log_name).is_file():
                    curves[run.seed] = read_metrics_csv(run.path / log_name)
                    break
        if curves:
            save(fig_grokking(curves, title=f"{_label(group, model, variant)}: train (dotted) "
                                            f"and test (solid) loss"), f"grokking_{stem}")
    if neurons:  # one seed (the lowest) per group, model and variant
        firsts = {}
        for run in sorted(runs, key=run_sort_key):
            firsts.setdefault((run.group, run.model, run.variant), run)
        for run in firsts.values():
            result = _neuron_fractions(run)
            if result is not None:
                fractions, labels = result
                save(fig_neuron_irreps(fractions, irrep_labels=labels,
                                       title=f"{run.run}: neuron variance per key irrep"),
                     f"neuron_irreps_{run.run}")
    logger.info("wrote %d figure files to %s", len(written), out_dir)
    return written
