"""The batch runner: brings every run of a batch directory to "evaluated".

:func:`run_batch` trains the runs
that are not trained (runs that differ only in seed train together in one job, through
:func:`rep_theory.training.train.train_runs`), evaluates every run that is not evaluated
(:func:`rep_theory.pipeline.reports.evaluate_and_draw`: every checkpoint, the learning order and the
per-run figures), then draws the batch figures and writes the batch tables.  What is complete is skipped,
what was interrupted resumes (the trainer and the evaluator both resume), what fails is recorded
in ``<run>/failure.json`` and retried; a failing job never stops the others.

Jobs run through a pluggable :class:`Backend` (``submit(job)`` / ``wait(handles)``):
:class:`LocalBackend` runs them one after another in this process, :class:`ProcessBackend` in a
pool of worker processes; a distributed backend only has to run :func:`execute_job` remotely.
Each job locks its run directories (``<run>/.lock``, ``fcntl.flock``), so two pipelines never work
on the same run at once: the second skips it as *busy*.

Grids and batch directories: :mod:`rep_theory.pipeline.grids`; the run-directory states and the
per-run lock: :mod:`rep_theory.training.rundir`.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import contextlib
import dataclasses
import json
import logging
import multiprocessing
import os
import re
import signal
import time
import traceback
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

from rep_theory.analysis.batch_figures import write_figures
from rep_theory.analysis.summaries import collect_runs
from rep_theory.analysis.tables import write_tables
from rep_theory.io import atomic_write_json
from rep_theory.pipeline.reports import evaluate_and_draw
from rep_theory.training.train import train_runs
from rep_theory.training.config import load_config
from rep_theory.training.rundir import RunLockedError, RunState, run_lock, run_state, staleness

__all__ = ["batch_status", "Job", "JobResult", "execute_job", "record_failure", "Backend", "LocalBackend",
           "ProcessBackend", "plan_jobs", "BatchReport", "run_batch", "FAILURE_NAME"]

logger = logging.getLogger(__name__)

FAILURE_NAME = "failure.json"
"""Record of the last failed job of a run (error, traceback, attempts); removed on success."""


# --------------------------------------------------------------------------------------------
# Batch status
# --------------------------------------------------------------------------------------------
def _run_dirs(batch_dir: Path, only: str | None) -> list[Path]:
    if batch_dir.exists() and not batch_dir.is_dir():
        raise NotADirectoryError(f"{batch_dir} is a file; expected a batch directory of run directories")
    if not batch_dir.is_dir():
        raise FileNotFoundError(f"batch directory {batch_dir} does not exist; create it with "
                                f"`rep-theory create {batch_dir} --grid NAME`")
    pattern = re.compile(only) if only else None
    runs = sorted(p for p in batch_dir.iterdir() if (p / "cfg.json").is_file()
                  and (pattern is None or pattern.search(p.name)))
    if not runs:  # nothing to do is almost always a wrong path or pattern: say so
        if (batch_dir / "cfg.json").is_file():
            raise ValueError(f"{batch_dir} is a run directory, not a batch directory of runs; "
                             f"pass its parent, or use `rep-theory train/eval {batch_dir}`")
        if only:
            raise ValueError(f"no run directory in {batch_dir} matches --only {only!r}")
        raise ValueError(f"{batch_dir} holds no run directories (sub-folders with a cfg.json); "
                         f"create them with `rep-theory create {batch_dir} --grid NAME`")
    return runs


def batch_status(batch_dir: str | Path, *, only: str | None = None,
                 final_only: bool = False) -> dict[str, dict[str, Any]]:
    """``{run name: {"state": ..., "reason": ..., "failure": <failure.json contents or None>}}`` for a
    batch; ``reason`` says why a trained run is not evaluated (:func:`~rep_theory.training.rundir.staleness`),
    else ``None``."""
    status = {}
    for run_dir in _run_dirs(Path(batch_dir), only):
        failure = None
        if (run_dir / FAILURE_NAME).is_file():
            try:
                failure = json.loads((run_dir / FAILURE_NAME).read_text())
            except json.JSONDecodeError:
                failure = {"error": "unreadable failure record"}
        state = run_state(run_dir, final_only=final_only)
        reason = staleness(run_dir, final_only=final_only) if state == RunState.TRAINED else None
        status[run_dir.name] = {"state": state, "reason": reason, "failure": failure}
    return status


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
                train_runs([Path(d) for d in job.run_dirs], device=job.device, progress=job.progress)
            else:
                evaluate_and_draw(Path(job.run_dirs[0]), final_only=job.final_only, device=job.device,
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
    """Runs each job in this process, one at a time, in the order submitted: ``wait`` runs the
    oldest pending one and returns it, so the runner's progress bar moves after every job."""

    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self._next = 0

    def submit(self, job: Job) -> int:
        handle, self._next = self._next, self._next + 1
        self._jobs[handle] = job
        return handle

    def wait(self, handles):
        handles = list(handles)
        if not handles:
            return [], []
        first = min(handles)
        return [(first, execute_job(self._jobs.pop(first)))], [h for h in handles if h != first]

    def close(self) -> None:
        self._jobs.clear()


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
        self._closed = False

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

    def interrupt(self, grace_s: float = 30.0) -> None:
        """Ctrl-C in the runner: pass it on to the workers (a training job saves a resume state and
        stops), give them ``grace_s`` seconds, then end those still running.  Without this the
        runner waited for every running job, and could hang in the pool's shutdown."""
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        for process in processes:
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGINT)
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + grace_s
        for process in processes:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            for stop in (process.terminate, process.kill):
                if process.is_alive():
                    stop()
                    process.join(timeout=5)
        self._closed = True

    def close(self) -> None:
        if not self._closed:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._closed = True


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
    for name, error in invalid.items():  # recorded like any failure, so `--status` shows it; cleared once it trains
        record_failure(Job("train", (str(batch_dir / name),), device=device), error, "")
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
    except KeyboardInterrupt:  # stop the workers now; what they finished is kept, the next call resumes
        if own_backend and hasattr(backend, "interrupt"):
            backend.interrupt()
        raise
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
    if not {"figures", "tables"} & set(stages):
        return  # e.g. the bash pipeline's train stage: nothing to draw yet, and nothing to warn about
    runs, _ = collect_runs(batch_dir, only=only)
    if not runs:
        logger.warning("%s: no evaluated run, so no figures or tables", batch_dir)
        return
    if "figures" in stages and figures:
        try:
            report.outputs.update(write_figures(batch_dir, runs=runs))
        except Exception as err:  # figures are a by-product: report, never lose the tables
            logger.error("batch figures failed: %s: %s", type(err).__name__, err)
            report.failed["<figures>"] = f"{type(err).__name__}: {err}"
    if "tables" in stages:
        report.outputs.update(write_tables(batch_dir, only=only))
