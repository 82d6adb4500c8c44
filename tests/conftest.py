"""Shared pytest fixtures (keep this file small)."""

from pathlib import Path

import pytest
import torch

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
"""The reference data sits beside the checkout: ``<parent of the repo>/shared`` (CI copies it there)."""


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``shared/reference``: the paper's tables, element orders and trained runs.  Fails (never skips)
    when it is missing, since the tests that use it compare against the paper."""
    path = SHARED_DIR / "reference"
    if not (path / "paper_models").is_dir():
        pytest.fail(f"reference data not found at {path}: the tests expect the project's shared/ folder "
                    f"beside the repository checkout (shared/reference/paper_models/...)", pytrace=False)
    return path


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
