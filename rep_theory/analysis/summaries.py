"""Tables over many runs (layer 8): the paper's universality tables from a batch directory.

A *batch directory* holds one run directory per trained model, named as the paper named them
(``S5_MLP_seed1``, ``C113_T_seed3``, ``S5_MLP_hidden_dim_32_seed1``).  An evaluated run directory
has ``cfg.json``, ``summary_metrics.json`` (metrics of the final model) and
``key_reps_in_order.txt`` (key irreps in the order they were learned); the paper's own run
directories have exactly this layout and load as they are.

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
import json
import logging
import math
import re
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from rep_theory.io import atomic_write_text

__all__ = ["RunSummary", "Table", "load_run", "collect_runs", "runs_from_csv", "paper_runs",
           "paper_table", "run_table", "average_table", "comparison_table", "runs_table",
           "display_irrep", "group_label", "group_sort_key", "run_sort_key", "parse_run_name", "model_code",
           "group_spec_from_config", "write_tables", "MODEL_CODES", "MODEL_TABLE_NAMES",
           "KEY_IRREP_THRESHOLD"]

logger = logging.getLogger(__name__)

KEY_IRREP_THRESHOLD = 0.005
"""Final logit similarity above which a non-trivial irrep is *key* (the paper's threshold)."""

MODEL_CODES = {"OneLayerMLP": "MLP", "MLP": "MLP", "mlp": "MLP",
               "Transformer": "T", "T": "T", "transformer": "T",
               "BilinearNet": "B", "Bilinear": "B", "B": "B", "bilinear": "B"}
"""cfg.json ``model`` values (the paper's class names and this package's short codes) -> run-name code."""

MODEL_TABLE_NAMES = {"MLP": "mlp", "T": "transformer", "B": "bilinear"}
"""Run-name model code -> table file stem (``mlp_all.csv`` is the paper's ``paper_mlp_all.csv``)."""

_PAPER_FAMILIES = {"CyclicGroup": "C", "DihedralGroup": "D", "SymmetricGroup": "S",
                   "AlternatingGroup": "A"}
_FAMILY_ORDER = {"C": 0, "D": 1, "S": 2, "A": 3}
_RUN_NAME = re.compile(r"^(?P<group>[A-Za-z0-9]+)_(?P<model>MLP|T|B)(?:_(?P<variant>.+?))?"
                       r"_seed(?P<seed>\d+)$")

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

SUMMARY_KEYS = ("test_loss", "test_acc", "total_hidden_excluded_loss",
                "total_hidden_restricted_loss", "percent_logits_explained",
                "percent_x_embed_explained", "percent_y_embed_explained",
                "percent_unembed_explained", "percent_hidden_explained",
                "percent_hidden_xy_explained")
"""Summary metrics the tables use (the metric columns of ``runs.csv`` and ``paper_runs.csv``)."""


# --------------------------------------------------------------------------------------------
# Run summaries
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What the tables need from one evaluated run.

    Attributes
    ----------
    run : str
        Run directory name, e.g. ``"S5_MLP_seed1"``.
    group : str
        Group spec, e.g. ``"S5"``.
    model : str
        ``"MLP"``, ``"T"`` or ``"B"``.
    seed : int
    variant : str
        What the run name adds between model and seed (``"hidden_dim_32"``), ``""`` for the
        paper's default configuration.
    frac_train, num_epochs, embed_dim, hidden_dim : float, int, int, int
        From ``cfg.json`` (``None`` where absent).
    metrics : Mapping[str, float]
        The summary metrics (``summary_metrics.json``), at least :data:`SUMMARY_KEYS` for tables.
    key_irreps : tuple[str, ...]
        Key irreps in learning order (package/paper irrep names).
    path : Path or None
        The run directory, ``None`` for runs read from a CSV.
    """

    run: str
    group: str
    model: str
    seed: int
    variant: str = ""
    frac_train: float | None = None
    num_epochs: int | None = None
    embed_dim: int | None = None
    hidden_dim: int | None = None
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict, compare=False)
    key_irreps: tuple[str, ...] = ()
    path: Path | None = dataclasses.field(default=None, compare=False)

    def metric(self, key: str) -> float:
        """The summary metric ``key``; ``nan`` when the run lacks it."""
        value = self.metrics.get(key)
        return float("nan") if value is None else float(value)


def model_code(model: str) -> str:
    """Map a cfg.json model name (``"OneLayerMLP"``, ``"Transformer"``, ``"MLP"``...) to its run-name code."""
    try:
        return MODEL_CODES[str(model)]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(MODEL_CODES)}") from None


def group_spec_from_config(cfg: Mapping) -> str:
    """The group spec (``"C113"``) from cfg.json: the paper's ``group``/``group_parameter`` or a spec."""
    group = cfg.get("group")
    if group is None:
        raise ValueError(f"cfg.json has no 'group' key (keys: {sorted(cfg)})")
    group = str(group)
    if group in _PAPER_FAMILIES:
        parameter = cfg.get("group_parameter")
        if parameter is None:
            raise ValueError(f"cfg.json group {group!r} needs a 'group_parameter', got none")
        return f"{_PAPER_FAMILIES[group]}{int(parameter)}"
    return group


def parse_run_name(name: str) -> dict | None:
    """Split a run name into ``group``, ``model``, ``variant``, ``seed``; ``None`` if it is not one.

    >>> parse_run_name("S5_MLP_hidden_dim_32_seed7")
    {'group': 'S5', 'model': 'MLP', 'variant': 'hidden_dim_32', 'seed': 7}
    """
    match = _RUN_NAME.match(name)
    if match is None:
        return None
    return {"group": match["group"], "model": match["model"], "variant": match["variant"] or "",
            "seed": int(match["seed"])}


def _read_lines(path: Path) -> tuple[str, ...]:
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())


