"""Training: the paper's schedule and loss, seed batching, learning, run directories and resume."""

import csv
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rep_theory.cli import main as cli_main
from rep_theory.training.config import RunConfig
from rep_theory.training.data import make_split
from rep_theory.io import load_checked
from rep_theory.training.models import make_model
from rep_theory.training.losses import cross_entropy64, sum_cross_entropy64
from rep_theory.training.rundir import list_checkpoints as _list_checkpoints, load_run_model, load_weights, new_run, run_status
from rep_theory.training.train import LOG_COLUMNS, checkpoint_epochs, fit, train_run, train_runs

from helpers import sigkill_when


def list_checkpoints(run):
    """The checkpoint epochs of ``run`` (rundir.list_checkpoints gives ``(epoch, path)`` pairs)."""
    return [epoch for epoch, _ in _list_checkpoints(run)]

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]


def _tiny(seed=1, **kw):
    base = dict(group="C13", model="MLP", seed=seed, num_epochs=60, embed_dim=16, hidden_dim=16, frac_train=0.5,
                log_every=20, device="cpu")
    base.update(kw)
    return RunConfig(**base)


def _single_reference(cfg: RunConfig):
    """An independent single-seed loop (the batched trainer's reference): torch's AdamW, or Adam with L2
    weight decay when ``cfg.optimizer`` is ``"adam"``, full batch, float64 cross-entropy."""
    split = make_split(cfg.spec, cfg.frac_train, cfg.seed)
    model = make_model(cfg.model, split.n, seed=cfg.seed, embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim)
    opt_class = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    opt = opt_class([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=cfg.betas,
                    weight_decay=cfg.weight_decay)
    for _ in range(cfg.num_epochs):
        loss = F.cross_entropy(model(split.a_train, split.b_train).to(torch.float64), split.y_train)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model


def _max_rel(sd_a, sd_b):
    worst = 0.0
    for key, value in sd_b.items():
        if value.abs().sum() == 0:
            assert torch.count_nonzero(sd_a[key]) == 0, key
            continue
        worst = max(worst, ((sd_a[key] - value).norm() / value.norm()).item())
    return worst


# --- pure pieces -------------------------------------------------------------------------------------------
def test_checkpoint_schedule_is_the_papers():
    for E in (10, 200, 50_000, 250_000):
        paper = np.logspace(0, np.log10(E), num=1000, endpoint=True, dtype=np.int32)
        expected = sorted({0, E, *paper.tolist()})
        got = checkpoint_epochs(E)
        assert got == expected and got[0] == 0 and got[-1] == E
        assert len(got) == len(set(got))
    assert checkpoint_epochs(250_000)[-2:] == [249_999, 250_000]
    assert checkpoint_epochs(10) == list(range(11))


def test_cross_entropy_is_float64_and_matches_torch():
    torch.manual_seed(0)
    logits = (torch.randn(3, 50, 7) * 30).requires_grad_()
    labels = torch.randint(0, 7, (3, 50))
    ref = F.cross_entropy(logits.to(torch.float64).reshape(-1, 7), labels.reshape(-1), reduction="none").reshape(3, 50)
    per_seed = cross_entropy64(logits, labels)
    assert per_seed.dtype == torch.float64
    assert torch.allclose(per_seed, ref.mean(-1), rtol=1e-14)
    total = sum_cross_entropy64(logits, labels, 0.25)
    total.backward()
    grad = logits.grad.clone()
    logits.grad = None
    (ref.sum() * 0.25).backward()
    assert total.dtype == torch.float64 and total.item() == pytest.approx(ref.sum().item() * 0.25, rel=1e-13)
    assert torch.allclose(grad, logits.grad, rtol=1e-6, atol=1e-12)
    # Tiny losses survive (the reason for float64): a confident correct prediction.
    confident = torch.tensor([[40.0, 0.0, 0.0]])
    assert cross_entropy64(confident, torch.tensor([0])).item() == pytest.approx(2 * np.exp(-40.0), rel=1e-9)



def test_cross_entropy_workspace_gives_the_same_bits():
    """The CPU training path's reusable float64 buffer changes nothing: loss and gradient bitwise equal,
    a dirty and a larger buffer included; a wrong buffer is refused with its dtype and size."""
    torch.manual_seed(1)
    logits = (torch.randn(2, 40, 9) * 20).requires_grad_()
    labels = torch.randint(0, 9, (2, 40))
    plain = sum_cross_entropy64(logits, labels, 0.5)
    (g_plain,) = torch.autograd.grad(plain, logits)
    for workspace in (torch.full((2 * 40 * 9,), float("nan"), dtype=torch.float64),
                      torch.randn(2 * 40 * 9 + 17, dtype=torch.float64)):
        total = sum_cross_entropy64(logits, labels, 0.5, workspace=workspace)
        (g,) = torch.autograd.grad(total, logits)
        assert torch.equal(total, plain) and torch.equal(g, g_plain)
    with pytest.raises(ValueError, match="float32"):
        sum_cross_entropy64(logits, labels, workspace=torch.empty(720))
    with pytest.raises(ValueError, match="100"):
        sum_cross_entropy64(logits, labels, workspace=torch.empty(100, dtype=torch.float64))

# --- seed batching ---------------------------------------------------------------------------------------
@pytest.fixture
def float64_default():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _check_batched_against_single(spec, model, epochs, tol):
    cfgs = [_tiny(seed=s, group=spec, model=model, num_epochs=epochs) for s in (1, 2, 3, 4)]
    models, logs = fit(cfgs, "cpu")
    for cfg, trained, log in zip(cfgs, models, logs):
        ref = _single_reference(cfg)
        assert next(ref.parameters()).dtype == next(trained.parameters()).dtype == torch.get_default_dtype()
        assert _max_rel(trained.state_dict(), ref.state_dict()) < tol
        assert [row["epoch"] for row in log] == list(range(0, epochs + 1, 20)) + ([] if epochs % 20 == 0 else [epochs])
    first = lambda m: next(iter(m.state_dict().values()))  # noqa: E731
    assert not torch.allclose(first(models[0]), first(models[1]))  # the seeds really differ


@pytest.mark.parametrize("spec, model, epochs, tol", [("C13", "MLP", 200, 1e-5), ("D5", "B", 200, 1e-5),
                                                       ("C5", "T", 20, 1e-4)])
def test_batched_training_equals_single_seed_training(spec, model, epochs, tol):
    # float32, as trained.  Rounding differs between the batched reparametrisations and the
    # paper-style single model, and float32 training amplifies it (a ReLU flips, the transformer is
    # chaotic): hence few transformer epochs.  The float64 test below shows the math is the same.
    _check_batched_against_single(spec, model, epochs, tol)


@pytest.mark.parametrize("spec, model, epochs", [("D5", "MLP", 200), ("C5", "T", 30)])
def test_batched_training_is_exact_in_float64(float64_default, spec, model, epochs):
    _check_batched_against_single(spec, model, epochs, 1e-12)


def test_small_group_groks():
    # C31, frac 0.7, narrow MLP, lr 1e-2: test accuracy reaches 1 within 1200 full-batch epochs.
    cfgs = [RunConfig(group="C31", model="MLP", seed=s, num_epochs=1200, embed_dim=128, hidden_dim=64,
                      frac_train=0.7, lr=1e-2, log_every=100, device="cpu") for s in (1, 2)]
    models, logs = fit(cfgs, "cpu")
    for log in logs:
        assert log[0]["test_acc"] < 0.2  # it starts at chance
        assert log[-1]["epoch"] == 1200
        assert log[-1]["train_acc"] == 1.0 and log[-1]["test_acc"] >= 0.99, log[-1]
        assert log[-1]["test_loss"] < log[0]["test_loss"]


# --- run directories and the CLI ------------------------------------------------------------------------------
def test_new_and_train_run_directory(tmp_path, capsys):
    run = tmp_path / "C13_MLP_seed1"
    args = ["new", str(run), "--group", "C13", "--model", "MLP", "--seed", "1", "--epochs", "60",
            "--frac-train", "0.5", "--embed-dim", "16", "--hidden-dim", "16"]
    assert cli_main(args) == 0
    cfg = RunConfig.from_dict(json.loads((run / "cfg.json").read_text()))
    assert (cfg.num_epochs, cfg.frac_train, cfg.embed_dim, cfg.lr, cfg.weight_decay) == (60, 0.5, 16, 1e-3, 1.0)
    assert cli_main(args) == 0  # same config: fine
    assert cli_main(args[:-1] + ["32"]) == 2  # a different config is refused
    assert "already exists" in capsys.readouterr().err
    assert run_status(run) == "new"

    assert cli_main(["train", str(run), "--device", "cpu", "--no-progress"]) == 0
    assert run_status(run) == "finished"
    assert list_checkpoints(run) == checkpoint_epochs(60)
    final = load_weights(run / "model.pt")
    last = load_weights(run / "checkpoints" / "epoch_60.pt")
    init = load_weights(run / "checkpoints" / "epoch_0.pt")
    assert all(torch.equal(final[k], last[k]) for k in final)
    ref_model = make_model("OneLayerMLP", 13, seed=1, embed_dim=16, hidden_dim=16)
    assert all(torch.equal(init[k], v) for k, v in ref_model.state_dict().items())
    (trained,), (log,) = fit(cfg.replace(device="cpu"), "cpu")
    assert _max_rel(final, trained.state_dict()) < 1e-6
    rows = list(csv.DictReader(open(run / "train_log.csv")))
    assert tuple(rows[0]) == LOG_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [0, 60]  # log_every defaults to 100; the last epoch is logged
    assert float(rows[-1]["train_loss"]) == pytest.approx(log[-1]["train_loss"], rel=1e-6)
    assert load_run_model(run).state_dict().keys() == final.keys()
    assert torch.equal(load_run_model(run, epoch=0).W_x, init["W_x"])

    # A finished run is not retrained.
    mtime = (run / "model.pt").stat().st_mtime_ns
    assert train_runs([run], device="cpu", progress=False) == []
    assert (run / "model.pt").stat().st_mtime_ns == mtime


def test_runs_differing_in_seed_train_as_one_batch(tmp_path, monkeypatch):
    import rep_theory.training.train as train_module
    calls = []
    real = train_module._train_batch
    monkeypatch.setattr(train_module, "_train_batch", lambda batch, *a, **k: calls.append(len(batch.cfgs)) or real(batch, *a, **k))
    runs = []
    for seed in (1, 2, 3):
        runs.append(new_run(tmp_path / f"s{seed}", _tiny(seed=seed, num_epochs=8)))
    runs.append(new_run(tmp_path / "other", _tiny(seed=1, num_epochs=8, lr=2e-3)))
    assert len(train_runs(runs, device="cpu", progress=False)) == 4
    assert sorted(calls) == [1, 3]
    for seed, run in zip((1, 2, 3), runs):
        (ref,), _ = fit(_tiny(seed=seed, num_epochs=8), "cpu")
        assert _max_rel(load_weights(run / "model.pt"), ref.state_dict()) < 1e-6


def test_corrupt_newest_resume_state_is_reported_and_skipped(tmp_path, caplog):
    cfg = _tiny(num_epochs=40)
    run = new_run(tmp_path / "run", cfg)
    train_run(run, "cpu", progress=False, resume_every_s=0.0)
    states = sorted((run / "resume").glob("state_*.pt"))
    assert [p.name for p in states] == ["state_39.pt", "state_40.pt"]  # the newest two are kept
    assert load_checked(run / "resume" / "state_39.pt")["optimizer"]["step"] == 39
    # Pretend training was interrupted after epoch 39, with the epoch-40 state half written.
    (run / "model.pt").unlink()
    data = (run / "resume" / "state_40.pt").read_bytes()
    (run / "resume" / "state_40.pt").write_bytes(data[: len(data) // 2])
    final_before = load_weights(run / "checkpoints" / "epoch_40.pt")
    with caplog.at_level(logging.WARNING, logger="rep_theory.training.train"):
        train_run(run, "cpu", progress=False)
    assert any("state_40.pt" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    final = load_weights(run / "model.pt")
    assert all(torch.equal(final[k], final_before[k]) for k in final)  # one epoch replayed exactly


def test_changed_config_is_refused_on_resume(tmp_path):
    run = new_run(tmp_path / "run", _tiny(num_epochs=10))
    train_run(run, "cpu", progress=False, resume_every_s=0.0)
    (run / "model.pt").unlink()
    (run / "cfg.json").write_text(json.dumps(_tiny(num_epochs=10, lr=5e-3).to_dict()))
    with pytest.raises(ValueError, match="changed"):
        train_run(run, "cpu", progress=False)


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    cfg = _tiny(num_epochs=250, log_every=50)
    run = new_run(tmp_path / "run", cfg)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "rep_theory", "-v", "train", str(run), "--device", "cpu", "--no-progress",
           "--resume-every", "0.05"]

    def ready():
        epochs = [int(p.stem.split("_")[1]) for p in (run / "resume").glob("state_*.pt")] if (run / "resume").is_dir() else []
        return bool(epochs) and max(epochs) >= 30 and len(list_checkpoints(run)) >= 35

    proc = sigkill_when(cmd, env, ready, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert run_status(run) == "started" and not (run / "model.pt").exists()

    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming 1 run(s) from epoch" in resumed.stderr
    assert run_status(run) == "finished"

    (ref,), (log,) = fit(cfg, "cpu")
    final = load_weights(run / "model.pt")
    assert _max_rel(final, ref.state_dict()) < 1e-6
    assert list_checkpoints(run) == checkpoint_epochs(250)
    rows = list(csv.DictReader(open(run / "train_log.csv")))
    assert [int(r["epoch"]) for r in rows] == [row["epoch"] for row in log] == list(range(0, 251, 50))
    for row, ref_row in zip(rows, log):
        assert float(row["test_loss"]) == pytest.approx(ref_row["test_loss"], rel=1e-6)


def test_sigterm_saves_a_resume_state_and_exits_143(tmp_path):
    """SIGTERM (a scheduler ending a job) stops training like Ctrl-C, saving a resume state, and
    the command exits with 143, the status a shell gives a process ended by SIGTERM (Ctrl-C: 130)."""
    import time

    run = new_run(tmp_path / "run", _tiny(num_epochs=10**6, log_every=50))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "rep_theory", "train", str(run), "--device", "cpu", "--no-progress"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(list_checkpoints(run)) < 5 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "SIGTERM: training stopped at epoch" in err and "Traceback" not in err
    assert list((run / "resume").glob("state_*.pt")) and not (run / "model.pt").exists()
