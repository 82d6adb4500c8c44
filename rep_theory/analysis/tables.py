"""Tables over many runs: the paper's universality tables from run summaries.

Conventions
-----------
* Columns map to summary metrics as in the paper's code (checked line by line against
  ``reference_data/paper_*.csv`` in ``tests/test_analysis.py``):

  ============================  =================================
  column                        summary_metrics.json key
  ============================  =================================
  Test Loss                     ``test_loss``
  Exc. Loss                     ``total_hidden_excluded_loss``
  Res. Loss                     ``total_hidden_restricted_loss``
  Logit FVE                     ``percent_logits_explained``
  $W_a$ FVE (Transformer $W_E$) ``percent_x_embed_explained``
  $W_b$ FVE                     ``percent_y_embed_explained``
  $W_U$ FVE                     ``percent_unembed_explained``
  MLP FVE                       ``percent_hidden_explained``
  MLP $\\rho(ab)$ FVE            ``percent_hidden_xy_explained``
  ============================  =================================

* Formatting is the paper's: groups as LaTeX (``$C_{113}$``), key irreps comma separated in
  learning order with cyclic/dihedral ``freq_k`` shown as ``k`` and group prefixes dropped
  (``s5_5d_a`` -> ``5d-a``, ``standard_sign`` -> ``standard-sign``); losses ``%.2e`` except the
  excluded loss (``%.2f``); FVEs as percentages ``93.68\\%``.
* Per-run tables list groups in the paper's order (cyclic, dihedral, symmetric, alternating, then
  others; by order within a family), then seed.  Average tables are sorted by the group's LaTeX
  label, as the paper's are, and their metric columns carry the paper's model prefix (``M`` for
  the MLP, ``T`` for the transformer, ``B`` for the bilinear network).
* Runs that differ from the paper's defaults (a *variant*, e.g. ``hidden_dim_32``) go to tables of
  their own (``mlp_hidden_dim_32_all.csv``); the main tables hold the default-width runs.

Everything here is a pure function of run summaries except :func:`collect_runs` (reads a batch
directory) and :func:`write_tables` (writes ``BATCH_DIR/tables/`` atomically).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import re
from pathlib import Path
from typing import Iterable, Sequence

from rep_theory.analysis import paper_artifacts
from rep_theory.analysis.summaries import (SUMMARY_KEYS, RunSummary, _split_factors, collect_runs,
                                           paper_runs, pending_reason, reference_text, run_sort_key)
from rep_theory.io import atomic_write_text

__all__ = ["Table", "paper_table", "run_table", "average_table", "comparison_table", "runs_table",
           "display_irrep", "group_label", "write_tables", "MODEL_TABLE_NAMES", "comparison_notes_markdown"]

logger = logging.getLogger(__name__)

GENERALISED_ACC = 0.99
"""Test accuracy below which a run's key irreps are marked "not generalised" in the tables."""

MODEL_TABLE_NAMES = {"MLP": "mlp", "T": "transformer", "B": "bilinear"}
"""Run-name model code -> table file stem (``mlp_all.csv`` is the paper's ``paper_mlp_all.csv``)."""

# (column header, summary key, format kind) for each model's per-run table, in the paper's order.
_LOSS_COLUMNS = (("Test Loss", "test_loss", "sci"),
                 ("Exc. Loss", "total_hidden_excluded_loss", "fixed"),
                 ("Res. Loss", "total_hidden_restricted_loss", "sci"))
_LOGIT_COLUMN = (("Logit FVE", "percent_logits_explained", "pct"),)
_TWO_EMBED = (("$W_a$ FVE", "percent_x_embed_explained", "pct"),
              ("$W_b$ FVE", "percent_y_embed_explained", "pct"))
_ONE_EMBED = (("$W_E$ FVE", "percent_x_embed_explained", "pct"),)
_REST = (("$W_U$ FVE", "percent_unembed_explained", "pct"),
         ("MLP FVE", "percent_hidden_explained", "pct"),
         ("MLP $\\rho(ab)$ FVE", "percent_hidden_xy_explained", "pct"))
