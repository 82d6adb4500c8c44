"""Grids of runs, batch directories and the batch runner (layer 7).

A *grid* names a set of runs; :func:`create_batch` turns it into one run directory per (group,
model, variant, seed) inside a *batch directory*, each holding the ``cfg.json`` of a
:class:`rep_theory.training.config.RunConfig`.  Run names are the paper's::

    <group>_<MLP|T|B>[_<variant>]_seed<k>      e.g. S5_MLP_seed1, C113_T_seed3,
                                                    S5_MLP_hidden_dim_32_seed1

:func:`run_batch` then brings every run of a batch directory to "evaluated": it trains the runs
that are not trained (runs that differ only in seed train together in one job, through
:func:`rep_theory.training.train.train_runs`), evaluates every run that is not evaluated
(:func:`rep_theory.analysis.evaluate.evaluate_run`: every checkpoint, the learning order and the per-run
figures), then draws the batch figures and writes the batch tables.  What is complete is skipped,
what was interrupted resumes (the trainer and the evaluator both resume), what fails is recorded
in ``<run>/failure.json`` and retried; a failing job never stops the others.

Jobs run through a pluggable :class:`Backend` (``submit(job)`` / ``wait(handles)``):
:class:`LocalBackend` runs them one after another in this process, :class:`ProcessBackend` in a
pool of worker processes; a distributed backend only has to run :func:`execute_job` remotely.
Each job locks its run directories (``<run>/.lock``, ``fcntl.flock``), so two pipelines never work
on the same run at once: the second skips it as *busy*.

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

import concurrent.futures
import concurrent.futures.process
import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import multiprocessing
import os
import re
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

from rep_theory.training.config import RunConfig, load_config, paper_defaults
from rep_theory.io import atomic_write_json

__all__ = ["GRIDS", "GridRun", "grid_runs", "load_grid", "create_batch", "run_name",
           "RunState", "run_state", "batch_status", "run_lock", "RunLockedError", "Job",
           "JobResult", "execute_job", "record_failure", "Backend", "LocalBackend", "ProcessBackend", "plan_jobs",
           "BatchReport", "run_batch", "PAPER_GROUPS", "LOCK_NAME", "FAILURE_NAME"]

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"
"""Lock file inside each run directory (``fcntl.flock``; the file itself stays)."""

FAILURE_NAME = "failure.json"
"""Record of the last failed job of a run (error, traceback, attempts); removed on success."""

PAPER_GROUPS = ("C113", "C118", "D59", "D61", "S5", "S6", "A5")
"""The paper's groups, in its tables' order."""

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


# --------------------------------------------------------------------------------------------
# Run state and locks
# --------------------------------------------------------------------------------------------
class RunState:
    """States of a run directory, in pipeline order."""

    CREATED = "created"
    TRAINED = "trained"
    EVALUATED = "evaluated"


def _mtime(path: Path) -> float:
    return path.stat().st_mtime_ns if path.exists() else -1


def is_trained(run_dir: Path) -> bool:
    """Final weights (``model.pt``) exist: the trainer writes them last."""
    return (run_dir / "model.pt").is_file()


def is_evaluated(run_dir: Path, *, final_only: bool = False) -> bool:
    """``summary_metrics.json`` is newer than ``model.pt`` and, unless ``final_only``, the learning
    order (written last by the evaluator) is newer than the summary."""
    summary = run_dir / "summary_metrics.json"
    if not is_trained(run_dir) or _mtime(summary) < _mtime(run_dir / "model.pt"):
        return False
    if final_only:
        return True
    order = run_dir / "key_reps_in_order.txt"
    return _mtime(order) >= _mtime(summary) and (run_dir / "metrics.csv").is_file()


def run_state(run_dir: str | Path, *, final_only: bool = False) -> str:
    """:class:`RunState` of a run directory."""
    run_dir = Path(run_dir)
    if is_evaluated(run_dir, final_only=final_only):
        return RunState.EVALUATED
    if is_trained(run_dir):
        return RunState.TRAINED
    return RunState.CREATED


def _run_dirs(batch_dir: Path, only: str | None) -> list[Path]:
    if not batch_dir.is_dir():
        raise FileNotFoundError(f"batch directory {batch_dir} does not exist; create it with "
                                f"`rep-theory create {batch_dir} --grid NAME`")
    pattern = re.compile(only) if only else None
    return sorted(p for p in batch_dir.iterdir() if (p / "cfg.json").is_file()
                  and (pattern is None or pattern.search(p.name)))


def batch_status(batch_dir: str | Path, *, only: str | None = None,
                 final_only: bool = False) -> dict[str, dict[str, Any]]:
    """``{run name: {"state": ..., "failure": <failure.json contents or None>}}`` for a batch."""
    status = {}
    for run_dir in _run_dirs(Path(batch_dir), only):
        failure = None
        if (run_dir / FAILURE_NAME).is_file():
            try:
                failure = json.loads((run_dir / FAILURE_NAME).read_text())
            except json.JSONDecodeError:
                failure = {"error": "unreadable failure record"}
        status[run_dir.name] = {"state": run_state(run_dir, final_only=final_only),
                                "failure": failure}
    return status


class RunLockedError(RuntimeError):
    """Another process holds the lock of a run directory."""


@contextlib.contextmanager
def run_lock(run_dirs: Sequence[str | Path]) -> Iterator[None]:
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


# --------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Job:
    """A unit of work for a backend: train a seed group, or evaluate one run.

    Attributes
    ----------
    kind : str
        ``"train"`` (``run_dirs`` differ only in seed) or ``"evaluate"`` (one run).
    run_dirs : tuple of str
        Run directories the job works on (and locks).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    final_only : bool
        Evaluate only the final model.
    progress : bool
        Show the job's own progress bar.
    """

    kind: str
    run_dirs: tuple[str, ...]
    device: str = "auto"
    final_only: bool = False
    progress: bool = False

    def __post_init__(self):
        if self.kind not in ("train", "evaluate"):
            raise ValueError(f"job kind must be 'train' or 'evaluate', got {self.kind!r}")
        if not self.run_dirs:
            raise ValueError("a job needs at least one run directory")
        if self.kind == "evaluate" and len(self.run_dirs) != 1:
            raise ValueError(f"an evaluate job takes one run, got {len(self.run_dirs)}")

    @property
    def name(self) -> str:
        names = [Path(d).name for d in self.run_dirs]
        return f"{self.kind} {names[0]}" + (f" (+{len(names) - 1} seeds)" if len(names) > 1 else "")


@dataclasses.dataclass(frozen=True)
class JobResult:
    """Outcome of a job: ``status`` is ``"done"``, ``"failed"`` or ``"busy"`` (locked elsewhere)."""

    job: Job
    status: str
    error: str = ""
    seconds: float = 0.0


def record_failure(job: Job, error: str, trace: str) -> None:
    """Write (or update) ``failure.json`` in each of the job's run directories, counting attempts.

    Backends call it for a job that never returned a result (e.g. its worker died every try)."""
    for run_dir in job.run_dirs:
        path = Path(run_dir) / FAILURE_NAME
        attempts = 0
        if path.is_file():
            try:
                attempts = int(json.loads(path.read_text()).get("attempts", 0))
            except (json.JSONDecodeError, ValueError, AttributeError):
                attempts = 0
        atomic_write_json(path, {"job": job.kind, "error": error, "traceback": trace,
                                 "attempts": attempts + 1, "time": time.strftime("%Y-%m-%d %H:%M:%S")})


def _clear_failure(job: Job) -> None:
    for run_dir in job.run_dirs:
        with contextlib.suppress(FileNotFoundError):
            (Path(run_dir) / FAILURE_NAME).unlink()


def execute_job(job: Job) -> JobResult:
    """Run one job where it is called (this process, a worker process, a remote worker).

    Locks the job's run directories; any exception becomes a ``"failed"`` result and is
    recorded in each run's ``failure.json``.  Never raises except on ``KeyboardInterrupt``.
    """
    start = time.monotonic()
    try:
        with run_lock(job.run_dirs):
            if job.kind == "train":
                from rep_theory.training.train import train_runs
                train_runs([Path(d) for d in job.run_dirs], device=job.device, progress=job.progress)
            else:
                from rep_theory.analysis.evaluate import evaluate_run
                evaluate_run(Path(job.run_dirs[0]), final_only=job.final_only, device=job.device,
                             progress=job.progress)
    except RunLockedError as err:
        return JobResult(job, "busy", str(err), time.monotonic() - start)
    except Exception as err:  # a failing job must never stop the others
        message = f"{type(err).__name__}: {err}"
        logger.error("%s failed: %s", job.name, message)
        record_failure(job, message, traceback.format_exc())
        return JobResult(job, "failed", message, time.monotonic() - start)
    _clear_failure(job)
    return JobResult(job, "done", "", time.monotonic() - start)


class Backend(Protocol):
    """Runs jobs.  ``submit`` starts a job and returns a handle; ``wait`` blocks until at least one
    of ``handles`` is finished and returns ``(finished [(handle, JobResult)], still running)``."""

    def submit(self, job: Job) -> Any: ...

    def wait(self, handles: Sequence[Any]) -> tuple[list[tuple[Any, JobResult]], list[Any]]: ...

    def close(self) -> None: ...


class LocalBackend:
    """Runs each job in this process, one at a time (``submit`` runs it to completion)."""

    def __init__(self) -> None:
        self._results: dict[int, JobResult] = {}
        self._next = 0

    def submit(self, job: Job) -> int:
        handle, self._next = self._next, self._next + 1
        self._results[handle] = execute_job(job)
        return handle

    def wait(self, handles):
        return [(h, self._results.pop(h)) for h in handles], []

    def close(self) -> None:
        self._results.clear()


class ProcessBackend:
    """Runs jobs in ``workers`` processes (``spawn``: safe with torch and CUDA).

    A worker that dies (killed, out of memory) fails its job; the pool is then rebuilt so the
    remaining and retried jobs still run.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._workers = workers
        self._pool = self._new_pool()

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self._workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, job: Job) -> concurrent.futures.Future:
        try:
            future = self._pool.submit(execute_job, job)
        except concurrent.futures.process.BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            future = self._pool.submit(execute_job, job)
        future.job = job  # for the report if the worker dies
        return future

    def wait(self, handles):
        done, pending = concurrent.futures.wait(handles, return_when=concurrent.futures.FIRST_COMPLETED)
        finished = []
        for future in done:
            try:
                finished.append((future, future.result()))
            except Exception as err:  # the worker process itself died
                job = future.job
                message = f"worker process died: {type(err).__name__}: {err}"
                record_failure(job, message, "")
                finished.append((future, JobResult(job, "failed", message)))
        return finished, list(pending)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def plan_jobs(run_dirs: Iterable[Path], *, device: str = "auto", final_only: bool = False,
              progress: bool = False) -> tuple[list[Job], list[Path], dict[str, str]]:
    """Plan the work on ``run_dirs``.

    Returns ``(train_jobs, to_evaluate, invalid)``: one train job per group of untrained runs
    that differ only in seed (:meth:`RunConfig.batch_key`), the trained but not evaluated runs,
    and ``{run name: error}`` for runs whose ``cfg.json`` does not load.
    """
    groups: dict[tuple, list[Path]] = {}
    to_evaluate, invalid = [], {}
    for run_dir in run_dirs:
        state = run_state(run_dir, final_only=final_only)
        if state == RunState.CREATED:
            try:
                config = load_config(run_dir)
            except ValueError as err:
                invalid[run_dir.name] = f"invalid cfg.json: {err}"
                continue
            groups.setdefault(config.batch_key(), []).append(run_dir)
        elif state == RunState.TRAINED:
            to_evaluate.append(run_dir)
    train_jobs = [Job("train", tuple(str(d) for d in dirs), device=device, progress=progress)
                  for dirs in groups.values()]
    return train_jobs, to_evaluate, invalid


