"""The background checkpoint writer: exact files, errors reach the trainer, flush ordering."""

import threading
import time

import pytest
import torch

import rep_theory.training.checkpoint_writer as writer_module
import rep_theory.training.train as train_module
from rep_theory.io import save_checked
from rep_theory.training.checkpoint_writer import CheckpointWriter
from rep_theory.training.config import RunConfig
from rep_theory.training.rundir import checkpoint_path, load_weights, new_run, run_status
from rep_theory.training.train import checkpoint_epochs, fit, train_run

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny(**kw):
    base = dict(group="C13", model="MLP", seed=1, num_epochs=30, embed_dim=16, hidden_dim=16, frac_train=0.5,
                log_every=10, device="cpu")
    base.update(kw)
    return RunConfig(**base)


def test_writer_writes_exactly_what_it_was_given(tmp_path):
    g = torch.Generator().manual_seed(0)
    stacked = {"W_x": torch.randn(3, 5, 4, generator=g), "W_U": torch.randn(3, 4, 5, generator=g).double()}
    expected = {i: {k: v[i].clone() for k, v in stacked.items()} for i in range(3)}
    with CheckpointWriter(max_pending=1) as writer:
        writer.write_seeds(stacked, [(tmp_path / "a.pt", 0), (tmp_path / "c.pt", 2)])
        for value in stacked.values():
            value.add_(1.0)  # the caller updates its weights in place right away (the next step)
        writer.write_seeds(stacked, [(tmp_path / "b.pt", 1)])
    for name, i, shift in (("a", 0, 0.0), ("c", 2, 0.0), ("b", 1, 1.0)):
        got = load_weights(tmp_path / f"{name}.pt")
        assert got.keys() == expected[i].keys()
        for key, value in expected[i].items():
            assert got[key].dtype == value.dtype and torch.equal(got[key], value + shift), (name, key)
        # byte for byte the file the synchronous trainer wrote
        save_checked(tmp_path / "sync.pt", {k: v[i].clone() for k, v in stacked.items()} if shift else expected[i])
        assert (tmp_path / f"{name}.pt").read_bytes() == (tmp_path / "sync.pt").read_bytes()


def _failing_save(name: str, errno: int, message: str):
    """``save_checked`` that raises ``OSError(errno, message)`` for the file called ``name``."""
    def failing(path, obj):
        if path.name == name:
            raise OSError(errno, message)
        return save_checked(path, obj)
    return failing


def test_writer_error_is_raised_on_the_caller_and_later_files_are_not_written(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module, "save_checked", _failing_save("bad.pt", 28, "No space left on device"))
    writer = CheckpointWriter()
    stacked = {"W": torch.zeros(1, 2)}
    writer.write_seeds(stacked, [(tmp_path / "bad.pt", 0)])
    writer.write_seeds(stacked, [(tmp_path / "after.pt", 0)])
    with pytest.raises(OSError, match="No space left"):
        writer.flush()
    with pytest.raises(OSError):
        writer.write_seeds(stacked, [(tmp_path / "later.pt", 0)])
    with pytest.raises(OSError):
        writer.close()
    assert not any(tmp_path.iterdir())


def test_failing_checkpoint_write_stops_training_with_the_error(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module, "save_checked", _failing_save("epoch_7.pt", 5, "Input/output error"))
    run = new_run(tmp_path / "run", _tiny())
    with pytest.raises(OSError, match="Input/output error"):
        train_run(run, "cpu", progress=False)
    assert not (run / "model.pt").exists() and run_status(run) != "finished"
    assert not (run / "checkpoints" / "epoch_7.pt").exists()


def test_resume_state_never_precedes_its_checkpoints(tmp_path, monkeypatch):
    """Checkpoint writes are slowed down; every resume state must still land after them."""
    events, lock = [], threading.Lock()

    def slow_checkpoint(path, obj):
        time.sleep(0.02)
        out = save_checked(path, obj)
        with lock:
            events.append(("checkpoint", int(path.stem.split("_")[1])))
        return out

    def recording(path, obj):
        out = save_checked(path, obj)
        with lock:
            events.append(("resume" if path.parent.name == "resume" else path.name, obj.get("epoch", -1)))
        return out

    monkeypatch.setattr(writer_module, "save_checked", slow_checkpoint)
    monkeypatch.setattr(train_module, "save_checked", recording)
    cfg = _tiny()
    run = new_run(tmp_path / "run", cfg)
    train_run(run, "cpu", progress=False, resume_every_s=0.0)
    schedule = checkpoint_epochs(cfg.num_epochs)
    resumes = [(k, epoch) for k, (kind, epoch) in enumerate(events) if kind == "resume"]
    assert len(resumes) == cfg.num_epochs + 1
    for k, epoch in resumes:
        written = {e for kind, e in events[:k] if kind == "checkpoint"}
        assert {e for e in schedule if e <= epoch} <= written, epoch
    assert events[-1][0] == "model.pt"
    assert sorted(e for kind, e in events if kind == "checkpoint") == schedule


def test_checkpoints_hold_the_weights_of_their_epoch(tmp_path):
    """The snapshot is taken before the next step updates the weights in place."""
    cfg = _tiny(num_epochs=12)
    run = new_run(tmp_path / "run", cfg)
    train_run(run, "cpu", progress=False)
    for epoch in (1, 5, 11):
        (ref,), _ = fit(cfg.replace(num_epochs=epoch), "cpu")
        saved = load_weights(checkpoint_path(run, epoch))
        assert all(torch.equal(saved[k], v) for k, v in ref.state_dict().items()), epoch