_FVE_COLUMNS = {"MLP": _TWO_EMBED + _REST, "B": _TWO_EMBED + _REST, "T": _ONE_EMBED + _REST}


def group_label(spec: str) -> str:
    """The paper's LaTeX label of a group: ``"C113"`` -> ``"$C_{113}$"``, ``"C4xC6"`` -> ``"$C_{4} \\times C_{6}$"``."""
    factors = _split_factors(spec)
    if factors is None:
        return spec.replace("_", "\\_")
    parts = [(f"\\mathrm{{{family}}}" if len(family) > 1 else family) + f"_{{{n}}}"
             for family, n in factors]
    return "$" + " \\times ".join(parts) + "$"


def display_irrep(name: str, group: str) -> str:
    """An irrep name as the paper's tables show it.

    ``freq_32`` -> ``32`` (cyclic and dihedral frequencies), ``s5_5d_a`` -> ``5d-a`` (group prefix
    dropped), ``standard_sign`` -> ``standard-sign``; irreps named from their partition show it:
    ``s4_2_2`` -> ``(2,2)``.
    """
    if re.fullmatch(r"freq_\d+", name):
        return name[len("freq_"):]
    prefix = group.lower() + "_"
    if name.startswith(prefix):
        name = name[len(prefix):]
        if re.fullmatch(r"\d+(_\d+)*", name):  # named from its partition: s4_2_2 -> (2,2)
            return "(" + name.replace("_", ",") + ")"
    return name.replace("_", "-")


def _format_value(value: float, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if kind == "sci":
        return f"{value:.2e}"
    if kind == "fixed":
        return f"{value:.2f}"
    if kind == "pct":
        return f"{100 * value:.2f}\\%"
    raise ValueError(f"unknown format kind {kind!r}; expected 'sci', 'fixed' or 'pct'")


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Table:
    """A table of display strings: ``header`` ``[n_columns]`` and ``rows`` ``[n_rows][n_columns]``.

    Renders as CSV (the paper's files), LaTeX (``tabular``) and Markdown; cells are already in the
    paper's LaTeX-flavoured notation (``$C_{113}$``, ``93.68\\%``), which GitHub Markdown renders.
    """

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...] = ()
    title: str = ""

    def __post_init__(self):
        for k, row in enumerate(self.rows):
            if len(row) != len(self.header):
                raise ValueError(f"row {k} has {len(row)} cells, expected {len(self.header)} "
                                 f"(header {self.header})")

    @classmethod
    def from_csv(cls, text: str, *, title: str = "") -> "Table":
        reader = csv.reader(io.StringIO(text))
        header, *rows = [tuple(row) for row in reader if row]
        return cls(header=header, rows=tuple(rows), title=title)

    def column(self, name: str) -> list[str]:
        """The cells of column ``name``."""
        try:
            k = self.header.index(name)
        except ValueError:
            raise KeyError(f"no column {name!r}; columns are {self.header}") from None
        return [row[k] for row in self.rows]

    def records(self) -> list[dict[str, str]]:
        """Rows as dicts keyed by header."""
        return [dict(zip(self.header, row)) for row in self.rows]

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return buffer.getvalue()

    def to_markdown(self) -> str:
        def cell(text: str) -> str:
            return markdown_text(text).replace("|", "\\|")
        lines = ["| " + " | ".join(cell(h) for h in self.header) + " |",
                 "|" + "|".join("---:" if _numeric_column(self, k) else "---"
                                for k in range(len(self.header))) + "|"]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        align = "".join("r" if _numeric_column(self, k) else "l" for k in range(len(self.header)))
        lines = [f"\\begin{{tabular}}{{{align}}}", "\\hline",
                 " & ".join(self.header) + " \\\\", "\\hline"]
        lines += [" & ".join(_latex_cell(c) for c in row) + " \\\\" for row in self.rows]
        lines += ["\\hline", "\\end{tabular}"]
        return "\n".join(lines) + "\n"


