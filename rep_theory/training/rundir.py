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
      figures/                  per-run figures
      .lock                     the per-run lock (:func:`run_lock`)

States, in pipeline order (:func:`run_state`): ``created`` (cfg.json only), ``trained`` (model.pt),
``evaluated`` (summary newer than model.pt and, unless final-only, the learning order newer than the
summary).  :func:`run_status` is the trainer's view: ``new``, ``started`` (a resume state exists) or
``finished``.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import os
import re
from pathlib import Path
from typing import Iterator, Sequence

import torch

from rep_theory.algebra.groups import Group, get_group
from rep_theory.io import CorruptFileError, atomic_write_json, atomic_write_text, load_checked
from rep_theory.training.config import RunConfig, load_config
from rep_theory.training.data import element_permutation
from rep_theory.training.models import GroupModel, make_model

__all__ = ["CONFIG_NAME", "MODEL_NAME", "SUMMARY_NAME", "METRICS_NAME", "TRAIN_LOG_NAME", "LOCK_NAME",
           "checkpoint_path", "list_checkpoints", "new_run", "load_weights", "model_for_config",
           "model_from_weights", "load_run_model", "read_metrics_csv", "read_csv_header",
           "write_metrics_csv", "write_lines", "read_lines", "run_status", "run_state", "RunState",
           "is_trained", "is_evaluated", "run_lock", "RunLockedError", "resume_files"]

CONFIG_NAME = "cfg.json"
MODEL_NAME = "model.pt"
SUMMARY_NAME = "summary_metrics.json"
METRICS_NAME = "metrics.csv"
TRAIN_LOG_NAME = "train_log.csv"
ORDER_NAME = "key_reps_in_order.txt"
LOCK_NAME = ".lock"

_CHECKPOINT_RE = re.compile(r"^epoch_(\d+)\.pt$")
_RESUME_RE = re.compile(r"^state_(\d+)\.pt$")
_STATE_KEYS = ("model", "state_dict", "model_state_dict", "model_state")


# --- creating a run and reading its weights ----------------------------------------------------------
def new_run(run_dir: str | os.PathLike, cfg: RunConfig) -> Path:
    """Create ``run_dir`` with ``cfg.json``; an existing different cfg.json is an error (same: no-op)."""
    run_dir = Path(run_dir)
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


def load_weights(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The state dict stored in ``path`` (plain ``torch.save`` or a checked file), on ``map_location``."""
    path = Path(path)
    try:
        obj = load_checked(path, map_location=map_location)
    except CorruptFileError as err:
        if "missing header" not in str(err):
            raise
        obj = torch.load(path, map_location=map_location, weights_only=True)
    if isinstance(obj, dict):
        for key in _STATE_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (or a checkpoint dict with one of "
                         f"the keys {list(_STATE_KEYS)}), got {type(obj).__name__}")
    return obj


def model_for_config(cfg: RunConfig, group: Group | None = None) -> GroupModel:
    """The single-seed model of ``cfg``, initialised exactly as training initialises seed ``cfg.seed``.

    ``group``: the run's :class:`Group` when the caller already has it (else built from ``cfg.spec``).
    """
    G = get_group(cfg.spec) if group is None else group
    return make_model(cfg.model, G.order, seed=cfg.seed, embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim,
                      element_perm=element_permutation(G, cfg.paper_order))


def model_from_weights(cfg: RunConfig, weights: dict[str, torch.Tensor], *, group: Group | None = None,
                       device: str | torch.device = "cpu") -> GroupModel:
    """The model of ``cfg`` holding ``weights`` on ``device``, in eval mode."""
    G = get_group(cfg.spec) if group is None else group
    model = make_model(cfg.model, G.order, seed=cfg.seed, embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim)
    model.load_state_dict(weights)  # the init is overwritten, so the cheap unpermuted one will do
    return model.to(device).eval()


def load_run_model(run_dir: str | os.PathLike, epoch: int | None = None, *,
                   device: str | torch.device = "cpu") -> GroupModel:
    """The model of ``run_dir``: ``model.pt`` (``epoch=None``) or ``checkpoints/epoch_<epoch>.pt``."""
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


def is_evaluated(run_dir: str | os.PathLike, *, final_only: bool = False) -> bool:
    """``summary_metrics.json`` is newer than ``model.pt`` and, unless ``final_only``, the learning
    order (written last by the evaluator) is newer than the summary."""
    run_dir = Path(run_dir)
    summary = run_dir / SUMMARY_NAME
    if not is_trained(run_dir) or _mtime(summary) < _mtime(run_dir / MODEL_NAME):
        return False
    if final_only:
        return True
    return _mtime(run_dir / ORDER_NAME) >= _mtime(summary) and (run_dir / METRICS_NAME).is_file()


def run_state(run_dir: str | os.PathLike, *, final_only: bool = False) -> str:
    """:class:`RunState` of a run directory."""
    if is_evaluated(run_dir, final_only=final_only):
        return RunState.EVALUATED
    if is_trained(run_dir):
        return RunState.TRAINED
    return RunState.CREATED


class RunLockedError(RuntimeError):
    """Another process holds the lock of a run directory."""


@contextlib.contextmanager
def run_lock(run_dirs: Sequence[str | os.PathLike]) -> Iterator[None]:
    """Hold exclusive ``fcntl`` locks on ``<run>/.lock`` for every run directory, or raise.

    Non-blocking: if any run is locked by another process (or another lock in this one), the
    locks taken so far are released and :class:`RunLockedError` names the busy run.
    """
    handles = []
    try:
        for run_dir in sorted(Path(d) for d in run_dirs):
            fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise RunLockedError(f"{run_dir} is locked by another pipeline") from None
                raise
            handles.append(fd)
        yield
    finally:
        for fd in handles:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
