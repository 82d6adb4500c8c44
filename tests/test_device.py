"""``rep_theory.device``: resolving ``auto`` and naming the device in benchmark output."""

import torch

from rep_theory.device import describe_device, resolve_device


def test_resolve_and_describe_the_cpu(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert describe_device(torch.device("cpu")) == "CPU, 1 threads"
    finally:
        torch.set_num_threads(before)


def test_describe_a_cuda_device_by_its_name(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: f"Card {device.index}")
    assert describe_device(torch.device("cuda:1")) == "Card 1"
