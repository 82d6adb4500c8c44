"""The Ray backend on a multi-node cluster under faults (``ray.cluster_utils.Cluster``).

One machine plays a cluster: a head node with no CPU for tasks and two worker nodes with one CPU
each, so every job runs on a worker node.  The batch pipeline (the paper's recipe of training a
seed group per job, then evaluating each run; Chughtai, Chan & Nanda, "A Toy Model of
Universality", ICML 2023) must

* spread its jobs over both worker nodes;
* complete with the local backend's summaries when a worker node is removed in the middle of a
  training job (Ray reruns the task on the other node);
* resume, not restart, a training task whose worker dies mid-training: the rerun starts from the
  run's newest resume state and still ends at the uninterrupted run's weights.

The grid is tiny (C5 and C7 MLPs, widths 16, final models only).  The test helpers run inside
the Ray workers (shipped by value), where they slow the doomed first try of a training job down
and record what each try saw on disk.  The module is marked ``slow`` (about a minute on 2 cores:
mostly Ray's start-up and its detection of the lost node); it runs by default.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import ray  # part of the test extra: pip install ".[test]"
from ray.cluster_utils import Cluster

from rep_theory.pipeline.grids import create_batch
from rep_theory.pipeline.ray_backend import RayBackend
from rep_theory.pipeline.runner import Job, execute_job, run_batch

from helpers import grid_results, run_grid_locally

pytestmark = pytest.mark.slow

GRID = {"defaults": {"num_epochs": 400, "embed_dim": 16, "hidden_dim": 16, "log_every": 50,
                     "frac_train": 0.8, "lr": 1e-2},
        "runs": [{"group": "C5", "model": "MLP", "seeds": "1-2"},
                 {"group": "C7", "model": "MLP", "seeds": 1}]}
RUNS = ("C5_MLP_seed1", "C5_MLP_seed2", "C7_MLP_seed1")
STAGES = ("train", "evaluate")
SLOW_EPOCH_S = 0.05
"""Seconds each epoch of a doomed first try takes (so it cannot finish before it is killed)."""
KILL_AFTER_EPOCH = 40
"""The doomed try signals once a resume state of at least this epoch is on disk."""

# Fast detection of a lost node (Ray's defaults take ~15 s), as Ray's own fault-tolerance tests do.
_SYSTEM_CONFIG = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                  "health_check_failure_threshold": 4}


@pytest.fixture(scope="module")
def cluster():
    """Head (0 CPUs: schedules, runs no job) and two worker nodes with 1 CPU each; the driver
    (this process) is connected for the module and everything is shut down afterwards."""
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "num_gpus": 0, "include_dashboard": False, "_system_config": _SYSTEM_CONFIG})
    workers = [cluster.add_node(num_cpus=1, num_gpus=0) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="warning", log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield cluster, workers
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def local_results(tmp_path_factory):
    """The grid through the local backend in this process (one thread, as a 1-CPU Ray worker)."""
    return run_grid_locally(tmp_path_factory.mktemp("local"), GRID, RUNS, STAGES)


def _results(batch: Path) -> dict[str, tuple[dict, list[str]]]:
    return grid_results(batch, RUNS)


def _assert_same_as_local(batch: Path, expected) -> None:
    for name, (summary, keys) in _results(batch).items():
        ref_summary, ref_keys = expected[name]
        assert keys == ref_keys and ref_keys, (name, keys, ref_keys)
        assert sorted(summary) == sorted(ref_summary), name
        worst = max(abs(summary[k] - ref_summary[k]) for k in ref_summary)
        assert worst <= 1e-6, f"{name}: summaries differ from the local run's by {worst}"


# --------------------------------------------------------------------------------------------
# What runs inside the workers
# --------------------------------------------------------------------------------------------
def _newest_resume_epoch(run_dir: Path) -> int | None:
    from rep_theory.training.rundir import resume_files
    files = resume_files(run_dir)
    return int(files[0][0]) if files else None


def _log_try(job: Job, **extra) -> None:
    run_dir = Path(job.run_dirs[0])
    record = {"job": job.name, "pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
              "resume_epoch_at_start": _newest_resume_epoch(run_dir) if job.kind == "train" else None, **extra}
    with open(run_dir.parent / "tries.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _record_node(job: Job):
    """Every job: log which node ran it, then run it as the backend would."""
    _log_try(job)
    return execute_job(job)


def _doomed_first_try(job: Job, signal_file: str, kill_self: bool):
    """The first training try of C5: write resume states every epoch, take SLOW_EPOCH_S per epoch,
    and once a resume state of epoch >= KILL_AFTER_EPOCH exists write ``signal_file`` (the driver
    then removes this node) or, with ``kill_self``, SIGKILL this worker.  Later tries run as usual."""
    import rep_theory.pipeline.runner as runner
    import rep_theory.training.train as train
    run_dir = Path(job.run_dirs[0])
    marker = run_dir.parent / signal_file
    _log_try(job)
    if job.kind != "train" or not run_dir.name.startswith("C5") or marker.exists():
        return execute_job(job)

    real_write = train._write_resume_state

    def slow_write(run_dir_, state):
        real_write(run_dir_, state)
        time.sleep(SLOW_EPOCH_S / len(job.run_dirs))  # one write per seed per epoch

    def watch():
        while (_newest_resume_epoch(run_dir) or 0) < KILL_AFTER_EPOCH:
            time.sleep(0.005)
        tmp = marker.with_suffix(".tmp")  # written whole, then renamed: the driver polls for it
        tmp.write_text(json.dumps({"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                                   "epoch": _newest_resume_epoch(run_dir)}))
        os.replace(tmp, marker)
        if kill_self:
            os.kill(os.getpid(), signal.SIGKILL)

    train._write_resume_state = slow_write
    runner.train_runs = lambda dirs, **kw: train.train_runs(dirs, resume_every_s=0.0, **kw)
    threading.Thread(target=watch, daemon=True).start()
    return execute_job(job)


def _tries(batch: Path) -> list[dict]:
    return [json.loads(line) for line in (batch / "tries.jsonl").read_text().splitlines()]


def _check_resumed(batch: Path, marker: dict) -> None:
    """The C5 training job ran twice: first on the doomed worker, then again from a resume state
    at or after the epoch the first try had reached, in another process."""
    c5 = [t for t in _tries(batch) if t["job"].startswith("train C5")]
    assert len(c5) == 2, c5
    first, second = c5
    assert first["resume_epoch_at_start"] is None, "the first try starts from scratch"
    assert second["pid"] != first["pid"] == marker["pid"]
    assert second["resume_epoch_at_start"] is not None and second["resume_epoch_at_start"] >= marker["epoch"] \
        >= KILL_AFTER_EPOCH, f"the retry restarted instead of resuming: {second}, killed at {marker}"
    for name in RUNS[:2]:
        assert (batch / name / "model.pt").is_file() and not (batch / name / "failure.json").exists()


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------
def test_batch_spreads_over_both_worker_nodes(cluster, local_results, tmp_path):
    _, workers = cluster
    create_batch(tmp_path, GRID)
    with RayBackend(execute=_record_node) as backend:
        assert backend.cluster_cpus == 2
        report = run_batch(tmp_path, backend=backend, final_only=True, stages=STAGES)
    assert report.failed == {} and sorted(report.evaluated) == list(RUNS)
    used = {t["node"] for t in _tries(tmp_path)}
    assert used == {w.node_id for w in workers}, f"jobs ran on {used}"
    _assert_same_as_local(tmp_path, local_results)


def test_worker_death_mid_training_resumes_not_restarts(cluster, local_results, tmp_path):
    create_batch(tmp_path, GRID)
    with RayBackend(max_retries=2, execute=lambda job: _doomed_first_try(job, "killed.json", True)) as backend:
        report = run_batch(tmp_path, backend=backend, final_only=True, stages=STAGES, retries=0)
    assert report.failed == {} and sorted(report.evaluated) == list(RUNS)
    _check_resumed(tmp_path, json.loads((tmp_path / "killed.json").read_text()))
    _assert_same_as_local(tmp_path, local_results)


def test_worker_node_removed_mid_batch(cluster, local_results, tmp_path):
    """Runs last: it removes a worker node (and adds a fresh one back for anything after it)."""
    ray_cluster, workers = cluster
    create_batch(tmp_path, GRID)
    removed: dict = {}

    def remove_node_when_signalled():
        deadline = time.monotonic() + 120
        while not (tmp_path / "node_doomed.json").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not (tmp_path / "node_doomed.json").exists():
            return
        node_id = json.loads((tmp_path / "node_doomed.json").read_text())["node"]
        node = next(w for w in workers if w.node_id == node_id)
        ray_cluster.remove_node(node, allow_graceful=False)
        removed["node"] = node_id

    remover = threading.Thread(target=remove_node_when_signalled, daemon=True)
    remover.start()
    try:
        with RayBackend(max_retries=3, execute=lambda job: _doomed_first_try(job, "node_doomed.json", False)) \
                as backend:
            report = run_batch(tmp_path, backend=backend, final_only=True, stages=STAGES, retries=0)
        remover.join(timeout=5)
        assert removed, "the doomed training try never signalled"
        assert report.failed == {} and sorted(report.evaluated) == list(RUNS)
        # Ray marks a node dead once its heartbeats are missed, which can come after the batch ends.
        deadline = time.monotonic() + 90
        while removed["node"] in {n["NodeID"] for n in ray.nodes() if n["Alive"]} and time.monotonic() < deadline:
            time.sleep(0.5)
        assert removed["node"] not in {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        marker = json.loads((tmp_path / "node_doomed.json").read_text())
        _check_resumed(tmp_path, marker)
        later = [t for t in _tries(tmp_path) if t["pid"] != marker["pid"]]
        assert later and all(t["node"] != removed["node"] for t in later)
        _assert_same_as_local(tmp_path, local_results)
    finally:
        if removed:
            workers.remove(next(w for w in workers if w.node_id == removed["node"]))
            workers.append(ray_cluster.add_node(num_cpus=1, num_gpus=0))
