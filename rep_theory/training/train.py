"""Full-batch AdamW training with the paper's checkpoints, seed batching and resume.

What a run does (one run directory = one seed of one model on one group):

* data: the paper's split (:func:`rep_theory.training.data.make_split`); init: the paper's for the seed
  (:mod:`rep_theory.training.models`); with ``paper_order`` (default) both are drawn over the paper's
  element order for S5/S6/A5, so seed k trains the paper's run k;
* optimizer: ``torch.optim.AdamW(lr, betas, weight_decay)`` (``Adam`` with ``optimizer="adam"``) on the
  full training set every epoch;
  the loss is the paper's cross-entropy computed in float64 (``logits.to(float64)``, log-softmax);
* epochs: "epoch e" means the weights after e optimizer steps (epoch 0 is the initialisation);
  checkpoints are written at epoch 0, the 1000 log-spaced integer epochs of the paper
  (``np.logspace(0, log10(num_epochs), 1000)`` truncated, deduplicated) and the last epoch
  ``num_epochs``.  (The paper's own files hold the weights one step later, ``epoch_e`` = after
  e+1 steps; its ``model.pt`` is after ``num_epochs`` steps, as ours.)
* every ``log_every`` epochs the train/test loss and accuracy of every seed are computed (the only
  host synchronisation besides checkpoints) and shown on a tqdm bar.

Run directory::

    cfg.json                      the RunConfig (see rep_theory.training.config)
    checkpoints/epoch_<e>.pt      single-seed state dicts, checked files (sha256 header, atomic;
                                  load with rep_theory.training.rundir.load_weights), written in
                                  the background (rep_theory.training.checkpoint_writer)
    resume/state_<e>.pt           checksummed resume states (weights, AdamW state, epoch), newest two
    train_log.csv                 epoch,train_loss,test_loss,train_acc,test_acc
    model.pt                      final weights (a checked file); its presence marks the run finished

Seed batching: runs whose configs differ only in ``seed`` train together in one seed-batched
model (:mod:`rep_theory.training.models`), each seed with its own init, split and AdamW state.  AdamW is
elementwise, so stacking the parameters gives every seed exactly its own update.

Resume: a resume state is written (atomically, with a sha256, via :func:`rep_theory.io.save_checked`)
whenever ``resume_every_s`` seconds have passed, on Ctrl-C / SIGTERM, and at the end.  Training a
run again continues from its newest state that verifies (a corrupt one is reported with
``logging.warning`` and the previous one used); checkpoints after it are recomputed identically.
Training draws no random numbers after initialisation (full batch, no dropout), so the epoch, the
weights and the AdamW moments are the whole state.

On CUDA each training step (forward, backward, AdamW with ``capturable=True``) is captured once as
a CUDA graph and replayed.  Training is deterministic on CPU and CUDA alike (the models avoid
atomic-add scatters), so a resumed run equals an uninterrupted one bit for bit on the same device.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from rep_theory.algebra.groups import get_group
from rep_theory.device import resolve_device
from rep_theory.training.config import RunConfig, load_config
from rep_theory.training.data import element_permutation, make_split
from rep_theory.training.rundir import checkpoint_path, list_checkpoints, resume_files, run_status
from rep_theory.io import CorruptFileError, atomic_write_text, load_checked, save_checked
from rep_theory.training.batched import BatchedModel, make_batched_model
from rep_theory.training.checkpoint_writer import CheckpointWriter
from rep_theory.training.models import GroupModel
from rep_theory.training.routing import make_router
from rep_theory.training.step import evaluate_pairs, make_optimizer, make_train_step, stack_splits
from rep_theory.training.constants import DEFAULT_RESUME_EVERY_S, Terminated

__all__ = ["checkpoint_epochs", "train_runs", "train_run", "fit", "Terminated", "LOG_COLUMNS", "DEFAULT_RESUME_EVERY_S"]

logger = logging.getLogger(__name__)

LOG_COLUMNS = ("epoch", "train_loss", "test_loss", "train_acc", "test_acc")
"""Columns of ``train_log.csv``."""


_RESUME_FORMAT = 1
_KEEP_RESUME_STATES = 2


# =================================================================================================
# Small pure helpers
# =================================================================================================
def checkpoint_epochs(num_epochs: int, num_checkpoints: int = 1000) -> list[int]:
    """The paper's checkpoint epochs: 0, ``num_checkpoints`` log-spaced ints in [1, num_epochs], num_epochs.

    >>> checkpoint_epochs(10)
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    >>> checkpoint_epochs(250_000)[-3:]
    [246908, 249999, 250000]
    >>> len(checkpoint_epochs(250_000)), len(checkpoint_epochs(727))   # repeated small epochs count once
    (728, 391)
    """
    if num_epochs < 1:
        raise ValueError(f"num_epochs must be >= 1, got {num_epochs}")
    spaced = np.logspace(0, np.log10(num_epochs), num=num_checkpoints, endpoint=True).astype(np.int64)
    return sorted({0, int(num_epochs), *(int(e) for e in spaced)})


# =================================================================================================
# Resume states
# =================================================================================================
def _resume_dir(run_dir: Path) -> Path:
    return run_dir / "resume"


def _load_resume_state(run_dir: Path, cfg: RunConfig) -> dict | None:
    """The newest resume state that verifies, or None; corrupt ones are reported and skipped."""
    for epoch, path in resume_files(run_dir):
        try:
            state = load_checked(path)
        except (CorruptFileError, EOFError, RuntimeError, OSError) as err:
            logger.warning("resume state %s is unreadable (%s); trying the previous one", path, err)
            continue
        if not isinstance(state, dict) or state.get("format") != _RESUME_FORMAT or state.get("epoch") != epoch:
            logger.warning("resume state %s has an unexpected layout; trying the previous one", path)
            continue
        saved = RunConfig.from_dict(state["config"])
        if saved.replace(device=cfg.device, log_every=cfg.log_every) != cfg:
            raise ValueError(f"{run_dir}/cfg.json changed since training started (resume state {path.name} was "
                             f"trained with {saved.to_dict()}); restore it or delete {_resume_dir(run_dir)}")
        return state
    return None


def _write_resume_state(run_dir: Path, state: dict) -> None:
    epoch = state["epoch"]
    save_checked(_resume_dir(run_dir) / f"state_{epoch}.pt", state)
    for old_epoch, path in resume_files(run_dir)[_KEEP_RESUME_STATES:]:
        if old_epoch != epoch:
            path.unlink(missing_ok=True)


def _read_log(run_dir: Path, before_epoch: int) -> list[dict]:
    path = run_dir / "train_log.csv"
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                if int(row["epoch"]) < before_epoch:
                    rows.append({k: (int(row[k]) if k == "epoch" else float(row[k])) for k in LOG_COLUMNS})
            except (KeyError, ValueError, TypeError):
                logger.warning("%s: skipping a malformed row %r", path, row)
    return rows


def _write_log(run_dir: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(row[k]) if isinstance(row[k], float) else row[k]) for k in LOG_COLUMNS})
    atomic_write_text(run_dir / "train_log.csv", buffer.getvalue())


# =================================================================================================
# The batched training loop
# =================================================================================================
@dataclass
class _Batch:
    """Runs that train together: same config up to seed, same starting epoch."""

    cfgs: list[RunConfig]
    run_dirs: list[Path] | None
    states: list[dict | None]
    start_epoch: int
    logs: list[list[dict]] = field(default_factory=list)


class _GracefulStop:
    """First SIGINT/SIGTERM sets ``requested`` (training saves and stops); a second SIGINT interrupts at once."""

    def __init__(self):
        self.requested = False
        self.signum = signal.SIGINT
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _train_batch(batch: _Batch, device: torch.device, *, progress: bool, resume_every_s: float,
                 cuda_graphs: bool = True) -> BatchedModel:
    cfgs = batch.cfgs
    cfg0 = cfgs[0]
    G = get_group(cfg0.spec)
    n, E = G.order, cfg0.num_epochs
    seeds = [c.seed for c in cfgs]
    element_perm = element_permutation(G, cfg0.paper_order)

    model = make_batched_model(cfg0.model, n, seeds=seeds, embed_dim=cfg0.embed_dim,
                               hidden_dim=cfg0.model_hidden_dim, element_perm=element_perm)
    for i, state in enumerate(batch.states):
        if state is not None:
            model.load_single_state_dict(i, state["model"])
    model.to(device)
    if cfg0.route is not None:  # gradient routing: the same forward pass, a masked backward pass
        model.router = make_router(cfg0, G, device, next(model.parameters()).dtype)
    trainable = [(attr, key) for attr, key in model._KEYS.items() if getattr(model, attr).requires_grad]
    params = [getattr(model, attr) for attr, _ in trainable]
    use_graph = cuda_graphs and device.type == "cuda"
    optimizer = make_optimizer(cfg0, params, capturable=use_graph)
    start = batch.start_epoch
    if start > 0:
        _load_optimizer(optimizer, params, trainable, [s["optimizer"] for s in batch.states], start)

    data = stack_splits([make_split(G, c.frac_train, c.seed, paper_order=c.paper_order) for c in cfgs], device)
    ckpt_epochs = set(checkpoint_epochs(E, cfg0.num_checkpoints))
    logs = batch.logs or [[] for _ in cfgs]
    run_dirs = batch.run_dirs

    def write_checkpoints(epoch: int) -> None:
        targets = []
        for i, run_dir in enumerate(run_dirs):
            path = checkpoint_path(run_dir, epoch)
            if epoch == start and start > 0 and path.exists():
                continue  # written before the resume state this run restarted from
            targets.append((path, i))
        writer.write_seeds({key: getattr(model, attr) for attr, key in model._KEYS.items()}, targets)

    def write_resume(epoch: int) -> None:
        writer.flush()  # a resume state on disk implies every checkpoint before it is too
        cpu = {attr: getattr(model, attr).detach().cpu() for attr in model._KEYS}
        opt_cpu = {}
        if epoch > 0:
            for (attr, key), p in zip(trainable, params):
                st = optimizer.state[p]
                opt_cpu[key] = (st["exp_avg"].detach().cpu(), st["exp_avg_sq"].detach().cpu())
        for i, (run_dir, cfg) in enumerate(zip(run_dirs, cfgs)):
            state = {
                "format": _RESUME_FORMAT, "epoch": epoch, "config": cfg.to_dict(),
                "model": {key: cpu[attr][i].clone() for attr, key in model._KEYS.items()},
                "optimizer": None if epoch == 0 else {
                    "step": epoch,
                    "exp_avg": {k: v[0][i].clone() for k, v in opt_cpu.items()},
                    "exp_avg_sq": {k: v[1][i].clone() for k, v in opt_cpu.items()},
                },
            }
            _write_log(run_dir, logs[i])
            _write_resume_state(run_dir, state)

    step = make_train_step(model, optimizer, params, data, graphs=use_graph and start < E)

    desc = f"{cfg0.spec} {cfg0.model_short} seed{'s' if len(seeds) > 1 else ''} {','.join(map(str, seeds))}"
    bar = tqdm(total=E, initial=start, desc=desc, disable=not progress, dynamic_ncols=True, leave=True)
    last_resume = time.monotonic()
    # checkpoints are written by a background thread (serialising, hashing and fsync off the
    # training loop); it is flushed before every resume state and before model.pt
    writer = CheckpointWriter() if run_dirs is not None else None
    try:
        with _GracefulStop() as stop:
            for epoch in range(start, E + 1):
                if run_dirs is not None and epoch in ckpt_epochs:
                    write_checkpoints(epoch)
                if epoch % cfg0.log_every == 0 or epoch == E:
                    tr_loss, tr_acc = evaluate_pairs(model, data["a_train"], data["b_train"], data["y_train"])
                    te_loss, te_acc = evaluate_pairs(model, data["a_test"], data["b_test"], data["y_test"])
                    values = torch.stack([tr_loss, te_loss, tr_acc, te_acc]).cpu().tolist()
                    for i in range(len(seeds)):
                        logs[i].append({"epoch": epoch, "train_loss": values[0][i], "test_loss": values[1][i],
                                        "train_acc": values[2][i], "test_acc": values[3][i]})
                    bar.update(epoch - bar.n)
                    bar.set_postfix(train_loss=f"{max(values[0]):.3g}", test_loss=f"{max(values[1]):.3g}",
                                    test_acc=f"{min(values[3]):.3f}", refresh=False)
                if run_dirs is not None and (epoch == E or stop.requested
                                             or time.monotonic() - last_resume >= resume_every_s):
                    write_resume(epoch)
                    last_resume = time.monotonic()
                if stop.requested:
                    raise (Terminated if stop.signum == signal.SIGTERM else KeyboardInterrupt)(
                        f"training stopped at epoch {epoch}; run again to resume")
                if epoch == E:
                    break
                step()
                bar.update(1)  # host-side only (no device sync); tqdm redraws at most 10 times a second
    except BaseException:
        if writer is not None:
            writer.close(raise_error=False)  # keep the checkpoints reached; do not mask the error
        raise
    finally:
        bar.close()

    if run_dirs is not None:
        writer.close()  # every checkpoint is on disk before model.pt marks the run finished
        cpu = {attr: getattr(model, attr).detach().cpu() for attr in model._KEYS}
        for i, run_dir in enumerate(run_dirs):
            sd = {key: cpu[attr][i].clone() for attr, key in model._KEYS.items()}
            save_checked(Path(run_dir) / "model.pt", sd)
    batch.logs = logs
    return model


def _load_optimizer(optimizer: torch.optim.Optimizer, params, trainable, opt_states: list[dict], epoch: int) -> None:
    for st in opt_states:
        if st is None or st["step"] != epoch:
            raise ValueError(f"resume state optimizer step does not match epoch {epoch}")
    state = {}
    for j, ((attr, key), p) in enumerate(zip(trainable, params)):
        state[j] = {
            "step": torch.tensor(float(epoch)),
            "exp_avg": torch.stack([st["exp_avg"][key] for st in opt_states]).to(p.device, p.dtype),
            "exp_avg_sq": torch.stack([st["exp_avg_sq"][key] for st in opt_states]).to(p.device, p.dtype),
        }
    groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.state_dict()["param_groups"]]
    groups[0]["params"] = list(range(len(params)))
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# =================================================================================================
# Public entry points
# =================================================================================================
def train_runs(run_dirs: Iterable[str | os.PathLike], device: str | torch.device | None = None, *,
               progress: bool = True, resume_every_s: float = DEFAULT_RESUME_EVERY_S,
               cuda_graphs: bool = True) -> list[Path]:
    """Train (or resume) every run directory; runs differing only in seed train as one batch.

    ``device``: overrides each config's ``device`` (``"auto"``: CUDA when present, else CPU).
    Finished runs (``model.pt`` present) are skipped.  Returns the run directories trained now.
    On CUDA each training step is replayed as a CUDA graph (``cuda_graphs=False``: plain eager steps).
    """
    if isinstance(run_dirs, (str, os.PathLike)):
        raise TypeError(f"run_dirs must be a list of run directories, got the single path {str(run_dirs)!r}; "
                        f"pass [{str(run_dirs)!r}]")
    if device is not None:
        resolve_device(device)   # a bad or absent device fails before anything, finished runs included
    dirs: list[Path] = []
    for d in run_dirs:
        p = Path(d).resolve()
        if p not in dirs:
            dirs.append(p)
    groups: dict[tuple, _Batch] = {}
    for run_dir in dirs:
        cfg = load_config(run_dir)
        if run_status(run_dir) == "finished":
            logger.info("%s is finished (model.pt present); skipping", run_dir)
            continue
        state = _load_resume_state(run_dir, cfg)
        start = 0 if state is None else int(state["epoch"])
        if state is None and list_checkpoints(run_dir):   # a fresh start: never mix two trainings' checkpoints
            stem = f"checkpoints.superseded-{time.strftime('%Y%m%dT%H%M%S')}"
            aside = run_dir / stem
            for count in range(1, 1000):
                if not aside.exists():
                    break
                aside = run_dir / f"{stem}-{count}"
            (run_dir / "checkpoints").rename(aside)
            logger.warning("%s: training afresh; the checkpoints of the earlier training are kept in %s",
                           run_dir, aside.name)
        dev = resolve_device(device if device is not None else cfg.device)
        key = (cfg.batch_key(), str(dev), start)
        batch = groups.setdefault(key, _Batch(cfgs=[], run_dirs=[], states=[], start_epoch=start))
        batch.cfgs.append(cfg)
        batch.run_dirs.append(run_dir)
        batch.states.append(state)
        batch.logs.append(_read_log(run_dir, start) if start > 0 else [])
    trained = []
    for (_, dev, start), batch in groups.items():
        if start > 0:
            logger.info("resuming %d run(s) from epoch %d", len(batch.cfgs), start)
        _train_batch(batch, torch.device(dev), progress=progress, resume_every_s=resume_every_s,
                     cuda_graphs=cuda_graphs)
        trained.extend(batch.run_dirs)
    return trained


def train_run(run_dir: str | os.PathLike, device: str | torch.device | None = None, **kwargs) -> Path | None:
    """Train (or resume) one run directory; see :func:`train_runs`."""
    out = train_runs([run_dir], device, **kwargs)
    return out[0] if out else None


def fit(cfgs: RunConfig | Sequence[RunConfig], device: str | torch.device | None = None, *,
        progress: bool = False, cuda_graphs: bool = True) -> tuple[list[GroupModel], list[list[dict]]]:
    """Train configs that differ only in seed together, in memory (no run directory).

    Returns ``(models, logs)``: one single-seed model (on ``device``) and one list of log rows
    (``LOG_COLUMNS``) per config.
    """
    cfgs = [cfgs] if isinstance(cfgs, RunConfig) else list(cfgs)
    if not cfgs:
        raise ValueError("fit needs at least one RunConfig")
    wrong = [type(c).__name__ for c in cfgs if not isinstance(c, RunConfig)]
    if wrong:
        raise TypeError(f"fit takes RunConfigs (rep_theory.training.config), got {wrong}")
    keys = {c.batch_key() for c in cfgs}
    if len(keys) != 1:
        raise ValueError("fit trains configs that differ only in seed; got configs that differ otherwise")
    dev = resolve_device(device if device is not None else cfgs[0].device)
    batch = _Batch(cfgs=cfgs, run_dirs=None, states=[None] * len(cfgs), start_epoch=0)
    model = _train_batch(batch, dev, progress=progress, resume_every_s=math.inf, cuda_graphs=cuda_graphs)
    return [model.to_single(i) for i in range(len(cfgs))], batch.logs