def markdown_text(text: str) -> str:
    """A cell in the paper's LaTeX notation as plain Markdown: ``$C_{113}$`` -> ``C113``,
    ``$C_{4} \\times C_{6}$`` -> ``C4×C6``, ``93.68\\%`` -> ``93.68%``, ``$W_a$`` -> ``W_a``,
    ``$\\rho(ab)$`` -> ``ρ(ab)``."""
    if "$" not in text and "\\" not in text:
        return text
    out = text.replace("\\%", "%").replace("\\times", "×").replace("\\rho", "ρ").replace("\\_", "_")
    out = re.sub(r"\\mathrm\{([^}]*)\}", r"\1", out)
    out = re.sub(r"_\{([^}]*)\}", r"\1", out)
    return out.replace("$", "").replace(" × ", "×")


def _latex_cell(text: str) -> str:
    if "$" in text or "\\" in text:
        return text  # already LaTeX
    return text.replace("_", "\\_").replace("&", "\\&").replace("#", "\\#")


def _numeric_column(table: Table, k: int) -> bool:
    cells = [row[k] for row in table.rows if row[k]]
    return bool(cells) and all(re.fullmatch(r"-?[\d.]+(e[+-]\d+)?(\\%)?", c) for c in cells)


def _table_columns(model: str) -> tuple[tuple[str, str, str], ...]:
    if model not in _FVE_COLUMNS:
        raise ValueError(f"unknown model code {model!r}; expected one of {sorted(_FVE_COLUMNS)}")
    return _LOSS_COLUMNS + _LOGIT_COLUMN + _FVE_COLUMNS[model]


def run_table(runs: Iterable[RunSummary], *, model: str = "MLP", variant: str = "",
              mark_runs: bool = True) -> Table:
    """The paper's per-run table for one model (``"MLP"``, ``"T"`` or ``"B"``) and variant.

    Columns: Group, Seed, Key Irreps, Test Loss, Exc. Loss, Res. Loss, Logit FVE, the embedding
    FVE(s) ($W_a$, $W_b$; the transformer's $W_E$), $W_U$ FVE, MLP FVE, MLP $\\rho(ab)$ FVE.
    ``mark_runs``: the Key Irreps cell says when a run did not generalise (test accuracy below
    :data:`GENERALISED_ACC`); off to reproduce the paper's tables cell for cell.
    """
    columns = _table_columns(model)
    selected = sorted((r for r in runs if r.model == model and r.variant == variant),
                      key=run_sort_key)
    rows = []
    for run in selected:
        irreps = ", ".join(display_irrep(name, run.group) for name in run.key_irreps)
        if not run.order_known and irreps:  # never an unordered list passed off as a learning order
            irreps = f"order not evaluated: {irreps}"
        acc = run.metric("test_acc")
        if mark_runs and irreps and not math.isnan(acc) and acc < GENERALISED_ACC:
            irreps += f" (not generalised: test acc {100 * acc:.1f}%)"
        rows.append((group_label(run.group), str(run.seed), irreps,
                     *(_format_value(run.metric(key), kind) for _, key, kind in columns)))
    header = ("Group", "Seed", "Key Irreps", *(name for name, _, _ in columns))
    return Table(header=header, rows=tuple(rows), title=_title(model, variant, "per run"))


def _average_columns(model: str) -> tuple[tuple[str, str, str], ...]:
    return _FVE_COLUMNS[model] + _LOSS_COLUMNS if model in _FVE_COLUMNS else _table_columns(model)


