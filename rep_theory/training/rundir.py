"""The run directory: one trained model on disk, and the one module that knows its layout.

Every other module reaches a run's files through these functions, so the rules below live in one
place::

    <run>/
      cfg.json                  the RunConfig (:mod:`rep_theory.training.config`); a paper cfg.json loads as is
      checkpoints/epoch_<e>.pt  single-seed state dicts, the weights after e optimizer steps
      model.pt                  final weights; written last by the trainer, so it marks "trained"
      resume/state_<e>.pt       resume states (owned by :mod:`rep_theory.training.train`)
      train_log.csv             epoch, train/test loss and accuracy
      metrics.csv               one row per evaluated checkpoint (:mod:`rep_theory.analysis.evaluate`)
      summary_metrics.json      metrics of the final model
      irreps.txt key_reps.txt key_reps_in_order.txt
      evaluation.json           which weights each result describes (:class:`EvaluationRecord`)
      figures/                  per-run figures; ``figures/complete.json`` written last
      .lock                     the per-run lock (:func:`run_lock`)

Results are tied to the exact weights they describe: ``evaluation.json`` records, for ``model.pt``
and for every checkpoint whose row is in ``metrics.csv``, a stamp (size, modification time and the
content's sha256).  A result whose weights changed is stale: the evaluator recomputes it and
:func:`is_evaluated` is false until it has.

States, in pipeline order (:func:`run_state`): ``created`` (cfg.json only), ``trained`` (model.pt),
``evaluated`` (the summary describes the current ``model.pt`` and, unless final-only, every current
checkpoint has its row, the learning order is written and the figures are complete).
:func:`run_status` is the trainer's view: ``new``, ``started`` (a resume state exists) or ``finished``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import io
import numbers
import os
import re
from pathlib import Path
from typing import Sequence

import torch

from rep_theory.algebra.groups import Group, get_group
from rep_theory import __version__
from rep_theory.device import resolve_device
from rep_theory.locks import LOCK_NAME, RunLockedError, run_lock  # noqa: F401 (part of this contract)
from rep_theory.io import CorruptFileError, atomic_write_json, atomic_write_text, content_digest, load_checked
from rep_theory.training.config import RunConfig, load_config
from rep_theory.training.data import element_permutation
from rep_theory.training.models import GroupModel, make_model

__all__ = ["CONFIG_NAME", "MODEL_NAME", "SUMMARY_NAME", "METRICS_NAME", "TRAIN_LOG_NAME", "LOCK_NAME",
           "checkpoint_path", "list_checkpoints", "new_run", "load_weights", "model_for_config",
           "model_from_weights", "load_run_model", "read_metrics_csv", "read_csv_header",
           "write_metrics_csv", "write_lines", "read_lines", "run_status", "run_state", "RunState",
           "is_trained", "is_evaluated", "staleness", "run_lock", "RunLockedError", "resume_files",
           "CorruptWeightsError", "EvaluationRecord", "read_evaluation_record", "write_evaluation_record",
           "file_stamp", "stamp_matches", "config_digest", "summary_staleness", "key_files_staleness",
           "RECORD_NAME", "FIGURES_MARKER"]

CONFIG_NAME = "cfg.json"
MODEL_NAME = "model.pt"
SUMMARY_NAME = "summary_metrics.json"
METRICS_NAME = "metrics.csv"
TRAIN_LOG_NAME = "train_log.csv"
ORDER_NAME = "key_reps_in_order.txt"
RECORD_NAME = "evaluation.json"
FIGURES_MARKER = "figures/complete.json"

_CHECKPOINT_RE = re.compile(r"^epoch_(\d+)\.pt$")
_RESUME_RE = re.compile(r"^state_(\d+)\.pt$")
_STATE_KEYS = ("model", "state_dict", "model_state_dict", "model_state")


# --- creating a run and reading its weights ----------------------------------------------------------
def new_run(run_dir: str | os.PathLike, cfg: RunConfig) -> Path:
    """Create ``run_dir`` with ``cfg.json``; an existing different cfg.json is an error (same: no-op).
    A route is checked against the group first (its irrep or subgroup must be the group's)."""
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"cfg must be a RunConfig (rep_theory.training.config), got {type(cfg).__name__}")
    if not str(run_dir).strip():
        raise ValueError("run_dir is empty; expected the path of the run directory to create")
    run_dir = Path(run_dir)
    if cfg.route is not None:
        from rep_theory.training.routing import check_route  # the group's subgroups: only for routed runs

        check_route(get_group(cfg.spec), cfg.route)
    path = run_dir / CONFIG_NAME
    if path.exists():
        existing = load_config(run_dir)
        if existing != cfg:
            raise ValueError(f"{path} already exists with a different config "
                             f"(existing {existing.to_dict()}, requested {cfg.to_dict()}); "
                             f"use another directory or delete it")
        return run_dir
    atomic_write_json(path, cfg.to_dict())
    return run_dir


