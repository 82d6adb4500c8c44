"""The rule for when Triton kernels may run (rep_theory.training.triton_check), with stand-in checks."""

from __future__ import annotations

import logging

import pytest
import torch

pytest.importorskip("triton", reason="Triton is in the test extra; CUDA builds of torch ship it")

from rep_theory.training import triton_check  # noqa: E402


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(triton_check, "_READY", {})
    monkeypatch.delenv("REP_THEORY_TRITON", raising=False)


def test_a_passing_check_runs_once_per_family_and_device_with_autograd_on():
    calls = []

    def check():
        calls.append(torch.is_grad_enabled())
        return None

    cpu = torch.device("cpu")
    with torch.inference_mode():
        assert triton_check.self_checked("kernels A", cpu, check) is True
    assert triton_check.self_checked("kernels A", cpu, check) is True
    assert calls == [True]                                   # once, and with autograd on
    assert triton_check.self_checked("kernels B", cpu, check) is True
    assert len(calls) == 2                                   # each family checks for itself


def test_a_disagreeing_or_raising_check_turns_the_family_off_for_good(caplog):
    cpu = torch.device("cpu")
    with caplog.at_level(logging.WARNING):
        assert triton_check.self_checked("kernels A", cpu, lambda: "loss 1.0 vs 2.0") is False
        assert triton_check.self_checked("kernels B", cpu, lambda: 1 / 0) is False
    assert "kernels A disagrees with the PyTorch path on cpu (loss 1.0 vs 2.0)" in caplog.text
    assert "kernels B failed its self-check on cpu (division by zero)" in caplog.text
    assert triton_check.self_checked("kernels A", cpu, lambda: None) is False    # remembered


def test_the_environment_turns_every_family_off(monkeypatch):
    monkeypatch.setenv("REP_THEORY_TRITON", "0")
    ran = []
    assert triton_check.self_checked("kernels A", torch.device("cpu"), lambda: ran.append(1)) is False
    assert ran == [] and triton_check.triton_enabled() is False


def test_no_check_runs_while_a_cuda_graph_is_captured(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    ran = []
    assert triton_check.self_checked("kernels A", torch.device("cuda"), lambda: ran.append(1)) is False
    assert ran == [] and triton_check._READY == {}           # not remembered: it runs after the capture
