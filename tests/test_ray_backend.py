"""The Ray backend runs the real pipeline on a real (local, 2-CPU) Ray cluster.

Its results must equal the local backend's: the same summary metrics and the same key irreps.
This must hold even when a worker process is SIGKILLed in the middle of training.  A job whose
worker dies on every try must be reported as failed while the other runs complete.

The grid is tiny (C5 and D3 MLPs, 60 epochs, final models only), so the file fits in about a
minute and a half on 2 cores.  Most of that is Ray's own start-up.
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

from rep_theory.cli import main
from rep_theory.pipeline.grids import create_batch
from rep_theory.pipeline.runner import Job, execute_job, run_batch
from rep_theory.pipeline.ray_backend import RayBackend

from helpers import grid_results, run_grid_locally

GRID = {"defaults": {"num_epochs": 60, "embed_dim": 16, "hidden_dim": 16, "log_every": 20,
                     "frac_train": 0.8, "lr": 1e-2},
        "runs": [{"group": "C5", "model": "MLP", "seeds": "1-2"},
                 {"group": "D3", "model": "MLP", "seeds": 1}]}
RUNS = ("C5_MLP_seed1", "C5_MLP_seed2", "D3_MLP_seed1")
STAGES = ("train", "evaluate")


@pytest.fixture(scope="module")
def ray_cluster():
    """A new local Ray instance with 2 CPUs and no GPU (also on a GPU machine, so that results
    compare with the CPU reference), no dashboard; shut down after this module."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False,
             logging_level="warning", log_to_driver=False)
    # Test helpers below are shipped to the workers by value (the workers cannot import this file).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        yield
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        ray.shutdown()


@pytest.fixture(scope="module")
def local_results(tmp_path_factory):
    """The grid run by the local backend in this process: ``{run: (summary, key irreps)}``."""
    return run_grid_locally(tmp_path_factory.mktemp("local"), GRID, RUNS, STAGES)


_results = grid_results


def _assert_same(got, expected):
    for name, (summary, keys) in got.items():
        ref_summary, ref_keys = expected[name]
        assert keys == ref_keys, name
        assert ref_keys, f"{name}: the test grid should give key irreps to compare"
        assert sorted(summary) == sorted(ref_summary), name
        worst = max(abs(summary[k] - ref_summary[k]) for k in ref_summary)
        assert worst <= 1e-6, (name, worst)


def test_cli_ray_backend_equals_local(ray_cluster, local_results, tmp_path):
    create_batch(tmp_path, GRID)
    status = main(["batch", str(tmp_path), "--backend", "ray", "--final-only", "--stage", "train",
                   "--stage", "evaluate"])
    assert status == 0
    _assert_same(_results(tmp_path, RUNS), local_results)
    assert ray.is_initialized()  # a connection the backend did not open stays open
    # Everything complete: a second pass through Ray only skips.
    with RayBackend() as backend:
        report = run_batch(tmp_path, backend=backend, final_only=True, stages=STAGES)
    assert sorted(report.skipped) == list(RUNS) and report.trained == report.evaluated == []


def _kill_once_mid_training(job: Job):
    """In the worker: the first training job of C5 SIGKILLs its own process once a checkpoint
    after epoch 0 is on disk; later tries (marker file present) just run."""
    run_dir = Path(job.run_dirs[0])
    marker = run_dir.parent / "killed.json"
    if job.kind == "train" and run_dir.name.startswith("C5") and not marker.exists():
        def killer():
            while not (run_dir / "checkpoints" / "epoch_3.pt").exists():
                time.sleep(0.002)
            marker.write_text(json.dumps({"pid": os.getpid(),
                                          "model_pt": (run_dir / "model.pt").exists()}))
            os.kill(os.getpid(), signal.SIGKILL)
        threading.Thread(target=killer, daemon=True).start()
    elif job.kind == "train" and run_dir.name.startswith("D3"):
        with open(run_dir.parent / "d3_attempts.txt", "a") as f:
            f.write(f"{os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)  # dies on every try
    result = execute_job(job)
    if job.kind == "train" and run_dir.name.startswith("C5"):
        (run_dir.parent / "finished_by.txt").write_text(str(os.getpid()))
    return result


def test_killed_worker_is_retried_and_repeated_deaths_are_reported(ray_cluster, local_results,
                                                                     tmp_path):
    create_batch(tmp_path, GRID)
    with RayBackend(max_retries=1, execute=_kill_once_mid_training) as backend:
        report = run_batch(tmp_path, backend=backend, final_only=True, stages=STAGES, retries=1)
    # The C5 seed pair: killed mid-training, retried by Ray in a new worker, same results.
    killed = json.loads((tmp_path / "killed.json").read_text())
    assert killed["model_pt"] is False  # the kill came before training finished
    assert int((tmp_path / "finished_by.txt").read_text()) != killed["pid"]
    assert sorted(report.evaluated) == ["C5_MLP_seed1", "C5_MLP_seed2"]
    _assert_same(_results(tmp_path, RUNS[:2]), local_results)
    # D3 dies on every try: Ray's retry (max_retries=1) within each of the runner's 2 submissions.
    attempts = (tmp_path / "d3_attempts.txt").read_text().split()
    assert len(attempts) == (1 + 1) * (1 + 1) and len(set(attempts)) == 4
    assert list(report.failed) == ["D3_MLP_seed1"]
    assert "died" in report.failed["D3_MLP_seed1"]
    failure = json.loads((tmp_path / "D3_MLP_seed1" / "failure.json").read_text())
    assert failure["attempts"] == 2 and failure["job"] == "train"
    assert not (tmp_path / "D3_MLP_seed1" / "model.pt").exists()


def test_missing_run_directory_names_the_node(ray_cluster, tmp_path):
    with RayBackend() as backend:
        handle = backend.submit(Job("evaluate", (str(tmp_path / "nowhere" / "C5_MLP_seed1"),)))
        finished, pending = backend.wait([handle])
    assert pending == [] and len(finished) == 1
    result = finished[0][1]
    assert result.status == "failed" and "not found on Ray node" in result.error
    assert result.job.run_dirs == (str(tmp_path / "nowhere" / "C5_MLP_seed1"),)


def test_resource_requests_are_checked(ray_cluster):
    backend = RayBackend()
    assert backend.gpus_per_job == 0 and backend.cpus_per_job == 1  # the cluster has no GPU
    with pytest.raises(ValueError, match="no GPU"):
        backend.submit(Job("train", ("x",), device="cuda"))
    backend.close()
    with pytest.raises(ValueError, match="has no GPU"):
        RayBackend(gpus_per_job=0.25)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        RayBackend(gpus_per_job=2)
    with pytest.raises(ValueError, match="2 CPU"):
        RayBackend(cpus_per_job=3)
    with pytest.raises(ValueError, match="already initialised"):
        RayBackend(address="auto")
    assert main(["batch", "unused_dir", "--gpus-per-job", "1"]) == 2  # needs --backend ray


def test_missing_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'pip install "\.\[ray\]"'):
        RayBackend()
