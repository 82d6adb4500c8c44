"""Universality statistics: how often each irrep is a key irrep over seeds, against its dimension and
its smallest rho-set.

Chughtai, Chan and Nanda ("A Toy Model of Universality", ICML 2023) found that networks trained on
the same group with different seeds learn different subsets of irreps, lower-dimensional ones more
often.  Wu, Jaburi, Drori and Gross ("Towards a Unified and Verified Understanding of
Group-Operation Networks", ICLR 2025, arXiv 2410.07476) explain neurons through rho-sets and
suggest the size of the smallest rho-set (:func:`rep_theory.algebra.rhosets.min_rho_set_size`), not
the dimension, orders the irreps by how often they are learned.  Stander et al. ("Grokking Group
Multiplication with Cosets", ICML 2024) read the same neurons as coset detectors.

For each ``(group, model, variant)`` of a list of :class:`~rep_theory.analysis.summaries.RunSummary`
:func:`universality` gives, over the non-trivial irreps (the trivial irrep is never a key irrep):

* each irrep's key-irrep count and frequency over seeds, its dimension and minimal rho-set size;
* Spearman's rank correlation of frequency with minimal rho-set size and with dimension (average
  ranks for ties), with a percentile bootstrap interval over seeds (``resamples`` resamples of the
  runs with replacement, ``numpy.random.default_rng(seed)``; resamples where a correlation is
  undefined, all frequencies equal, are left out of the interval);
* whether frequency is non-increasing in minimal rho-set size (and in dimension): every pair of
  irreps with ``size_i < size_j`` has ``freq_i >= freq_j``; the pairs that break it are listed;
* the distribution of learning orders (``key_reps_in_order.txt``); where the runs only have
  ``key_reps.txt`` (irrep order, e.g. the paper's 50 S5 MLPs) these are key-irrep *sets*.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy.stats import rankdata

from rep_theory.io import atomic_write_text
from rep_theory.algebra.groups import get_group
from rep_theory.algebra.rhosets import min_rho_set_size
from rep_theory.analysis.summaries import RunSummary, parse_run_name, run_sort_key
from rep_theory.training.config import load_config
from rep_theory.training.rundir import key_files_staleness, read_lines

__all__ = ["IrrepFrequency", "Universality", "universality", "spearman", "bootstrap_spearman", "monotone_violations",
           "runs_from_key_reps", "universality_markdown", "universality_csv", "fig_universality",
           "write_universality"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class IrrepFrequency:
    irrep: str
    dim: int
    min_rho_set_size: int
    count: int
    runs: int

    @property
    def frequency(self) -> float:
        return self.count / self.runs if self.runs else float("nan")


@dataclasses.dataclass(frozen=True)
class Universality:
    """The statistics of one ``(group, model, variant)`` (see the module docstring).

    ``spearman_size`` / ``spearman_dim``: ``(rho, low, high)``, the bootstrap interval at ``level``;
    ``orders``: ``[(key irreps tuple, count)]`` most common first; ``ordered``: whether those are
    learning orders (else key-irrep sets in irrep order); ``violations_size`` / ``violations_dim``:
    ``[(less, more)]`` irrep pairs where ``less`` has the smaller size (dim) but the lower frequency.
    """

    group: str
    model: str
    variant: str
    runs: int
    irreps: tuple
    spearman_size: tuple
    spearman_dim: tuple
    level: float
    resamples: int
    orders: tuple
    ordered: bool
    violations_size: tuple
    violations_dim: tuple

    @property
    def monotone_size(self) -> bool:
        return not self.violations_size

    @property
    def monotone_dim(self) -> bool:
        return not self.violations_dim


def spearman(x, y) -> np.ndarray:
    """Spearman's rho of ``x`` ``[k]`` against each row of ``y`` ``[..., k]`` (average ranks); NaN where
    either is constant."""
    rx = rankdata(np.asarray(x, dtype=np.float64))
    ry = rankdata(np.asarray(y, dtype=np.float64), axis=-1)
    rx = rx - rx.mean()
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx ** 2).sum() * (ry ** 2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ry * rx).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)


def bootstrap_spearman(present: np.ndarray, x, *, resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float, float]:
    """``(rho, low, high)``: Spearman's rho of the frequencies ``present.mean(0)`` against ``x`` and its
    percentile interval over ``resamples`` resamples of the rows (runs) of ``present`` ``[runs, k]``."""
    present = np.asarray(present, dtype=np.float64)
    rho = float(spearman(x, present.mean(0)))
    if present.shape[0] == 0 or resamples <= 0:
        return rho, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, present.shape[0], size=(resamples, present.shape[0]))
    boots = spearman(x, present[picks].mean(1))                            # [resamples]
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return rho, float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(boots, [tail, 100 - tail])
    return rho, float(low), float(high)


def monotone_violations(items: Sequence[IrrepFrequency], key: str) -> list[tuple[str, str]]:
    """Pairs ``(i, j)`` with ``key(i) < key(j)`` but ``freq(i) < freq(j)`` (``key``: an attribute name)."""
    out = []
    for i in items:
        for j in items:
            if getattr(i, key) < getattr(j, key) and i.frequency < j.frequency:
                out.append((i.irrep, j.irrep))
    return out


def _is_ordered(run: RunSummary) -> bool:
    # runs read from a CSV carry the ordered column; run directories say so by the file they have
    return run.path is None or (Path(run.path) / "key_reps_in_order.txt").is_file()


def universality(runs: Iterable[RunSummary], *, resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> list[Universality]:
    """The statistics of each ``(group, model, variant)`` among ``runs`` (module docstring), in the
    paper's table order; groups the package cannot build are skipped with a warning."""
    by_key: dict[tuple, list[RunSummary]] = {}
    for run in sorted(runs, key=run_sort_key):
        by_key.setdefault((run.group, run.model, run.variant), []).append(run)
    out = []
    for (group, model, variant), members in by_key.items():
        try:
            G = get_group(group)
        except (ValueError, KeyError) as err:
            logger.warning("universality: skipping %s (%s)", group, err)
            continue
        irreps = [r for r in G.irreps() if r.name != "trivial"]
        names = [r.name for r in irreps]
        unknown = sorted({k for run in members for k in run.key_irreps} - set(names))
        if unknown:
            raise ValueError(f"runs of {group} name key irreps {unknown} that {group} does not have; "
                             f"expected names among {names}")
        present = np.array([[name in run.key_irreps for name in names] for run in members], dtype=np.float64)
        sizes = [min_rho_set_size(G, r) for r in irreps]
        dims = [r.dim for r in irreps]
        items = tuple(IrrepFrequency(r.name, r.dim, s, int(present[:, k].sum()), len(members))
                      for k, (r, s) in enumerate(zip(irreps, sizes)))
        orders = Counter(tuple(run.key_irreps) for run in members).most_common()
        out.append(Universality(
            group, model, variant, len(members), items,
            bootstrap_spearman(present, sizes, resamples=resamples, seed=seed, level=level),
            bootstrap_spearman(present, dims, resamples=resamples, seed=seed, level=level),
            level, resamples, tuple(orders), all(_is_ordered(r) for r in members),
            tuple(monotone_violations(items, "min_rho_set_size")), tuple(monotone_violations(items, "dim"))))
    return out


