"""Grids of runs and batch directories.

A *grid* names a set of runs; :func:`create_batch` turns it into one run directory per (group,
model, variant, seed) inside a *batch directory*, each holding the ``cfg.json`` of a
:class:`rep_theory.training.config.RunConfig`.  Run names are the paper's::

    <group>_<MLP|T|B>[_<variant>]_seed<k>      e.g. S5_MLP_seed1, C113_T_seed3,
                                                    S5_MLP_hidden_dim_32_seed1

Grid files (JSON) -- the schema of ``rep-theory create BATCH --grid FILE.json``::

    {
      "defaults": {"num_epochs": 2000},            # optional: RunConfig fields for every run
      "runs": [                                    # one entry per (group, model[, variant])
        {"group": "S5", "model": "MLP", "seeds": [1, 2, 3, 4]},
        {"group": "D13", "model": "T", "seeds": "1-3", "frac_train": 0.5},
        {"group": "S5", "model": "MLP", "seeds": 2, "variant": "hidden_dim_32",
         "hidden_dim": 32, "embed_dim": 64}
      ]
    }

``group`` is a spec (:func:`rep_theory.algebra.groups.get_group`), ``model`` is ``MLP``/``T``/``B`` (or
the class name), ``seeds`` a list, an inclusive range ``"a-b"`` or a count ``k`` (seeds 1..k).
Every other key of an entry (and of ``defaults``) is a :class:`~rep_theory.training.config.RunConfig`
field overriding the paper's defaults for that (group, model) (:func:`rep_theory.training.config.paper_defaults`);
``variant`` (letters, digits, ``_``) goes into the run name.  Unknown keys are an error.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from rep_theory.algebra.paper_order import PAPER_GROUPS
from rep_theory.io import atomic_write_json
from rep_theory.training.config import RunConfig, load_config, paper_defaults

__all__ = ["GRIDS", "GridRun", "grid_runs", "load_grid", "create_batch", "run_name"]

logger = logging.getLogger(__name__)

_VARIANT_RE = re.compile(r"^[A-Za-z0-9_]+$")


# --------------------------------------------------------------------------------------------
# Grids
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GridRun:
    """One run of a grid: its directory name and its config."""

    name: str
    config: RunConfig


def run_name(config: RunConfig, variant: str = "") -> str:
    """The paper's run directory name: ``S5_MLP_seed1``, ``S5_MLP_hidden_dim_32_seed1``."""
    if variant and not _VARIANT_RE.match(variant):
        raise ValueError(f"variant must be letters, digits and '_', got variant={variant!r}")
    middle = f"_{variant}" if variant else ""
    return f"{config.spec}_{config.model_short}{middle}_seed{config.seed}"


def _seeds(value: Any, where: str) -> list[int]:
    if isinstance(value, bool):
        raise ValueError(f"{where}: seeds must be a list, 'a-b' or a count, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{where}: a seed count must be >= 1, got {value}")
        return list(range(1, value + 1))
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", value)
        if match is None or int(match[1]) > int(match[2]):
            raise ValueError(f"{where}: seed range must look like '1-4', got {value!r}")
        return list(range(int(match[1]), int(match[2]) + 1))
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(s, int) and not isinstance(s, bool) for s in value):
        return [int(s) for s in value]
    raise ValueError(f"{where}: seeds must be a non-empty list of ints, 'a-b' or a count, got {value!r}")


_CONFIG_FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - {"group", "model", "seed",
                                                                      "group_parameter", "version"}


def grid_runs(spec: Mapping[str, Any]) -> list[GridRun]:
    """Expand a grid spec (the JSON schema in the module docstring) into runs, in order.

    Raises ``ValueError`` naming the entry and key for unknown keys, bad seeds, or two entries
    producing the same run name with different configs.
    """
    if not isinstance(spec, Mapping) or "runs" not in spec:
        raise ValueError(f"a grid must be a mapping with a 'runs' list, got {spec!r:.200}")
    unknown = sorted(set(spec) - {"runs", "defaults", "name", "description"})
    if unknown:
        raise ValueError(f"unknown grid key(s) {unknown}; expected 'runs', 'defaults', 'name', 'description'")
    defaults = dict(spec.get("defaults") or {})
    bad = sorted(set(defaults) - _CONFIG_FIELDS)
    if bad:
        raise ValueError(f"grid defaults: unknown RunConfig field(s) {bad}; known: {sorted(_CONFIG_FIELDS)}")
    runs: dict[str, GridRun] = {}
    for k, entry in enumerate(spec["runs"]):
        where = f"grid entry {k} ({entry!r:.80})"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: expected a mapping")
        for required in ("group", "model", "seeds"):
            if required not in entry:
                raise ValueError(f"{where}: missing key {required!r}")
        variant = str(entry.get("variant", ""))
        overrides = {key: value for key, value in entry.items()
                     if key not in ("group", "model", "seeds", "variant")}
        bad = sorted(set(overrides) - _CONFIG_FIELDS)
        if bad:
            raise ValueError(f"{where}: unknown key(s) {bad}; expected group, model, seeds, variant "
                             f"or RunConfig fields {sorted(_CONFIG_FIELDS)}")
        if "betas" in overrides:
            overrides["betas"] = tuple(overrides["betas"])
        settings = {**defaults, **overrides}
        if "betas" in settings:
            settings["betas"] = tuple(settings["betas"])
        for seed in _seeds(entry["seeds"], where):
            config = paper_defaults(str(entry["group"]), str(entry["model"]), seed=seed, **settings)
            name = run_name(config, variant)
            if name in runs and runs[name].config != config:
                raise ValueError(f"{where}: run {name} is defined twice with different configs")
            runs[name] = GridRun(name, config)
    return list(runs.values())


