"""Shared pytest fixtures (keep this file small)."""

from pathlib import Path

import pytest
import torch

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"
"""The paper's released tables, element orders and trained runs, carried in the repository."""


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``<repo>/reference``: the paper's tables, element orders and trained runs.  Fails (never
    skips) when it is missing, since the tests that use it compare against the paper."""
    if not (REFERENCE_DIR / "paper_models").is_dir():
        pytest.fail(f"reference data not found at {REFERENCE_DIR}: it is part of the repository "
                    f"(reference/paper_models/...); restore it from git", pytrace=False)
    return REFERENCE_DIR


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """An empty irrep cache folder, set as ``$REP_THEORY_CACHE`` for the test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("REP_THEORY_CACHE", str(folder))
    return folder


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread (no intra-op thread start-up per op) and identically
    to a one-thread subprocess; the previous thread count is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