def average_table(runs: Iterable[RunSummary], *, model: str = "MLP", variant: str = "",
                  prefix: str | None = None) -> Table:
    """Per-group means over seeds, as the paper's ``paper_mlp_avg.csv`` / ``paper_transformer_avg.csv``.

    Columns: Group, then (with the model prefix, ``M``/``T``/``B``) the embedding, unembedding
    and MLP FVEs, Test Loss, Exc. Loss, Res. Loss.  Means are of the raw values; rows are sorted by
    the group's LaTeX label.
    """
    columns = _average_columns(model)
    prefix = model[0] if prefix is None else prefix
    by_group: dict[str, list[RunSummary]] = {}
    for run in runs:
        if run.model == model and run.variant == variant:
            by_group.setdefault(run.group, []).append(run)
    rows = []
    for group in sorted(by_group, key=group_label):
        members = by_group[group]
        means = [_mean([run.metric(key) for run in members]) for _, key, _ in columns]
        rows.append((group_label(group),
                     *(_format_value(m, kind) for m, (_, _, kind) in zip(means, columns))))
    header = ("Group", *(prefix + name for name, _, _ in columns))
    return Table(header=header, rows=tuple(rows), title=_title(model, variant, "mean over seeds"))


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def _title(model: str, variant: str, what: str) -> str:
    names = {"MLP": "MLP", "T": "Transformer", "B": "Bilinear"}
    return f"{names.get(model, model)}{' ' + variant if variant else ''}, {what}"


def comparison_table(ours: Sequence[RunSummary], paper: Sequence[RunSummary], *,
                     model: str = "MLP", variant: str = "", average: bool = False,
                     match_config: bool = False) -> Table:
    """Side by side with the paper: for every (group, seed) present in both, our row then the paper's.

    Columns are the per-run (``average=False``) or per-group (``average=True``) table's, after
    a ``Source`` column (``ours`` / ``paper``); per-run tables add ``Same Key Irreps`` (``yes``/``no``
    on our row: the same set of key irreps as the paper's run).  Averages compare over the seeds
    both have, listed in a ``Seeds`` column.

    A last ``Notes`` column names, per row, the artifacts of :mod:`rep_theory.analysis.paper_artifacts`
    and the columns they touch (``a5-3d-not-irreps: Key Irreps, Logit FVE``); the paper's chunked
    S6 transformer losses are shown divided by their factor (on the mean scale) and noted so.  Our
    row notes a config that differs from the paper's run (``config-differs``) and a learning-order
    rule other than the paper's (``learning-order-rule``).  ``match_config=True`` leaves out the
    pairs whose configs differ instead.
    """
    def key(run: RunSummary) -> tuple:
        return (run.group, run.seed)
    ours = [r for r in ours if r.model == model and r.variant == variant]
    paper_by_key = {key(r): r for r in paper if r.model == model and r.variant == variant}
    matched = [(r, paper_by_key[key(r)]) for r in sorted(ours, key=run_sort_key)
               if key(r) in paper_by_key]
    if match_config:
        matched = [(m, t) for m, t in matched if not paper_artifacts.config_differences(m, t)]
    if not average:
        base = run_table([], model=model)
        header = base.header[:2] + ("Source", "Same Key Irreps") + base.header[2:] + ("Notes",)
        rows = []
        for mine, theirs in matched:
            notes = _comparison_notes(mine, theirs, model)
            for source, run in (("ours", mine), ("paper", paper_artifacts.on_mean_scale(theirs))):
                row = run_table([run], model=model, variant=variant).rows[0]
                same = ("yes" if set(mine.key_irreps) == set(theirs.key_irreps) else "no") \
                    if source == "ours" else ""
                rows.append(row[:2] + (source, same) + row[2:] + (_join_notes(notes[source]),))
        return Table(header=header, rows=tuple(rows),
                     title=_title(model, variant, "per run, ours vs paper"))
    base = average_table([], model=model)
    header = base.header[:1] + ("Source", "Seeds") + base.header[1:] + ("Notes",)
    rows = []
    groups: dict[str, list[tuple[RunSummary, RunSummary]]] = {}
    for pair in matched:
        groups.setdefault(pair[0].group, []).append(pair)
    for group in sorted(groups, key=group_label):
        seeds = " ".join(str(m.seed) for m, _ in groups[group])
        notes = {"ours": {}, "paper": {}}
        for mine, theirs in groups[group]:
            for source, entries in _comparison_notes(mine, theirs, model).items():
                for note, columns in entries.items():
                    merged = notes[source].setdefault(note, [])
                    merged += [c for c in columns if c not in merged]
        for source, index in (("ours", 0), ("paper", 1)):
            members = [pair[index] if index == 0 else paper_artifacts.on_mean_scale(pair[index])
                       for pair in groups[group]]
            row = average_table(members, model=model).rows[0]
            rows.append(row[:1] + (source, seeds) + row[1:] + (_join_notes(notes[source]),))
    return Table(header=header, rows=tuple(rows),
                 title=_title(model, variant, "mean over seeds, ours vs paper"))