def runs_from_key_reps(folder: str | Path) -> list[RunSummary]:
    """Summaries of the run directories of ``folder`` that have ``cfg.json`` and key irreps
    (``key_reps_in_order.txt``, else ``key_reps.txt``), without evaluation (no metrics): e.g. the
    paper's 50 S5 MLPs in ``reference/paper_s5_mlp_50`` (never evaluated here: their files are taken
    as released).  A run evaluated here whose files are stale
    (:func:`~rep_theory.training.rundir.summary_staleness`: retrained, weights deleted, config
    edited since) is skipped with a warning."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of run directories")
    runs = []
    for run_dir in sorted(p for p in folder.iterdir() if (p / "cfg.json").is_file()):
        files = [run_dir / name for name in ("key_reps_in_order.txt", "key_reps.txt") if (run_dir / name).is_file()]
        if not files:
            logger.info("%s: no key irreps file; skipped", run_dir.name)
            continue
        reason = key_files_staleness(run_dir)
        if reason is not None:   # evaluated here, but the files describe other weights or another config
            logger.warning("%s: its key irreps files are stale (%s); skipped", run_dir.name, reason)
            continue
        cfg = load_config(run_dir)
        runs.append(RunSummary(run=run_dir.name, group=cfg.spec, model=cfg.model_short, seed=cfg.seed,
                               variant=(parse_run_name(run_dir.name) or {}).get("variant", ""),
                               frac_train=cfg.frac_train, num_epochs=cfg.num_epochs, embed_dim=cfg.embed_dim,
                               hidden_dim=cfg.hidden_dim, key_irreps=read_lines(files[0]), path=run_dir))
    runs.sort(key=run_sort_key)
    return runs


# --------------------------------------------------------------------------------------------------
# Tables and figure
# --------------------------------------------------------------------------------------------------
def _title(u: Universality) -> str:
    return f"{u.group} {u.model}{f' ({u.variant})' if u.variant else ''}, {u.runs} seeds"


def _interval(t: tuple, level: float) -> str:
    rho, lo, hi = t
    return f"{rho:+.3f} ({100 * level:.0f}% bootstrap interval {lo:+.3f} to {hi:+.3f})"


def universality_markdown(results: Sequence[Universality], *, top_orders: int = 8) -> str:
    """Markdown: per ``(group, model, variant)`` the irrep table, the correlations, monotonicity, orders."""
    lines = []
    for u in results:
        lines += [f"### {_title(u)}", "",
                  "| irrep | dim | min rho-set size | key in | frequency |", "|---|---:|---:|---:|---:|"]
        for it in sorted(u.irreps, key=lambda i: (i.min_rho_set_size, -i.frequency, i.irrep)):
            lines.append(f"| {it.irrep} | {it.dim} | {it.min_rho_set_size} | {it.count}/{it.runs} | {it.frequency:.2f} |")
        lines += ["", f"- Spearman(frequency, min rho-set size) = {_interval(u.spearman_size, u.level)}",
                  f"- Spearman(frequency, dimension) = {_interval(u.spearman_dim, u.level)}",
                  f"  ({u.resamples} bootstrap resamples of the seeds)"]
        for what, bad, monotone in (("min rho-set size", u.violations_size, u.monotone_size),
                                    ("dimension", u.violations_dim, u.monotone_dim)):
            if monotone:
                lines.append(f"- frequency is non-increasing in {what}")
            else:
                pairs = ", ".join(f"{b} more often than {a}" for a, b in bad)
                lines.append(f"- frequency is NOT non-increasing in {what}: {pairs}")
        kind = "learning orders" if u.ordered else "key-irrep sets (irrep order; no learning order recorded)"
        lines += ["", f"Most common {kind}:", ""]
        lines += [f"- {count:>3} x {' > '.join(order) if u.ordered else ', '.join(order) or '(none)'}"
                  for order, count in u.orders[:top_orders]]
        if len(u.orders) > top_orders:
            lines.append(f"- ... {len(u.orders) - top_orders} more")
        lines.append("")
    return "\n".join(lines)


CSV_FIELDS = ("group", "model", "variant", "runs", "irrep", "dim", "min_rho_set_size", "count", "frequency",
              "spearman_size", "spearman_size_low", "spearman_size_high", "spearman_dim", "spearman_dim_low",
              "spearman_dim_high", "monotone_in_size", "monotone_in_dim")


def universality_csv(results: Sequence[Universality]) -> str:
    """CSV text: one row per ``(group, model, variant, irrep)``, correlations repeated on each row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for u in results:
        for it in u.irreps:
            writer.writerow({"group": u.group, "model": u.model, "variant": u.variant, "runs": u.runs,
                             "irrep": it.irrep, "dim": it.dim, "min_rho_set_size": it.min_rho_set_size,
                             "count": it.count, "frequency": f"{it.frequency:.6g}",
                             **{f"spearman_size{s}": f"{v:.6g}" for s, v in zip(("", "_low", "_high"), u.spearman_size)},
                             **{f"spearman_dim{s}": f"{v:.6g}" for s, v in zip(("", "_low", "_high"), u.spearman_dim)},
                             "monotone_in_size": u.monotone_size, "monotone_in_dim": u.monotone_dim})
    return buffer.getvalue()


