"""Grids, batch directories, locks and the batch runner's bookkeeping.

The runner is exercised with stand-in train/evaluate functions (so failures and retries can be
forced); ``tests/test_pipeline.py`` runs the real trainer and evaluator end to end.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from rep_theory.pipeline import runner as experiments
from rep_theory.cli import main
from rep_theory.training.config import RunConfig, paper_defaults
from rep_theory.pipeline.grids import GRIDS, create_batch, load_grid
from rep_theory.pipeline.runner import Job, LocalBackend, ProcessBackend, execute_job, run_batch
from rep_theory.training.rundir import (EvaluationRecord, RunLockedError, file_stamp, new_run, run_lock, run_state,
                                        write_evaluation_record)


def test_paper_grid_is_the_design_table():
    runs = load_grid("paper")
    assert len(runs) == 7 * 2 * 4
    by_name = {r.name: r.config for r in runs}
    expected = {("C113", "MLP"): (0.3, 250_000), ("C113", "T"): (0.3, 50_000),
                ("D61", "T"): (0.3, 100_000), ("S5", "MLP"): (0.4, 250_000),
                ("S5", "T"): (0.6, 50_000), ("S6", "MLP"): (0.25, 250_000),
                ("S6", "T"): (0.4, 20_000), ("A5", "T"): (0.6, 250_000)}
    for (group, model), (frac, epochs) in expected.items():
        for seed in range(1, 5):
            cfg = by_name[f"{group}_{model}_seed{seed}"]
            assert (cfg.frac_train, cfg.num_epochs, cfg.seed) == (frac, epochs, seed)
            assert (cfg.lr, cfg.weight_decay, cfg.betas) == (1e-3, 1.0, (0.9, 0.98))
            assert (cfg.embed_dim, cfg.hidden_dim) == (256, 128)


def test_width_grid_follows_the_paper():
    runs = load_grid("paper-width")
    widths = sorted({r.config.hidden_dim for r in runs})
    assert widths == [32, 48, 64, 80, 96, 112]
    for run in runs:
        h = run.config.hidden_dim
        assert run.config.embed_dim == 2 * h
        assert run.config.num_epochs == 250_000 * (128 // h)
        assert run.name == f"S5_MLP_hidden_dim_{h}_seed{run.config.seed}"
    s5 = load_grid("paper-s5-50")
    assert [r.name for r in s5] == [f"S5_MLP_seed{k}" for k in range(1, 51)]
    assert s5[0].config == paper_defaults("S5", "MLP", seed=1)


def test_grid_file_schema(tmp_path):
    grid = {"defaults": {"num_epochs": 50},
            "runs": [{"group": "C5", "model": "MLP", "seeds": [1, 3]},
                     {"group": "D4", "model": "T", "seeds": "2-3", "frac_train": 0.5},
                     {"group": "C5", "model": "MLP", "seeds": 1, "variant": "wide",
                      "hidden_dim": 256}]}
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(grid))
    runs = {r.name: r.config for r in load_grid(path)}
    assert sorted(runs) == ["C5_MLP_seed1", "C5_MLP_seed3", "C5_MLP_wide_seed1", "D4_T_seed2",
                            "D4_T_seed3"]
    assert runs["D4_T_seed3"].frac_train == 0.5 and runs["D4_T_seed3"].num_epochs == 50
    assert runs["C5_MLP_wide_seed1"].hidden_dim == 256
    with pytest.raises(ValueError, match="unknown key"):
        load_grid({"runs": [{"group": "C5", "model": "MLP", "seeds": 1, "hiden_dim": 3}]})
    with pytest.raises(ValueError, match="seed range"):
        load_grid({"runs": [{"group": "C5", "model": "MLP", "seeds": "4-1"}]})
    with pytest.raises(ValueError, match="unknown grid 'nope'"):
        load_grid("nope")
    with pytest.raises(ValueError, match="variant"):
        load_grid({"runs": [{"group": "C5", "model": "MLP", "seeds": 1, "variant": "a/b"}]})


def test_create_is_idempotent_and_never_overwrites(tmp_path):
    created, existing = create_batch(tmp_path, "smoke")
    assert len(created) == len(load_grid("smoke")) and existing == []
    cfg_path = created[0] / "cfg.json"
    config = RunConfig.from_dict(json.loads(cfg_path.read_text()))
    assert config == {r.name: r.config for r in load_grid("smoke")}[created[0].name]
    cfg_path.write_text(cfg_path.read_text().replace('"seed": 1', '"seed": 1 '))
    before = cfg_path.read_text()
    again_created, again_existing = create_batch(tmp_path, "smoke")
    assert again_created == [] and len(again_existing) == len(created)
    assert cfg_path.read_text() == before
    assert main(["create", str(tmp_path / "other"), "--grid", "paper", "--only", "^S5_T"]) == 0
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == [
        f"S5_T_seed{k}" for k in range(1, 5)]


def _hold_lock(run_dir, ready, release):
    with run_lock([run_dir]):
        ready.set()
        release.wait(30)


def test_lock_excludes_another_process(tmp_path):
    run_dir = tmp_path / "C5_MLP_seed1"
    run_dir.mkdir()
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(run_dir, ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(RunLockedError, match="C5_MLP_seed1"):
            with run_lock([run_dir]):
                pass
        result = execute_job(Job("evaluate", (str(run_dir),)))
        assert result.status == "busy"
    finally:
        release.set()
        holder.join(60)
    with run_lock([run_dir]):  # free again once the holder exits
        pass


@pytest.fixture
def fake_pipeline(monkeypatch):
    """Stand-in trainer/evaluator writing the files the runner looks at; failures on demand."""
    calls = {"train": [], "evaluate": [], "fail": set()}

    def train_runs(run_dirs, device="auto", progress=False):
        calls["train"].append(sorted(Path(d).name for d in run_dirs))
        for d in run_dirs:
            if Path(d).name in calls["fail"]:
                raise RuntimeError(f"boom in {Path(d).name}")
        for d in run_dirs:
            (Path(d) / "model.pt").write_bytes(b"weights")

    def evaluate_run(run_dir, final_only=False, device=None, progress=True):
        calls["evaluate"].append(Path(run_dir).name)
        for name in ("summary_metrics.json", "metrics.csv", "key_reps_in_order.txt"):
            (Path(run_dir) / name).write_text("{}" if name.endswith("json") else "")
        write_evaluation_record(run_dir, EvaluationRecord(model=file_stamp(Path(run_dir) / "model.pt")))
        return {}

    monkeypatch.setattr(experiments, "train_runs", train_runs)
    monkeypatch.setattr(experiments, "evaluate_and_draw", evaluate_run)
    monkeypatch.setattr(experiments, "_finish", lambda *a, **k: None)
    return calls


def test_runner_batches_seeds_skips_done_and_records_failures(tmp_path, fake_pipeline):
    create_batch(tmp_path, "smoke")
    fake_pipeline["fail"] = {"D7_T_seed2"}
    report = run_batch(tmp_path, retries=1)
    # Seeds of one (group, model) train in one job; the failing job was tried twice.
    trains = fake_pipeline["train"]
    assert ["C13_MLP_seed1", "C13_MLP_seed2"] in trains
    assert trains.count(["D7_T_seed1", "D7_T_seed2"]) == 2
    assert len(trains) == 4 + 1
    assert sorted(report.failed) == ["D7_T_seed1", "D7_T_seed2"]
    assert "boom in D7_T_seed2" in report.failed["D7_T_seed2"]
    assert len(report.evaluated) == 6 and len(report.trained) == 6
    failure = json.loads((tmp_path / "D7_T_seed2" / "failure.json").read_text())
    assert failure["attempts"] == 2 and "RuntimeError" in failure["traceback"]
    assert run_state(tmp_path / "C13_T_seed1") == "evaluated"
    assert run_state(tmp_path / "D7_T_seed1") == "created"
    # A second call only retries what is not complete, and clears the failure record.
    fake_pipeline["fail"] = set()
    fake_pipeline["train"].clear()
    fake_pipeline["evaluate"].clear()
    report = run_batch(tmp_path)
    assert fake_pipeline["train"] == [["D7_T_seed1", "D7_T_seed2"]]
    assert sorted(fake_pipeline["evaluate"]) == ["D7_T_seed1", "D7_T_seed2"]
    assert report.failed == {} and len(report.skipped) == 6
    assert not (tmp_path / "D7_T_seed2" / "failure.json").exists()
    # Stale evaluation (the weights changed after the summary was computed) is redone.
    (tmp_path / "C13_MLP_seed1" / "model.pt").write_bytes(b"retrained weights")
    assert run_state(tmp_path / "C13_MLP_seed1") == "trained"


def test_batch_exit_status_counts_failures(tmp_path, fake_pipeline):
    create_batch(tmp_path, "smoke", only="^C13_MLP")
    fake_pipeline["fail"] = {"C13_MLP_seed1"}
    assert main(["batch", str(tmp_path), "--retries", "0"]) == 2
    assert main(["batch", str(tmp_path), "--status"]) == 0


def test_runner_accepts_a_custom_backend(tmp_path, fake_pipeline):
    """The backend protocol: anything with submit/wait/close runs the jobs."""
    class Recording(LocalBackend):
        def __init__(self):
            super().__init__()
            self.jobs = []

        def submit(self, job):
            self.jobs.append(job)
            return super().submit(job)

    create_batch(tmp_path, "smoke", only="^C13")
    backend = Recording()
    report = run_batch(tmp_path, backend=backend, device="cpu", final_only=True)
    kinds = [job.kind for job in backend.jobs]
    assert kinds.count("train") == 2 and kinds.count("evaluate") == 4
    assert all(job.device == "cpu" and job.final_only for job in backend.jobs if job.kind == "evaluate")
    assert len(report.evaluated) == 4


def test_all_named_grids_build():
    for name in GRIDS:
        assert load_grid(name)


def test_process_backend_runs_jobs_in_workers_and_reports_failures(tmp_path):
    """A job failing inside a worker process comes back failed, recorded, without stopping others."""
    create_batch(tmp_path, "smoke", only="^C13_MLP")
    (tmp_path / "broken_MLP_seed1").mkdir()
    (tmp_path / "broken_MLP_seed1" / "cfg.json").write_text('{"group": "C13", "model": "LSTM"}')
    backend = experiments.ProcessBackend(1)
    try:
        handle = backend.submit(Job("evaluate", (str(tmp_path / "C13_MLP_seed1"),)))
        (done_handle, result), = backend.wait([handle])[0]
    finally:
        backend.close()
    assert done_handle is handle and result.status == "failed"
    assert "FileNotFoundError" in result.error and "model.pt" in result.error
    failure = json.loads((tmp_path / "C13_MLP_seed1" / "failure.json").read_text())
    assert failure["job"] == "evaluate" and failure["attempts"] == 1
    # An unreadable cfg.json is a failed run in the plan, not a crash of the batch.
    jobs, to_evaluate, invalid = experiments.plan_jobs(sorted(tmp_path.iterdir()))
    assert list(invalid) == ["broken_MLP_seed1"] and "LSTM" in invalid["broken_MLP_seed1"]
    assert [len(j.run_dirs) for j in jobs] == [2] and to_evaluate == []


def test_an_invalid_cfg_json_is_a_recorded_failure(tmp_path, fake_pipeline):
    """A run whose cfg.json does not load fails like any job: in the report, in ``failure.json``
    (so ``--status`` shows why), and it is cleared once the config is fixed and the run trains."""
    create_batch(tmp_path, "smoke", only="^C13_MLP_seed1$")
    broken = tmp_path / "C13_MLP_seed2"
    broken.mkdir()
    (broken / "cfg.json").write_text('{"group": "C13", "model": "LSTM"}')
    report = run_batch(tmp_path, retries=0)
    assert list(report.failed) == ["C13_MLP_seed2"] and "LSTM" in report.failed["C13_MLP_seed2"]
    failure = json.loads((broken / "failure.json").read_text())
    assert failure["job"] == "train" and "invalid cfg.json" in failure["error"] and failure["attempts"] == 1
    assert experiments.batch_status(tmp_path)["C13_MLP_seed2"]["failure"]["error"] == failure["error"]
    fixed = json.loads((tmp_path / "C13_MLP_seed1" / "cfg.json").read_text())
    (broken / "cfg.json").write_text(json.dumps({**fixed, "seed": 2}))
    report = run_batch(tmp_path, retries=0)
    assert report.failed == {} and not (broken / "failure.json").exists()


def test_process_backend_interrupt_stops_running_jobs_promptly(tmp_path):
    """Ctrl-C in the runner is passed on to the worker processes: a training job stops and nothing
    is left running, instead of the runner waiting for every job (it could hang there)."""
    import time

    run = new_run(tmp_path / "S3_MLP_seed1", RunConfig(group="S3", model="MLP", seed=1, frac_train=0.5,
                                                      num_epochs=10**7, embed_dim=8, hidden_dim=8, device="cpu"))
    backend = ProcessBackend(2)
    try:
        handle = backend.submit(Job("train", (str(run),), device="cpu"))
        deadline = time.monotonic() + 60
        while not list(run.glob("checkpoints/epoch_*.pt")) and time.monotonic() < deadline:
            time.sleep(0.2)                                          # wait until the worker trains
        assert list(run.glob("checkpoints/epoch_*.pt")), "the worker never started training"
        processes = list(backend._pool._processes.values())
        start = time.monotonic()
        backend.interrupt(grace_s=20)
        assert time.monotonic() - start < 35
        while any(p.is_alive() for p in processes) and time.monotonic() - start < 35:
            time.sleep(0.1)
        assert processes and not any(p.is_alive() for p in processes)
        assert handle.done()
    finally:
        backend.interrupt(grace_s=1)                                 # never leave a worker behind
    assert not (run / "model.pt").exists()


def test_local_backend_runs_one_job_per_wait_in_submission_order(monkeypatch):
    """Jobs run in ``wait``, one per call, oldest first: the runner's bar moves after every job
    (it used to run every job inside ``submit``, and the bar jumped at the end)."""
    ran = []
    monkeypatch.setattr(experiments, "execute_job", lambda job: ran.append(job.run_dirs[0]) or
                        experiments.JobResult(job, "done"))
    backend = LocalBackend()
    handles = [backend.submit(Job("train", (name,))) for name in ("a", "b", "c")]
    assert ran == []                                                 # nothing runs at submit
    finished, pending = backend.wait(handles)
    assert [h for h, _ in finished] == [handles[0]] and pending == handles[1:] and ran == ["a"]
    finished, pending = backend.wait(pending)
    assert ran == ["a", "b"] and pending == handles[2:]
