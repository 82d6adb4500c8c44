"""The trainer's step (rep_theory.training.step): a captured CUDA graph's replay keeps alive what it
was captured on.

A CUDA graph stores raw device addresses.  ``benchmarks/bench_train.py`` kept only the step returned by
``make_train_step``; the model, AdamW state and data were freed when the set-up function returned, the
next allocations (the paper loop's 32 models) reused their memory, and the replays crashed with an
illegal memory access on an H200 (benchmarks/results/gpu_h200_2.txt, calls 4-5).  The CUDA part runs in
tests/test_gpu.py; here the CUDA graph API is replaced by stand-ins so the ownership is checked on the CPU.
"""

from __future__ import annotations

import contextlib
import gc
import weakref

import torch

from rep_theory.training import step as step_module
from rep_theory.training.batched import make_batched_model
from rep_theory.training.config import RunConfig


class _FakeGraph:
    """Records that it was captured and counts replays; holds no reference to any tensor (as a real graph)."""

    def __init__(self):
        self.replays = 0

    def replay(self):
        self.replays += 1


def _fake_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "CUDAGraph", _FakeGraph)
    monkeypatch.setattr(torch.cuda, "Stream", lambda *a, **k: type("S", (), {"wait_stream": lambda self, o: None})())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: type("S", (), {"wait_stream": lambda self, o: None})())
    monkeypatch.setattr(torch.cuda, "graph", lambda g, **k: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: None)


def _eager_step(model, optimizer, data):
    """A step as the trainer builds it: its closure holds the model, optimizer and data."""
    def eager_step():
        optimizer.zero_grad(set_to_none=True)
        model(data["a_train"], data["b_train"]).sum().backward()
        optimizer.step()
    return eager_step


def test_replay_keeps_the_model_optimizer_and_data_alive(monkeypatch):
    _fake_cuda(monkeypatch)
    cfg = RunConfig(group="C5", model="MLP", seed=0, num_epochs=1, embed_dim=8, hidden_dim=8, lr=1e-3)
    model = make_batched_model("OneLayerMLP", 5, seeds=[0, 1], embed_dim=8, hidden_dim=8)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = step_module.make_optimizer(cfg, params)
    a = torch.randint(0, 5, (2, 7))
    data = {"a_train": a, "b_train": torch.randint(0, 5, (2, 7)), "y_train": torch.randint(0, 5, (2, 7))}
    before = [p.detach().clone() for p in params]
    replay = step_module.capture_step(lambda: None, optimizer, params)   # a step that touches nothing
    assert all(torch.equal(p, q) for p, q in zip(params, before))        # capture restores the weights

    replay = step_module.capture_step(_eager_step(model, optimizer, data), optimizer, params)
    refs = [weakref.ref(x) for x in (model, optimizer, a, params[0])]
    del model, optimizer, params, data, a, before
    gc.collect()
    assert [r() is not None for r in refs] == [True] * 4   # alive as long as the replay is
    replay()
    del replay
    gc.collect()
    assert all(r() is None for r in refs)              # and no longer: nothing leaks
