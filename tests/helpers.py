"""Helpers several test modules share (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence


def sigkill_when(cmd: Sequence[str], env: dict, ready: Callable[[], bool], *, timeout: float,
                 poll: float = 0.01) -> subprocess.Popen:
    """Start ``cmd``, SIGKILL it as soon as ``ready()`` holds (checked every ``poll`` seconds, for at most
    ``timeout``) and return the dead process; fails if it finished on its own first."""
    proc = subprocess.Popen(list(cmd), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if ready():
                break
            time.sleep(poll)
        assert proc.poll() is None, "training finished before it could be killed: " + proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc


def grid_results(batch: Path, runs: Sequence[str]) -> dict[str, tuple[dict, list[str]]]:
    """``{run: (summary_metrics.json, key irreps)}`` of evaluated runs of ``batch``."""
    return {name: (json.loads((batch / name / "summary_metrics.json").read_text()),
                   (batch / name / "key_reps.txt").read_text().split()) for name in runs}


def run_grid_locally(batch: Path, grid: dict, runs: Sequence[str], stages: Sequence[str]) -> dict:
    """Create ``grid`` in ``batch`` and run it through the local backend in this process with one torch
    thread (as in a Ray worker with ``num_cpus=1``); returns :func:`grid_results`."""
    import torch

    from rep_theory.pipeline.grids import create_batch
    from rep_theory.pipeline.runner import run_batch

    create_batch(batch, grid)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        report = run_batch(batch, device="cpu", final_only=True, stages=stages)
    finally:
        torch.set_num_threads(threads)
    assert report.failed == {} and sorted(report.evaluated) == list(runs)
    return grid_results(batch, runs)


def run_interpreted(script: str) -> dict:
    """Run ``script`` (Python that prints one JSON line last) in a fresh process under Triton's interpreter
    (``TRITON_INTERPRET=1`` must be set before any kernel is defined, hence the subprocess); its JSON."""
    import sys

    env = dict(os.environ, TRITON_INTERPRET="1")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])
