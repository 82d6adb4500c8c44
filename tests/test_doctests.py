"""The examples in the package's docstrings (``>>>``) run and print what they say.

A docstring example is a claim a reader trusts; one went stale once (``checkpoint_epochs``' last
epochs), so every module with examples is run here.  Examples marked ``# doctest: +SKIP`` (ones
that train or read a run directory) are skipped by doctest itself.
"""

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rep_theory"
MODULES = sorted(
    ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py") if ">>> " in path.read_text(encoding="utf-8"))


def test_modules_with_examples_are_found():
    assert "rep_theory.training.train" in MODULES and "rep_theory.algebra.groups" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_cache):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (run: python -m doctest -v)"