def _paper_grid() -> dict:
    return {"description": "The paper's main grid: 7 groups x (MLP, Transformer) x seeds 1-4.",
            "runs": [{"group": g, "model": m, "seeds": "1-4"} for g in PAPER_GROUPS
                     for m in ("MLP", "T")]}


def _paper_s5_50_grid() -> dict:
    return {"description": "S5 MLP over seeds 1-50 (the paper's irrep frequency figure).",
            "runs": [{"group": "S5", "model": "MLP", "seeds": "1-50"}]}


def _paper_width_grid() -> dict:
    return {"description": "S5 MLP width sweep: hidden 32..112 step 16, embed 2 x hidden, "
                           "epochs 250k x (128 // hidden), seeds 1-4.",
            "runs": [{"group": "S5", "model": "MLP", "seeds": "1-4", "variant": f"hidden_dim_{h}",
                      "hidden_dim": h, "embed_dim": 2 * h, "num_epochs": 250_000 * (128 // h)}
                     for h in range(32, 113, 16)]}


def _smoke_grid() -> dict:
    # Two small groups x (MLP, Transformer) x 2 seeds, small widths and few epochs: the whole
    # pipeline (train, evaluate every checkpoint, figures, tables) runs in CI in under a minute
    # on 2 cores.  A large train fraction and a raised learning rate make the networks pick up
    # irreps within those few epochs (the transformers on C13 generalise; nothing groks).
    shared = {"frac_train": 0.7, "lr": 1e-2, "embed_dim": 32, "hidden_dim": 32,
              "num_epochs": 150, "log_every": 10}
    return {"description": "CI smoke test: C13 and D7 x (MLP, T) x seeds 1-2, 150 epochs.",
            "defaults": shared,
            "runs": [{"group": g, "model": m, "seeds": "1-2"}
                     for g in ("C13", "D7") for m in ("MLP", "T")]}


GRIDS: dict[str, Callable[[], dict]] = {
    "paper": _paper_grid,
    "paper-s5-50": _paper_s5_50_grid,
    "paper-width": _paper_width_grid,
    "smoke": _smoke_grid,
}
"""Named grids (``rep-theory create BATCH --grid NAME``) -> function returning the grid spec."""


def load_grid(grid: str | Path | Mapping[str, Any]) -> list[GridRun]:
    """Runs of a named grid (:data:`GRIDS`), a JSON grid file, or a grid spec mapping."""
    if isinstance(grid, Mapping):
        return grid_runs(grid)
    text = str(grid)
    if text in GRIDS:
        return grid_runs(GRIDS[text]())
    path = Path(text)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"grid file {path} does not exist")
        try:
            spec = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"grid file {path} is not valid JSON: {err}") from None
        return grid_runs(spec)
    raise ValueError(f"unknown grid {text!r}; expected one of {sorted(GRIDS)} or a .json grid file")


def create_batch(batch_dir: str | Path, grid: str | Path | Mapping[str, Any] = "paper", *,
                 only: str | None = None) -> tuple[list[Path], list[Path]]:
    """Create the run directories of ``grid`` in ``batch_dir`` (each with its ``cfg.json``).

    Idempotent: an existing run directory is never overwritten (a warning is logged when its
    ``cfg.json`` differs from the grid's).  Returns ``(created, existing)`` run directories.
    """
    batch_dir = Path(batch_dir)
    runs = load_grid(grid)
    if only:
        pattern = re.compile(only)
        runs = [r for r in runs if pattern.search(r.name)]
        if not runs:
            raise ValueError(f"no run of the grid matches --only {only!r}; nothing created")
    batch_dir.mkdir(parents=True, exist_ok=True)
    created, existing = [], []
    for run in runs:
        run_dir = batch_dir / run.name
        cfg_path = run_dir / "cfg.json"
        if cfg_path.is_file():
            existing.append(run_dir)
            try:
                old = load_config(run_dir)
            except ValueError as err:
                logger.warning("%s: existing cfg.json unreadable (%s); kept as is", run.name, err)
                continue
            if old != run.config:
                logger.warning("%s: existing cfg.json differs from the grid's; kept as is", run.name)
            continue
        atomic_write_json(cfg_path, run.config.to_dict())
        created.append(run_dir)
    logger.info("%s: created %d run(s), kept %d", batch_dir, len(created), len(existing))
    return created, existing