def fig_universality(results: Sequence[Universality]):
    """Plotly figure: key-irrep frequency against minimal rho-set size, one labelled point per irrep,
    one trace per ``(group, model, variant)``."""
    import plotly.graph_objects as go
    fig = go.Figure()
    for u in results:
        fig.add_trace(go.Scatter(
            x=[it.min_rho_set_size for it in u.irreps], y=[it.frequency for it in u.irreps],
            mode="markers+text", text=[it.irrep for it in u.irreps], textposition="top center",
            name=f"{_title(u)}: Spearman {u.spearman_size[0]:+.2f}",
            customdata=[[it.dim, it.count, it.runs] for it in u.irreps],
            hovertemplate="%{text}: min rho-set %{x}, dim %{customdata[0]}, key in %{customdata[1]}/%{customdata[2]}"
                          "<extra></extra>"))
    fig.update_layout(title="Key-irrep frequency over seeds vs smallest rho-set size",
                      xaxis_title="minimal rho-set size |G| / max|H| (log scale)", xaxis_type="log",
                      yaxis_title="fraction of seeds with the irrep as a key irrep", yaxis_range=[-0.05, 1.08],
                      template="plotly_white")
    return fig


def write_universality(results: Sequence[Universality], out_dir: str | Path) -> list[Path]:
    """Write ``universality.csv``, ``universality.md`` and ``universality.html`` (plotly inlined, opens
    offline) into ``out_dir`` atomically; returns the paths."""
    out_dir = Path(out_dir)
    html = fig_universality(results).to_html(include_plotlyjs=True, full_html=True)
    return [atomic_write_text(out_dir / "universality.csv", universality_csv(results)),
            atomic_write_text(out_dir / "universality.md", universality_markdown(results)),
            atomic_write_text(out_dir / "universality.html", html)]