def _comparison_notes(mine: RunSummary, theirs: RunSummary, model: str) -> dict[str, dict[str, list[str]]]:
    """``{"ours"|"paper": {note: [column, ...]}}`` for one matched pair (see :func:`comparison_table`)."""
    columns = {key: name for name, key, _ in _table_columns(model)}
    columns[paper_artifacts.KEY_IRREPS] = "Key Irreps"
    paper_notes: dict[str, list[str]] = {}
    for artifact, keys in paper_artifacts.affected_keys(theirs, columns).items():
        label = artifact
        if artifact == "s6-chunked-loss":
            factors = sorted({paper_artifacts.paper_loss_scale(theirs, k) for k in keys})
            label += " (paper / " + ", ".join(f"{f:g}" for f in factors) + ")"
        paper_notes[label] = [columns[k] for k in columns if k in keys]
    our_notes: dict[str, list[str]] = {}
    differences = paper_artifacts.config_differences(mine, theirs)
    if differences:
        our_notes["config-differs (" + ", ".join(f"{f} {a} vs paper {b}" for f, (a, b) in differences.items())
                  + ")"] = [f"seed {mine.seed}"]
    rule = paper_artifacts.order_rule(mine)
    if rule != "paper":
        our_notes[f"learning-order-rule ({rule})"] = ["Key Irreps"]
    return {"ours": our_notes, "paper": paper_notes}


def _join_notes(notes: dict[str, list[str]]) -> str:
    return "; ".join(f"{note}: {', '.join(cols)}" if cols else note for note, cols in notes.items())


def comparison_notes_markdown(tables: Iterable[Table]) -> str:
    """The explanation of every artifact id that a ``Notes`` cell of ``tables`` names ("" if none)."""
    cells = [row[-1] for t in tables if t.header and t.header[-1] == "Notes" for row in t.rows]
    used = [a for a in paper_artifacts.ARTIFACTS.values() if any(a.id in cell for cell in cells)]
    if not used:
        return ""
    lines = ["## Notes on the comparisons with the paper\n",
             "Ids in the `Notes` columns (see the README, \"Where the paper's numbers cannot be "
             "reproduced, and why\"):\n"]
    lines += [f"- `{a.id}`: {a.title}. {a.evidence}" for a in used]
    return "\n".join(lines) + "\n"


_RUNS_CSV_COLUMNS = ("run", "group", "model", "variant", "seed", "frac_train", "num_epochs",
                     "embed_dim", "hidden_dim", "key_reps_in_order") + SUMMARY_KEYS


def runs_table(runs: Iterable[RunSummary]) -> Table:
    """One raw row per run (full-precision metrics): ``runs.csv``, readable by :func:`runs_from_csv`."""
    rows = []
    for run in sorted(runs, key=run_sort_key):
        values = {"run": run.run, "group": run.group, "model": run.model, "variant": run.variant,
                  "seed": run.seed, "frac_train": run.frac_train, "num_epochs": run.num_epochs,
                  "embed_dim": run.embed_dim, "hidden_dim": run.hidden_dim,
                  "key_reps_in_order": ";".join(run.key_irreps)}
        values.update({key: run.metrics.get(key) for key in SUMMARY_KEYS})
        rows.append(tuple("" if values[c] is None else str(values[c]) for c in _RUNS_CSV_COLUMNS))
    return Table(header=_RUNS_CSV_COLUMNS, rows=tuple(rows), title="All evaluated runs")