def checkpoint_path(run_dir: str | os.PathLike, epoch: int) -> Path:
    """``run_dir/checkpoints/epoch_<epoch>.pt``."""
    return Path(run_dir) / "checkpoints" / f"epoch_{int(epoch)}.pt"


def _numbered_files(folder: Path, pattern: re.Pattern) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        m = pattern.match(path.name)
        if m and path.is_file():
            found.append((int(m.group(1)), path))
    return sorted(found)


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every ``checkpoints/epoch_<e>.pt``, by increasing epoch."""
    return _numbered_files(Path(run_dir) / "checkpoints", _CHECKPOINT_RE)


def resume_files(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of the resume states ``resume/state_<e>.pt``, newest first."""
    return _numbered_files(Path(run_dir) / "resume", _RESUME_RE)[::-1]


class CorruptWeightsError(ValueError):
    """A weights file that cannot be read: truncated, checksum mismatch, or not a state dict."""


def load_weights(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The state dict stored in ``path`` (plain ``torch.save`` or a checked file), on ``map_location``.

    A file that cannot be read raises :class:`CorruptWeightsError` naming it and what is wrong.
    """
    path = Path(path)
    try:
        try:
            obj = load_checked(path, map_location=map_location)
        except CorruptFileError as err:
            if "missing header" not in str(err):
                raise
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except CorruptFileError as err:
        raise CorruptWeightsError(str(err)) from None
    except Exception as err:  # torch.load of a truncated or foreign file: EOFError, RuntimeError, pickle errors
        raise CorruptWeightsError(f"{path}: cannot be read as weights ({type(err).__name__}: {err})") from None
    if isinstance(obj, dict):
        for key in _STATE_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CorruptWeightsError(f"{path}: expected a state dict of tensors (or a checkpoint dict with one of "
                         f"the keys {list(_STATE_KEYS)}), got {type(obj).__name__}")
    return obj


def model_for_config(cfg: RunConfig, group: Group | None = None) -> GroupModel:
    """The single-seed model of ``cfg``, initialised exactly as training initialises seed ``cfg.seed``.

    ``group``: the run's :class:`Group` when the caller already has it (else built from ``cfg.spec``).
    """
    G = get_group(cfg.spec) if group is None else group
    return make_model(cfg.model, G.order, seed=cfg.seed, embed_dim=cfg.embed_dim, hidden_dim=cfg.model_hidden_dim,
                      element_perm=element_permutation(G, cfg.paper_order))


def model_from_weights(cfg: RunConfig, weights: dict[str, torch.Tensor], *, group: Group | None = None,
                       device: str | torch.device = "cpu") -> GroupModel:
    """The model of ``cfg`` holding ``weights`` on ``device``, in eval mode."""
    G = get_group(cfg.spec) if group is None else group
    model = make_model(cfg.model, G.order, seed=cfg.seed, embed_dim=cfg.embed_dim, hidden_dim=cfg.model_hidden_dim)
    try:
        model.load_state_dict(weights)  # the init is overwritten, so the cheap unpermuted one will do
    except RuntimeError as err:  # missing keys or other shapes: weights of another group, model or width
        raise ValueError(f"the weights do not fit the config's network ({cfg.model} on {cfg.spec}, embed "
                         f"{cfg.embed_dim}, hidden {cfg.model_hidden_dim}): {str(err).splitlines()[-1].strip()}") from None
    return model.to(resolve_device(device)).eval()


def load_run_model(run_dir: str | os.PathLike, epoch: int | None = None, *,
                   device: str | torch.device = "cpu") -> GroupModel:
    """The model of ``run_dir``: ``model.pt`` (``epoch=None``) or ``checkpoints/epoch_<epoch>.pt``."""
    if epoch is not None and (not isinstance(epoch, numbers.Integral) or isinstance(epoch, bool)):
        raise TypeError(f"epoch must be an int (a checkpoint's epoch) or None, got {epoch!r}")
    cfg = load_config(run_dir)
    path = Path(run_dir) / MODEL_NAME if epoch is None else checkpoint_path(run_dir, epoch)
    if not path.is_file():
        present = [e for e, _ in list_checkpoints(run_dir)[:5]]
        raise FileNotFoundError(f"{path} does not exist (checkpoints present: {present}...)")
    return model_from_weights(cfg, load_weights(path, map_location="cpu"), device=device)


# --- CSV and text files ------------------------------------------------------------------------------
def read_csv_header(path: str | os.PathLike) -> list[str]:
    """The column names of a CSV file (``metrics.csv``, ``train_log.csv``)."""
    with open(path, newline="") as fh:
        return next(csv.reader(fh), [])


def read_metrics_csv(path: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of ``metrics.csv`` or ``train_log.csv`` as floats, sorted by epoch (empty cells left out).

    The epoch comes from an ``epoch`` column, else from an unnamed first (index) column.
    """
    rows = []
    with open(path, newline="") as fh:
        for raw in csv.DictReader(fh):
            row = {}
            for key, value in raw.items():
                if key is None or value in ("", None):
                    continue
                try:
                    row[key] = float(value)
                except ValueError:
                    continue
            if "epoch" not in row and "" in row:
                row["epoch"] = row.pop("")
            if "epoch" in row:
                rows.append(row)
    rows.sort(key=lambda r: r["epoch"])
    return rows


def write_metrics_csv(path: str | os.PathLike, columns: Sequence[str], rows: Sequence[dict[str, float]]) -> None:
    """Write ``rows`` (sorted by epoch) under ``columns``, atomically, floats as ``repr``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in sorted(rows, key=lambda r: r["epoch"]):
        writer.writerow([repr(float(row[c])) for c in columns])
    atomic_write_text(path, buffer.getvalue())


def write_lines(path: str | os.PathLike, names: Sequence[str]) -> None:
    """One name per line (``irreps.txt``, ``key_reps.txt``, ``key_reps_in_order.txt``), atomically."""
    atomic_write_text(path, "".join(f"{name}\n" for name in names))


def read_lines(path: str | os.PathLike) -> tuple[str, ...]:
    """The non-empty lines of a names file, stripped."""
    return tuple(line.strip() for line in Path(path).read_text().splitlines() if line.strip())


# --- which weights each result describes ------------------------------------------------------------
def file_stamp(path: str | os.PathLike, *, digest: str | None = None) -> dict:
    """``{"size", "mtime_ns", "sha256"}`` of a weights file (``digest`` if the caller has it)."""
    st = Path(path).stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sha256": digest if digest is not None else content_digest(path)}


def stamp_matches(path: str | os.PathLike, stamp: dict | None, *, deep: bool = False) -> bool:
    """Whether ``path`` still holds what ``stamp`` describes: the same size and modification time, or
    (``deep``) the same size and content digest, whatever the modification time says (a file copied
    over with its size and time restored is caught; a touched one still matches).  For a checked file
    the digest is read from its header, so ``deep`` costs one small read."""
    if not stamp:
        return False
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        return False
    if st.st_size != stamp.get("size"):
        return False
    if deep:
        return content_digest(path) == stamp.get("sha256")
    return st.st_mtime_ns == stamp.get("mtime_ns")


def config_digest(run_dir: str | os.PathLike) -> str:
    """The sha256 of the run's configuration as the metrics read it: ``cfg.json`` as a
    :class:`RunConfig`, in canonical JSON, without the fields that change no number (``device``,
    ``log_every``, and ``version``, which a cfg.json without it reads as the running package's)."""
    settings = load_config(run_dir).to_dict()
    for field in ("device", "log_every", "version"):
        settings.pop(field, None)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


METRICS_REVISION = 2
"""The arithmetic of the metrics (``rep_theory.analysis.metrics``), recorded in ``evaluation.json``:
1, weight products and the MLPs' hidden layer and logits from the float32 forward; 2, in float64 from
the weights.  A summary or rows of another revision are stale (:func:`staleness`) and are recomputed."""


@dataclasses.dataclass
class EvaluationRecord:
    """``evaluation.json``: the stamps of the weights behind ``summary_metrics.json`` (``model``) and
    behind each ``metrics.csv`` row (``checkpoints``, keyed by the epoch as a string)."""

    model: dict | None = None
    checkpoints: dict = dataclasses.field(default_factory=dict)
    key_irreps: list = dataclasses.field(default_factory=list)
    package_version: str = __version__
    metrics_revision: int = METRICS_REVISION   # the arithmetic of the summary and rows; read as 0 when absent
    config: str | None = None   # config_digest of cfg.json when evaluated; None in records written before it


def read_evaluation_record(run_dir: str | os.PathLike) -> EvaluationRecord | None:
    """The run's :class:`EvaluationRecord`, or ``None`` when absent or unreadable (then nothing is trusted)."""
    path = Path(run_dir) / RECORD_NAME
    try:
        d = json.loads(path.read_text())
        return EvaluationRecord(model=d.get("model"), checkpoints=dict(d.get("checkpoints") or {}),
                                key_irreps=list(d.get("key_irreps") or []),
                                package_version=str(d.get("package_version", "")),
                                metrics_revision=int(d.get("metrics_revision") or 0),
                                config=d.get("config"))
    except (FileNotFoundError, ValueError, TypeError, AttributeError):
        return None


def write_evaluation_record(run_dir: str | os.PathLike, record: EvaluationRecord) -> None:
    atomic_write_json(Path(run_dir) / RECORD_NAME, dataclasses.asdict(record))


# --- states and locks -----------------------------------------------------------------------------------
class RunState:
    """States of a run directory, in pipeline order."""

    CREATED = "created"
    TRAINED = "trained"
    EVALUATED = "evaluated"


def _mtime(path: Path) -> float:
    return path.stat().st_mtime_ns if path.exists() else -1


def run_status(run_dir: str | os.PathLike) -> str:
    """The trainer's view: ``"finished"`` (model.pt present), ``"started"`` (a resume state exists) or ``"new"``."""
    run_dir = Path(run_dir)
    if (run_dir / MODEL_NAME).exists():
        return "finished"
    if resume_files(run_dir):
        return "started"
    return "new"


def is_trained(run_dir: str | os.PathLike) -> bool:
    """Final weights (``model.pt``) exist: the trainer writes them last."""
    return (Path(run_dir) / MODEL_NAME).is_file()


def staleness(run_dir: str | os.PathLike, *, final_only: bool = False) -> str | None:
    """Why the evaluation of a trained run does not describe its current weights and configuration,
    or ``None`` if it does.

    Compares ``model.pt`` by its digest (a header read for a checked file) and the checkpoints by size
    and modification time with :class:`EvaluationRecord`, and ``cfg.json`` by :func:`config_digest`.
    """
    run_dir = Path(run_dir)
    if not is_trained(run_dir):
        return "not trained"
    record = read_evaluation_record(run_dir)
    if record is None or not (run_dir / SUMMARY_NAME).is_file():
        return "not evaluated"
    if not stamp_matches(run_dir / MODEL_NAME, record.model, deep=True):
        return "model.pt changed since it was evaluated"
    if record.config is not None:
        try:
            current = config_digest(run_dir)
        except (ValueError, TypeError, KeyError) as err:   # JSONDecodeError is a ValueError
            return f"cfg.json is unreadable ({err})"
        if record.config != current:
            return "cfg.json changed since it was evaluated"
    if record.metrics_revision != METRICS_REVISION:
        return (f"evaluated under metrics revision {record.metrics_revision or 'unrecorded (1)'}; this version "
                f"computes revision {METRICS_REVISION} (float64 arithmetic): re-run eval")
    if final_only:
        return None
    current = dict(list_checkpoints(run_dir))
    if not current:
        return None if (run_dir / METRICS_NAME).is_file() or not record.checkpoints else "checkpoints removed"
    missing = [e for e in current if str(e) not in record.checkpoints]
    if missing:
        return f"{len(missing)} checkpoint(s) not evaluated (e.g. epoch {missing[0]})"
    changed = [e for e, p in current.items() if not stamp_matches(p, record.checkpoints[str(e)])]
    if changed:
        return f"{len(changed)} checkpoint(s) changed since they were evaluated (e.g. epoch {changed[0]})"
    if not (run_dir / METRICS_NAME).is_file() or not (run_dir / ORDER_NAME).is_file():
        return "metrics.csv or the learning order is missing"
    marker = run_dir / FIGURES_MARKER
    if _mtime(marker) < _mtime(run_dir / METRICS_NAME):
        return "figures are missing or older than metrics.csv"
    return None


def summary_staleness(run_dir: str | os.PathLike) -> str | None:
    """Why a run's summary and key irreps (``summary_metrics.json``, ``key_reps*.txt``) do not describe
    its current weights and configuration, or ``None`` when they do.  A run without weights is taken as
    it is only when it was never evaluated here (the paper's released summaries); one that has an
    ``evaluation.json`` but no ``model.pt`` (deleted to retrain, or being retrained) is stale."""
    run_dir = Path(run_dir)
    if is_trained(run_dir):
        return staleness(run_dir, final_only=True)
    if (run_dir / RECORD_NAME).exists():
        return "model.pt is missing (being retrained?): its evaluation describes weights that are gone"
    return None


def key_files_staleness(run_dir: str | os.PathLike) -> str | None:
    """Why a run's key irreps files (``key_reps*.txt``) must not be read, or ``None`` when they may: a
    run never evaluated here (no ``evaluation.json``: the paper's released files) is read as it is, one
    evaluated here only while :func:`summary_staleness` finds nothing."""
    return summary_staleness(run_dir) if (Path(run_dir) / RECORD_NAME).exists() else None


def is_evaluated(run_dir: str | os.PathLike, *, final_only: bool = False) -> bool:
    """The evaluation describes the run's current weights (see :func:`staleness`)."""
    return staleness(run_dir, final_only=final_only) is None


def run_state(run_dir: str | os.PathLike, *, final_only: bool = False) -> str:
    """:class:`RunState` of a run directory."""
    if is_evaluated(run_dir, final_only=final_only):
        return RunState.EVALUATED
    if is_trained(run_dir):
        return RunState.TRAINED
    return RunState.CREATED
