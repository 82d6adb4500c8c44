"""Run summaries: what the tables and figures need from each evaluated run, and where they come from.

A *batch directory* holds one run directory per trained model, named as the paper named them
(``S5_MLP_seed1``, ``C113_T_seed3``, ``S5_MLP_hidden_dim_32_seed1``).  An evaluated run directory
has ``cfg.json``, ``summary_metrics.json`` (metrics of the final model) and
``key_reps_in_order.txt`` (key irreps in the order they were learned); the paper's own run
directories have exactly this layout and load as they are.  :func:`paper_runs` gives the paper's
own 132 summaries (shipped).  Tables over these: :mod:`rep_theory.analysis.tables`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import re
from importlib import resources
from pathlib import Path
from typing import Mapping

from rep_theory.algebra.groups import parse_spec
from rep_theory.analysis.metrics import KEY_THRESHOLD, select_key_irreps
from rep_theory.training.config import group_spec, load_config, model_short_name
from rep_theory.training.rundir import is_trained, read_lines, staleness, summary_staleness

__all__ = ["RunSummary", "load_run", "collect_runs", "runs_from_csv", "paper_runs", "parse_run_name",
           "group_sort_key", "run_sort_key", "SUMMARY_KEYS", "KEY_THRESHOLD", "reference_text", "pending_reason"]

logger = logging.getLogger(__name__)

_FAMILY_ORDER = {"C": 0, "D": 1, "S": 2, "A": 3}
_RUN_NAME = re.compile(r"^(?P<group>[A-Za-z0-9]+)_(?P<model>MLP|T|B)(?:_(?P<variant>.+?))?"
                       r"_seed(?P<seed>\d+)$")

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
        Key irreps in learning order (package/paper irrep names) when ``order_known``, else in
        irrep order (the run's checkpoints are not all evaluated: no learning order to show).
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
    order_known: bool = True

    def metric(self, key: str) -> float:
        """The summary metric ``key``; ``nan`` when the run lacks it."""
        value = self.metrics.get(key)
        return float("nan") if value is None else float(value)


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


def _key_irreps_from_metrics(metrics: Mapping[str, float]) -> tuple[str, ...]:
    """Key irreps (unordered, in summary order) from the logit similarities of a summary."""
    pattern = re.compile(r"^logit_(?P<name>.+)_rep_trace_similarity$")
    sims = {m["name"]: float(v) for k, v in metrics.items() if (m := pattern.match(k)) and m["name"] != "trivial"}
    return tuple(select_key_irreps(sims))


def load_run(run_dir: str | Path) -> RunSummary:
    """Read one evaluated run directory (``cfg.json`` + ``summary_metrics.json`` + key irreps).

    Key irreps come from ``key_reps_in_order.txt`` when it describes the run's current weights (a
    run with weights: fully evaluated; a run without: the paper's released files), else from
    ``key_reps.txt`` or the summary's logit similarities above :data:`KEY_THRESHOLD`, with
    ``order_known=False``.  Raises ``FileNotFoundError`` naming the missing file when the run is not
    evaluated.
    """
    run_dir = Path(run_dir)
    cfg_path, summary_path = run_dir / "cfg.json", run_dir / "summary_metrics.json"
    for path in (cfg_path, summary_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: {run_dir.name} is not an evaluated run")
    cfg = load_config(run_dir)
    metrics = json.loads(summary_path.read_text())
    order_current = staleness(run_dir) is None if is_trained(run_dir) else summary_staleness(run_dir) is None
    order_known = order_current and (run_dir / "key_reps_in_order.txt").is_file()
    if order_known:
        key_irreps = read_lines(run_dir / "key_reps_in_order.txt")
    elif (run_dir / "key_reps.txt").is_file():
        key_irreps = read_lines(run_dir / "key_reps.txt")
    else:
        key_irreps = _key_irreps_from_metrics(metrics)
    parsed = parse_run_name(run_dir.name) or {}
    return RunSummary(
        run=run_dir.name, group=cfg.spec, model=cfg.model_short, seed=cfg.seed,
        variant=parsed.get("variant", ""), frac_train=cfg.frac_train, num_epochs=cfg.num_epochs,
        embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim, metrics=metrics, key_irreps=key_irreps,
        path=run_dir, order_known=order_known)


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
        Evaluated runs: a summary that describes the run's current ``model.pt`` (or, for a run
        without weights such as the paper's released summaries, a summary alone).
    pending : list of str
        Names of run directories left out: no summary yet, a summary of other weights (stale: the
        run was retrained after its evaluation), or an unreadable one; each reason is logged and
        :func:`pending_reason` gives it.
    """
    batch_dir = Path(batch_dir)
    if not batch_dir.is_dir():
        raise (NotADirectoryError(f"{batch_dir} is a file; expected a batch directory of run directories")
               if batch_dir.exists() else FileNotFoundError(f"batch directory {batch_dir} does not exist"))
    pattern = re.compile(only) if only else None
    runs, pending = [], []
    for run_dir in sorted(p for p in batch_dir.iterdir() if (p / "cfg.json").is_file()):
        if pattern is not None and not pattern.search(run_dir.name):
            continue
        reason = pending_reason(run_dir)
        if reason is not None:
            logger.info("%s: left out of tables and figures (%s)", run_dir.name, reason)
            pending.append(run_dir.name)
            continue
        try:
            runs.append(load_run(run_dir))
        except (ValueError, KeyError, TypeError) as err:  # JSONDecodeError is a ValueError
            logger.warning("%s: unreadable run (%s); left out of the tables", run_dir.name, err)
            pending.append(run_dir.name)
    runs.sort(key=run_sort_key)
    return runs, pending


def pending_reason(run_dir: str | Path) -> str | None:
    """Why a run directory's summary cannot go into tables, or ``None`` when it can."""
    run_dir = Path(run_dir)
    if not (run_dir / "summary_metrics.json").is_file():
        return "not evaluated"
    return summary_staleness(run_dir)


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
            run=row["run"], group=group_spec(row["group"], _maybe(int, row.get("group_parameter"))),
            model=model_short_name(row["model"]),
            seed=int(row["seed"]), variant=row.get("variant", parsed.get("variant", "")) or "",
            frac_train=_maybe(float, row.get("frac_train")),
            num_epochs=_maybe(int, row.get("num_epochs")),
            embed_dim=_maybe(int, row.get("embed_dim")),
            hidden_dim=_maybe(int, row.get("hidden_dim")),
            metrics=metrics, key_irreps=key_irreps))
    runs.sort(key=run_sort_key)
    return runs


def paper_runs() -> list[RunSummary]:
    """The paper's 132 evaluated runs (shipped as ``rep_theory/reference_data/paper_runs.csv``)."""
    return runs_from_csv(io.StringIO(reference_text("paper_runs.csv")))


def reference_text(name: str) -> str:
    """A file shipped in ``rep_theory/reference_data`` (the paper's tables and runs), as text."""
    return resources.files("rep_theory").joinpath("reference_data", name).read_text()


def _split_factors(spec: str) -> list[tuple[str, int]] | None:
    """``[(family, n)]`` of a spec (``Q8`` as ``("Q", 8)``), ``None`` for a name that is not a spec."""
    try:
        factors = parse_spec(spec)
    except (ValueError, TypeError):
        return None
    return [("Q", 8) if n is None else (family, n) for family, n in factors]


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