# --------------------------------------------------------------------------------------------
# Writing a batch's tables
# --------------------------------------------------------------------------------------------
def write_tables(batch_dir: str | Path, out_dir: str | Path | None = None, *,
                 only: str | None = None, compare_with_paper: bool = True) -> dict[str, Path]:
    """Write every table of a batch directory to ``out_dir`` (default ``BATCH_DIR/tables``).

    Files (each table as ``.csv``, ``.tex`` and ``.md``; ``<m>`` is ``mlp``, ``transformer`` or
    ``bilinear``, ``<v>`` a variant suffix such as ``_hidden_dim_32``):

    * ``<m><v>_all``: per-run table; ``<m><v>_avg``: per-group means over seeds;
    * ``compare_<m><v>_all`` / ``compare_<m><v>_avg``: ours next to the paper's values, for the
      (group, seed) pairs the paper also trained, with a ``Notes`` column naming the paper's
      artifacts (:mod:`rep_theory.analysis.paper_artifacts`; explained at the end of ``tables.md``);
    * ``runs.csv``: raw metrics of every evaluated run; ``tables.md``: all tables in one document,
      with the runs not evaluated yet listed at the end.

    Returns a dict from file name to written path.  Raises ``ValueError`` when the batch holds no
    evaluated run.
    """
    batch_dir = Path(batch_dir)
    out_dir = batch_dir / "tables" if out_dir is None else Path(out_dir)
    runs, pending = collect_runs(batch_dir, only=only)
    if not runs:
        raise ValueError(f"batch directory {batch_dir} holds no evaluated run "
                         f"({len(pending)} pending); evaluate runs first")
    reference = paper_runs() if compare_with_paper else []
    tables: dict[str, Table] = {"runs": runs_table(runs)}
    for model, variant in sorted({(r.model, r.variant) for r in runs},
                                 key=lambda mv: (("MLP", "T", "B").index(mv[0]), mv[1])):
        stem = MODEL_TABLE_NAMES[model] + (f"_{variant}" if variant else "")
        tables[f"{stem}_all"] = run_table(runs, model=model, variant=variant)
        tables[f"{stem}_avg"] = average_table(runs, model=model, variant=variant)
        for average, suffix in ((False, "all"), (True, "avg")):
            comparison = comparison_table(runs, reference, model=model, variant=variant,
                                          average=average)
            if comparison.rows:
                tables[f"compare_{stem}_{suffix}"] = comparison
    written: dict[str, Path] = {}
    for name, table in tables.items():
        written[f"{name}.csv"] = atomic_write_text(out_dir / f"{name}.csv", table.to_csv())
        if name != "runs":
            written[f"{name}.tex"] = atomic_write_text(out_dir / f"{name}.tex", table.to_latex())
            written[f"{name}.md"] = atomic_write_text(out_dir / f"{name}.md", table.to_markdown())
    sections = [f"# Tables for `{batch_dir.name}`\n",
                f"{len(runs)} evaluated run(s). Losses: test, total hidden excluded (Exc.) and "
                "restricted (Res.); FVE: fraction of variance explained by the key irreps.\n"]
    for name, table in tables.items():
        if name != "runs":
            sections.append(f"## {table.title} (`{name}`)\n\n{table.to_markdown()}")
    notes = comparison_notes_markdown(t for n, t in tables.items() if n.startswith("compare_"))
    if notes:
        sections.append(notes)
    if pending:
        sections.append("## Left out: not evaluated, or evaluated on other weights\n\n"
                        + "\n".join(f"- {p}: {pending_reason(batch_dir / p) or 'unreadable'}" for p in pending)
                        + "\n")
    written["tables.md"] = atomic_write_text(out_dir / "tables.md", "\n".join(sections))
    logger.info("wrote %d table files to %s", len(written), out_dir)
    return written


def paper_table(name: str) -> "Table":
    """One of the paper's tables as shipped: ``"mlp_all"``, ``"mlp_avg"``, ``"transformer_all"``, ``"transformer_avg"``."""
    allowed = ("mlp_all", "mlp_avg", "transformer_all", "transformer_avg")
    if name not in allowed:
        raise ValueError(f"unknown paper table {name!r}; expected one of {allowed}")
    return Table.from_csv(reference_text(f"paper_{name}.csv"))