def _key_irreps_from_metrics(metrics: Mapping[str, float]) -> tuple[str, ...]:
    """Key irreps (unordered, in summary order) from the logit similarities of a summary."""
    pattern = re.compile(r"^logit_(?P<name>.+)_rep_trace_similarity$")
    names = []
    for key, value in metrics.items():
        match = pattern.match(key)
        if match and match["name"] != "trivial" and float(value) > KEY_IRREP_THRESHOLD:
            names.append(match["name"])
    return tuple(names)


def load_run(run_dir: str | Path) -> RunSummary:
    """Read one evaluated run directory (``cfg.json`` + ``summary_metrics.json`` + key irreps).

    Key irreps come from ``key_reps_in_order.txt``, else ``key_reps.txt``, else the summary's
    logit similarities above :data:`KEY_IRREP_THRESHOLD`.  Raises ``FileNotFoundError`` naming
    the missing file when the run is not evaluated.
    """
    run_dir = Path(run_dir)
    cfg_path, summary_path = run_dir / "cfg.json", run_dir / "summary_metrics.json"
    for path in (cfg_path, summary_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: {run_dir.name} is not an evaluated run")
    cfg = json.loads(cfg_path.read_text())
    metrics = json.loads(summary_path.read_text())
    if (run_dir / "key_reps_in_order.txt").is_file():
        key_irreps = _read_lines(run_dir / "key_reps_in_order.txt")
    elif (run_dir / "key_reps.txt").is_file():
        key_irreps = _read_lines(run_dir / "key_reps.txt")
    else:
        key_irreps = _key_irreps_from_metrics(metrics)
    parsed = parse_run_name(run_dir.name) or {}
    layers = cfg.get("layers") or {}
    return RunSummary(
        run=run_dir.name,
        group=group_spec_from_config(cfg),
        model=model_code(cfg.get("model", parsed.get("model", ""))),
        seed=int(cfg.get("seed", parsed.get("seed", 0))),
        variant=parsed.get("variant", ""),
        frac_train=_maybe(float, cfg.get("frac_train")),
        num_epochs=_maybe(int, cfg.get("num_epochs")),
        embed_dim=_maybe(int, layers.get("embed_dim", cfg.get("embed_dim"))),
        hidden_dim=_maybe(int, layers.get("hidden_dim", cfg.get("hidden_dim"))),
        metrics=metrics, key_irreps=key_irreps, path=run_dir)


def _maybe(kind, value):
    return None if value is None or value == "" else kind(value)


def collect_runs(batch_dir: str | Path, *, only: str | None = None) -> tuple[list[RunSummary], list[str]]:
    """Every evaluated run of a batch directory, sorted as the paper's tables.

    Parameters
    ----------
    batch_dir : path
        Folder of run directories (sub-folders with a ``cfg.json``).
    only : str, optional
        Regular expression; keep runs whose name it matches (``re.search``).

    Returns
    -------
    runs : list of RunSummary
        Evaluated runs (with ``summary_metrics.json``).
    pending : list of str
        Names of run directories that have a ``cfg.json`` but no summary yet (or an unreadable
        one, which is logged).
    """
    batch_dir = Path(batch_dir)
    if not batch_dir.is_dir():
        raise FileNotFoundError(f"batch directory {batch_dir} does not exist")
    pattern = re.compile(only) if only else None
    runs, pending = [], []
    for run_dir in sorted(p for p in batch_dir.iterdir() if (p / "cfg.json").is_file()):
        if pattern is not None and not pattern.search(run_dir.name):
            continue
        if not (run_dir / "summary_metrics.json").is_file():
            pending.append(run_dir.name)
            continue
        try:
            runs.append(load_run(run_dir))
        except (ValueError, KeyError, TypeError) as err:  # JSONDecodeError is a ValueError
            logger.warning("%s: unreadable run (%s); left out of the tables", run_dir.name, err)
            pending.append(run_dir.name)
    runs.sort(key=run_sort_key)
    return runs, pending


def runs_from_csv(path_or_text: str | Path | io.TextIOBase) -> list[RunSummary]:
    """Run summaries from a ``runs.csv`` written by :func:`write_tables` or the paper's ``paper_runs.csv``.

    ``key_reps_in_order`` is ``;``-separated; ``group`` is a spec or the paper's family class name
    (with ``group_parameter``); ``model`` is a code or the paper's class name.
    """
    if isinstance(path_or_text, io.TextIOBase):
        text = path_or_text.read()
    else:
        text = Path(path_or_text).read_text()
    runs = []
    for row in csv.DictReader(io.StringIO(text)):
        parsed = parse_run_name(row["run"]) or {}
        metrics = {key: float(row[key]) for key in row
                   if key in SUMMARY_KEYS and row[key] not in ("", None)}
        key_irreps = tuple(k for k in (row.get("key_reps_in_order") or "").split(";") if k)
        runs.append(RunSummary(
            run=row["run"], group=group_spec_from_config(row), model=model_code(row["model"]),
            seed=int(row["seed"]), variant=row.get("variant", parsed.get("variant", "")) or "",
            frac_train=_maybe(float, row.get("frac_train")),
            num_epochs=_maybe(int, row.get("num_epochs")),
            embed_dim=_maybe(int, row.get("embed_dim")),
            hidden_dim=_maybe(int, row.get("hidden_dim")),
            metrics=metrics, key_irreps=key_irreps))
    runs.sort(key=run_sort_key)
    return runs


def _reference_text(name: str) -> str:
    return resources.files("rep_theory").joinpath("reference_data", name).read_text()


def paper_runs() -> list[RunSummary]:
    """The paper's 132 evaluated runs (shipped as ``rep_theory/reference_data/paper_runs.csv``)."""
    return runs_from_csv(io.StringIO(_reference_text("paper_runs.csv")))


def paper_table(name: str) -> "Table":
    """One of the paper's tables as shipped: ``"mlp_all"``, ``"mlp_avg"``, ``"transformer_all"``, ``"transformer_avg"``."""
    allowed = ("mlp_all", "mlp_avg", "transformer_all", "transformer_avg")
    if name not in allowed:
        raise ValueError(f"unknown paper table {name!r}; expected one of {allowed}")
    return Table.from_csv(_reference_text(f"paper_{name}.csv"))


# --------------------------------------------------------------------------------------------
# Display conventions
# --------------------------------------------------------------------------------------------
_FACTOR = re.compile(r"([A-Z][a-z]*)(\d+)")


def _split_factors(spec: str) -> list[tuple[str, int]] | None:
    factors = []
    for token in spec.split("x"):
        match = _FACTOR.fullmatch(token)
        if match is None:
            return None
        factors.append((match[1], int(match[2])))
    return factors


def group_label(spec: str) -> str:
    """The paper's LaTeX label of a group: ``"C113"`` -> ``"$C_{113}$"``, ``"C4xC6"`` -> ``"$C_{4} \\times C_{6}$"``."""
    factors = _split_factors(spec)
    if factors is None:
        return spec.replace("_", "\\_")
    parts = [(f"\\mathrm{{{family}}}" if len(family) > 1 else family) + f"_{{{n}}}"
             for family, n in factors]
    return "$" + " \\times ".join(parts) + "$"


def group_sort_key(spec: str) -> tuple:
    """Sort key giving the paper's group order: C, D, S, A (by order within each), then others by name."""
    factors = _split_factors(spec)
    if factors is not None and len(factors) == 1 and factors[0][0] in _FAMILY_ORDER:
        family, n = factors[0]
        return (_FAMILY_ORDER[family], n, spec)
    return (len(_FAMILY_ORDER), 0, spec)


def run_sort_key(run: RunSummary) -> tuple:
    return (group_sort_key(run.group), ("MLP", "T", "B").index(run.model) if run.model in
            ("MLP", "T", "B") else 9, run.variant, _variant_number(run.variant), run.seed)


def _variant_number(variant: str) -> int:
    numbers = re.findall(r"\d+", variant)
    return int(numbers[-1]) if numbers else 0


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
            return text.replace("|", "\\|")
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


def run_table(runs: Iterable[RunSummary], *, model: str = "MLP", variant: str = "") -> Table:
    """The paper's per-run table for one model (``"MLP"``, ``"T"`` or ``"B"``) and variant.

    Columns: Group, Seed, Key Irreps, Test Loss, Exc. Loss, Res. Loss, Logit FVE, the embedding
    FVE(s) ($W_a$, $W_b$; the transformer's $W_E$), $W_U$ FVE, MLP FVE, MLP $\\rho(ab)$ FVE.
    """
    columns = _table_columns(model)
    selected = sorted((r for r in runs if r.model == model and r.variant == variant),
                      key=run_sort_key)
    rows = []
    for run in selected:
        irreps = ", ".join(display_irrep(name, run.group) for name in run.key_irreps)
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
                     model: str = "MLP", variant: str = "", average: bool = False) -> Table:
    """Side by side with the paper: for every (group, seed) present in both, our row then the paper's.

    Columns are the per-run (``average=False``) or per-group (``average=True``) table's, after
    a ``Source`` column (``ours`` / ``paper``); per-run tables add ``Same Key Irreps`` (``yes``/``no``
    on our row: the same set of key irreps as the paper's run).  Averages compare over the seeds
    both have, listed in a ``Seeds`` column.
    """
    def key(run: RunSummary) -> tuple:
        return (run.group, run.seed)
    ours = [r for r in ours if r.model == model and r.variant == variant]
    paper_by_key = {key(r): r for r in paper if r.model == model and r.variant == variant}
    matched = [(r, paper_by_key[key(r)]) for r in sorted(ours, key=run_sort_key)
               if key(r) in paper_by_key]
    if not average:
        base = run_table([], model=model)
        header = base.header[:2] + ("Source", "Same Key Irreps") + base.header[2:]
        rows = []
        for mine, theirs in matched:
            for source, run in (("ours", mine), ("paper", theirs)):
                row = run_table([run], model=model, variant=variant).rows[0]
                same = ("yes" if set(mine.key_irreps) == set(theirs.key_irreps) else "no") \
                    if source == "ours" else ""
                rows.append(row[:2] + (source, same) + row[2:])
        return Table(header=header, rows=tuple(rows),
                     title=_title(model, variant, "per run, ours vs paper"))
    base = average_table([], model=model)
    header = base.header[:1] + ("Source", "Seeds") + base.header[1:]
    rows = []
    groups: dict[str, list[tuple[RunSummary, RunSummary]]] = {}
    for pair in matched:
        groups.setdefault(pair[0].group, []).append(pair)
    for group in sorted(groups, key=group_label):
        seeds = " ".join(str(m.seed) for m, _ in groups[group])
        for source, index in (("ours", 0), ("paper", 1)):
            row = average_table([pair[index] for pair in groups[group]], model=model).rows[0]
            rows.append(row[:1] + (source, seeds) + row[1:])
    return Table(header=header, rows=tuple(rows),
                 title=_title(model, variant, "mean over seeds, ours vs paper"))


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
      (group, seed) pairs the paper also trained;
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
    if pending:
        sections.append("## Not evaluated yet\n\n" + "\n".join(f"- {p}" for p in pending) + "\n")
    written["tables.md"] = atomic_write_text(out_dir / "tables.md", "\n".join(sections))
    logger.info("wrote %d table files to %s", len(written), out_dir)
    return written
