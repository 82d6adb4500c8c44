"""Run the batch pipeline on a Ray cluster: :class:`RayBackend`.

:func:`rep_theory.pipeline.runner.run_batch` hands its jobs (train one seed group of one config,
evaluate one run) to a backend.  :class:`RayBackend` turns each job into one Ray task that calls
:func:`rep_theory.pipeline.runner.execute_job` on whichever node Ray picks::

    from rep_theory.pipeline.runner import run_batch
    from rep_theory.pipeline.ray_backend import RayBackend

    with RayBackend(gpus_per_job=0.25) as backend:      # 4 jobs share each GPU
        report = run_batch("batch_experiments", backend=backend)

Conventions
-----------
* **Shared filesystem.** Tasks read and write the run directories themselves, so the batch
  directory must be on a filesystem that every node mounts *at the same path* (NFS, Lustre, a
  cluster home directory).  Jobs are sent with absolute paths.  A task that cannot see its run
  directory fails with a message naming the node, instead of training into a local folder.
  Everything else is what the local backend does, because the task only calls ``execute_job``:
  atomic writes, ``<run>/.lock`` locks (a run locked elsewhere comes back *busy*), skip what is
  complete, resume what was interrupted, ``<run>/failure.json`` for failures.
* **Resources.** Each task asks for ``cpus_per_job`` CPUs (default 1; Ray then sets
  ``OMP_NUM_THREADS`` to match) and ``gpus_per_job`` GPUs.  ``gpus_per_job=None`` means 1 if the
  cluster has GPUs and 0 if it has none.  A fraction packs several jobs on one GPU: 0.25 runs four.
  Ray assigns each task its GPU through ``CUDA_VISIBLE_DEVICES``, so a job's device stays
  ``"auto"``/``"cuda"``.  A job with no GPU share runs on the CPU (its ``"auto"`` becomes ``"cpu"``),
  so it never lands on a GPU that Ray did not give it.
* **Connecting** (``address``, the semantics of ``ray.init(address=...)``):
  ``None`` connects to the cluster named by ``$RAY_ADDRESS`` or to one started on this machine
  with ``ray start``.  If neither exists it starts a local Ray instance that uses all of this
  machine's CPUs and GPUs.  ``"auto"`` connects to an existing cluster and fails if there is none.
  ``"HOST:6379"`` is a cluster's head node, ``"ray://HOST:10001"`` goes through Ray Client, and
  ``"local"`` always starts a new local instance.  If Ray is already initialised in this process,
  that connection is used and :meth:`RayBackend.close` leaves it open.  Otherwise ``close``
  disconnects, which also stops a local instance that this backend started.
* **Fault tolerance.** When a task's worker process or node dies (killed, out of memory, node
  lost), Ray runs the task again, up to ``max_retries`` times.  This covers system failures only:
  ``execute_job`` turns exceptions into ``"failed"`` results, which are never retried here.  A
  retried training job resumes from its run's newest resume state.  If every try dies, the job
  comes back ``"failed"``, recorded in each run's ``failure.json``.  ``run_batch`` then retries it
  ``retries`` more times as a fresh task.  A run that still fails is listed in the report, and
  the other runs complete.

``ray`` is imported only by this module, only when a :class:`RayBackend` is made; the local
backends need nothing beyond the package's own dependencies (``pip install ".[ray]"`` adds it).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
from pathlib import Path
from typing import Any, Callable, Sequence

from rep_theory.pipeline.runner import Job, JobResult, record_failure, execute_job

__all__ = ["RayBackend", "DEFAULT_MAX_RETRIES"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_RETRIES = 3
"""Times Ray re-runs a task whose worker process or node died (system failures only)."""

_CANCEL_GRACE_S = 30.0
"""Seconds :meth:`RayBackend.close` waits for cancelled jobs (the trainer saves a resume state)."""


def _import_ray():
    try:
        import ray
    except ImportError as err:
        raise ImportError(
            f"the Ray backend needs the 'ray' package, which is not installed ({err}); install it "
            f"with `pip install \".[ray]\"` (from the repository) or `pip install \"ray>=2.9\"`"
        ) from err
    return ray


def _run_job(job: Job, execute: Callable[[Job], JobResult]) -> JobResult:
    """The Ray task body: check that the run directories are visible on this node, then run the job."""
    missing = [d for d in job.run_dirs if not os.path.isdir(d)]
    if missing:
        return JobResult(job, "failed",
                         f"run directory {missing[0]} not found on Ray node {socket.gethostname()}: "
                         f"the batch directory must be on a filesystem every node mounts at the "
                         f"same path")
    return execute(job)


def _check_share(name: str, value: Any, *, low_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if value < 0 or (low_open and value == 0):
        bound = "> 0" if low_open else ">= 0"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


class RayBackend:
    """Backend of :func:`rep_theory.pipeline.runner.run_batch` that runs every job as a Ray task.

    Parameters
    ----------
    address : str, optional
        Cluster to connect to.  Uses the semantics of ``ray.init(address=...)``; see the module
        docstring.  ``None``: ``$RAY_ADDRESS`` or a cluster running on this machine, else a new
        local instance.
    gpus_per_job : float, optional
        GPUs per job, in [0, 1].  A job uses one device, so 0.25 packs four jobs on a GPU.
        ``None``: 1 if the cluster has GPUs, else 0.
    cpus_per_job : float
        CPUs per job (> 0).  On a CPU-only cluster this sets how many jobs a node runs at once.
    max_retries : int
        Times Ray re-runs a task whose worker process or node died (>= 0).
    execute : callable, optional
        The function each task runs on its :class:`~rep_theory.pipeline.runner.Job`.  Default:
        :func:`~rep_theory.pipeline.runner.execute_job`.  A replacement (a wrapper that sets up a
        node, or a test's fault injector) must be picklable by Ray and return a ``JobResult``.
    **init_kwargs
        Passed to ``ray.init`` when this backend connects (``num_cpus``, ``num_gpus`` for a local
        instance, ``runtime_env``, ``include_dashboard``, ...).  Not allowed when Ray is already
        initialised in this process.

    Raises ``ImportError`` (with the install command) when ray is missing, and ``ValueError``
    when the request can never be met: GPUs asked of a cluster without any, or more CPUs per job
    than the cluster has.
    """

    def __init__(self, address: str | None = None, *, gpus_per_job: float | None = None,
                 cpus_per_job: float = 1.0, max_retries: int = DEFAULT_MAX_RETRIES,
                 execute: Callable[[Job], JobResult] = execute_job, **init_kwargs: Any) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        cpus = _check_share("cpus_per_job", cpus_per_job, low_open=True)
        gpus = None if gpus_per_job is None else _check_share("gpus_per_job", gpus_per_job,
                                                              low_open=False)
        if gpus is not None and gpus > 1:
            raise ValueError(f"gpus_per_job must be in [0, 1] (a job uses one device; 0.25 packs "
                             f"four jobs per GPU), got {gpus}")
        if not callable(execute):
            raise TypeError(f"execute must be callable, got {execute!r}")
        ray = _import_ray()
        self._ray = ray
        self._owns_connection = False
        if ray.is_initialized():
            if address is not None or init_kwargs:
                raise ValueError(
                    f"Ray is already initialised in this process, so address={address!r} and "
                    f"ray.init arguments {sorted(init_kwargs)} cannot apply; call ray.shutdown() "
                    f"first or leave them out to use the current connection")
            logger.info("using this process's Ray connection")
        else:
            ray.init(address=address, **init_kwargs)
            self._owns_connection = True
        try:
            resources = ray.cluster_resources()
            self.cluster_gpus = float(resources.get("GPU", 0.0))
            self.cluster_cpus = float(resources.get("CPU", 0.0))
            if gpus is None:
                gpus = 1.0 if self.cluster_gpus > 0 else 0.0
            if gpus > 0 and self.cluster_gpus == 0:
                raise ValueError(f"gpus_per_job={gpus} but the Ray cluster has no GPU "
                                 f"(resources: {dict(resources)}); use gpus_per_job=0")
            if cpus > self.cluster_cpus:
                raise ValueError(f"cpus_per_job={cpus} but the Ray cluster has "
                                 f"{self.cluster_cpus:g} CPU(s) in all")
        except BaseException:
            self.close()
            raise
        self.gpus_per_job = gpus
        self.cpus_per_job = cpus
        self.max_retries = max_retries
        self._execute = execute
        self._remote = ray.remote(_run_job)
        self._jobs: dict[Any, Job] = {}
        logger.info("Ray backend: %g CPU(s), %g GPU(s) in the cluster; %g CPU(s) and %g GPU(s) "
                    "per job", self.cluster_cpus, self.cluster_gpus, cpus, gpus)

    def __repr__(self) -> str:
        return (f"RayBackend(cpus_per_job={self.cpus_per_job:g}, gpus_per_job={self.gpus_per_job:g}, "
                f"max_retries={self.max_retries}, cluster CPUs={self.cluster_cpus:g}, "
                f"GPUs={self.cluster_gpus:g})")

    def __enter__(self) -> "RayBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _remote_job(self, job: Job) -> tuple[Job, float]:
        """The job as sent (absolute paths; CPU when it has no GPU share) and its GPU request."""
        device = str(job.device)
        if device.startswith("cuda:") and device != "cuda:0":
            raise ValueError(f"with the Ray backend, Ray gives each job its GPU (as cuda:0 through "
                             f"CUDA_VISIBLE_DEVICES); use device 'auto' or 'cuda', got {device!r}")
        gpus = 0.0 if device == "cpu" else self.gpus_per_job
        if gpus == 0 and device == "auto":
            device = "cpu"
        if gpus == 0 and device.startswith("cuda"):
            raise ValueError(f"job {job.name!r} asks for device {device!r} but the Ray backend "
                             f"gives jobs no GPU (gpus_per_job=0); use device 'auto' or 'cpu'")
        run_dirs = tuple(str(Path(d).resolve()) for d in job.run_dirs)
        return dataclasses.replace(job, run_dirs=run_dirs, device=device), gpus

    def submit(self, job: Job) -> Any:
        """Start ``job`` as a Ray task; returns its ``ObjectRef`` (the handle)."""
        remote_job, gpus = self._remote_job(job)
        ref = self._remote.options(
            num_cpus=self.cpus_per_job, num_gpus=gpus, max_retries=self.max_retries,
            retry_exceptions=False, name=job.name,
        ).remote(remote_job, self._execute)
        self._jobs[ref] = job
        return ref

    def _result(self, ref: Any) -> JobResult:
        job = self._jobs.pop(ref)
        try:
            result = self._ray.get(ref)
        except self._ray.exceptions.RayError as err:  # worker/node died on every try, or cancelled
            first_line = (str(err).strip().splitlines() or [""])[0]
            message = (f"Ray task died ({type(err).__name__}, after {self.max_retries} "
                       f"retr{'y' if self.max_retries == 1 else 'ies'}): {first_line}")
            logger.error("%s failed: %s", job.name, message)
            try:
                record_failure(job, message, str(err))
            except OSError as record_err:
                logger.error("%s: could not write the failure record: %s", job.name, record_err)
            return JobResult(job, "failed", message)
        return dataclasses.replace(result, job=job)

    def wait(self, handles: Sequence[Any]) -> tuple[list[tuple[Any, JobResult]], list[Any]]:
        """Block until at least one of ``handles`` is finished; returns ``(finished, pending)``
        with every handle that is finished by then as ``(handle, JobResult)``."""
        handles = list(handles)
        if not handles:
            return [], []
        ray = self._ray
        ready, pending = ray.wait(handles, num_returns=1, fetch_local=False)
        if pending:
            more, pending = ray.wait(pending, num_returns=len(pending), timeout=0, fetch_local=False)
            ready += more
        return [(ref, self._result(ref)) for ref in ready], list(pending)

    def close(self) -> None:
        """Cancel unfinished jobs, then disconnect if this backend connected.

        A cancelled running job gets a ``KeyboardInterrupt``, so the trainer saves a resume
        state.  ``close`` waits up to 30 s for those jobs before it disconnects.
        """
        ray = self._ray
        pending = list(getattr(self, "_jobs", {}))
        if pending and ray.is_initialized():
            logger.warning("cancelling %d unfinished Ray job(s)", len(pending))
            for ref in pending:
                try:
                    ray.cancel(ref)
                except Exception as err:  # already finished or its owner is gone
                    logger.debug("cancel failed: %s", err)
            ray.wait(pending, num_returns=len(pending), timeout=_CANCEL_GRACE_S, fetch_local=False)
        if hasattr(self, "_jobs"):
            self._jobs.clear()
        if self._owns_connection and ray.is_initialized():
            ray.shutdown()
        self._owns_connection = False