# --------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class BatchReport:
    """What :func:`run_batch` did.  ``failed``/``busy`` hold run names."""

    batch_dir: Path
    runs: int = 0
    trained: list[str] = dataclasses.field(default_factory=list)
    evaluated: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    busy: list[str] = dataclasses.field(default_factory=list)
    outputs: dict[str, Path] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"{self.batch_dir}: {self.runs} run(s); trained {len(self.trained)}, evaluated "
                 f"{len(self.evaluated)}, already complete {len(self.skipped)}, busy "
                 f"{len(self.busy)}, failed {len(self.failed)} ({self.seconds:.1f} s)"]
        lines += [f"  FAILED {name}: {error}" for name, error in sorted(self.failed.items())]
        lines += [f"  busy (locked by another pipeline): {name}" for name in self.busy]
        if "tables.md" in self.outputs:
            lines.append(f"  tables: {self.outputs['tables.md']}")
        return "\n".join(lines)


def run_batch(batch_dir: str | Path, *, only: str | None = None, final_only: bool = False,
              device: str = "auto", jobs: int = 1, retries: int = 1, stages: Sequence[str] = (
                  "train", "evaluate", "figures", "tables"),
              figures: bool = True, progress: bool = False,
              backend: Backend | None = None) -> BatchReport:
    """Bring every run of ``batch_dir`` (matching ``only``) to evaluated, then figures and tables.

    Parameters
    ----------
    only : str, optional
        Regular expression over run names.
    final_only : bool
        Evaluate only the final models (no per-checkpoint metrics or learning order).
    device : str
        Passed to the trainer and the evaluator (``"auto"``: CUDA when present).
    jobs : int
        Worker processes (1: everything in this process).  Ignored when ``backend`` is given.
    retries : int
        How often a failed job is re-submitted within this call.
    stages : sequence of str
        Subset of ``"train"``, ``"evaluate"``, ``"figures"``, ``"tables"`` to run.
    figures : bool
        ``False`` skips the batch figures (the evaluator still draws per-run figures).
    progress : bool
        One progress bar over runs (and each job's own bar when ``jobs == 1``).
    backend : Backend, optional
        Where jobs run; default :class:`LocalBackend` (``jobs == 1``) or :class:`ProcessBackend`.

    Returns a :class:`BatchReport`; ``len(report.failed)`` is the number of runs that failed.
    """
    from tqdm.auto import tqdm
    unknown = sorted(set(stages) - {"train", "evaluate", "figures", "tables"})
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; expected train, evaluate, figures, tables")
    start = time.monotonic()
    batch_dir = Path(batch_dir)
    run_dirs = _run_dirs(batch_dir, only)
    report = BatchReport(batch_dir=batch_dir, runs=len(run_dirs))
    own_backend = backend is None
    if backend is None:
        backend = LocalBackend() if jobs <= 1 else ProcessBackend(jobs)
    inner_progress = progress and isinstance(backend, LocalBackend)
    train_jobs, to_evaluate, invalid = plan_jobs(run_dirs, device=device, final_only=final_only,
                                                 progress=inner_progress)
    report.failed.update(invalid)
    pending_names = {d.name for job in train_jobs for d in map(Path, job.run_dirs)}
    pending_names |= {d.name for d in to_evaluate} | set(invalid)
    report.skipped = sorted(d.name for d in run_dirs if d.name not in pending_names)
    bar = tqdm(total=len(run_dirs), initial=len(report.skipped) + len(invalid),
               desc=f"batch {batch_dir.name}",
               unit="run", disable=not progress, position=0)
    attempts: dict[Job, int] = {}
    handles: dict[Any, Job] = {}

    def submit(job: Job) -> None:
        attempts[job] = attempts.get(job, 0) + 1
        handle = backend.submit(job)
        handles[handle] = job

    def evaluate_job(run_dir: str | Path) -> Job:
        return Job("evaluate", (str(run_dir),), device=device, final_only=final_only,
                   progress=inner_progress)

    try:
        if "train" in stages:
            for job in train_jobs:
                submit(job)
        else:
            for job in train_jobs:
                bar.update(len(job.run_dirs))
        if "evaluate" in stages:
            for run_dir in to_evaluate:
                submit(evaluate_job(run_dir))
        else:
            bar.update(len(to_evaluate))
        while handles:
            finished, _ = backend.wait(list(handles))
            for handle, result in finished:
                job = handles.pop(handle)
                names = [Path(d).name for d in job.run_dirs]
                if result.status == "done":
                    if job.kind == "train":
                        report.trained += names
                        for run_dir in job.run_dirs:
                            if "evaluate" in stages:
                                submit(evaluate_job(run_dir))
                            else:
                                bar.update(1)
                    else:
                        report.evaluated += names
                        bar.update(1)
                elif result.status == "busy":
                    report.busy += names
                    bar.update(len(names))
                elif attempts[job] <= retries:
                    logger.warning("%s failed (%s); retrying", job.name, result.error)
                    submit(job)
                else:
                    for name in names:
                        report.failed[name] = result.error
                    bar.update(len(names))
    finally:
        bar.close()
        if own_backend:
            backend.close()
    _finish(report, batch_dir, only=only, stages=stages, figures=figures)
    report.seconds = time.monotonic() - start
    return report


def _finish(report: BatchReport, batch_dir: Path, *, only: str | None, stages: Sequence[str],
            figures: bool) -> None:
    """Batch figures and tables over every evaluated run (never raises for a missing run)."""
    from rep_theory.analysis.summaries import collect_runs, write_tables
    runs, _ = collect_runs(batch_dir, only=only)
    if not runs:
        logger.warning("%s: no evaluated run, so no figures or tables", batch_dir)
        return
    if "figures" in stages and figures:
        from rep_theory.analysis.batch_figures import write_figures
        try:
            report.outputs.update(write_figures(batch_dir, runs=runs))
        except Exception as err:  # figures are a by-product: report, never lose the tables
            logger.error("batch figures failed: %s: %s", type(err).__name__, err)
            report.failed["<figures>"] = f"{type(err).__name__}: {err}"
    if "tables" in stages:
        report.outputs.update(write_tables(batch_dir, only=only))
