"""The benchmark and paper scripts are not imported by the package or its tests, so a module they
name can move without any test failing (``bench_irreps.py`` read ``rep_theory.algebra.cache`` long
after the cache had moved to ``rep_theory.algebra.irreps.cache``).  Every ``rep_theory`` import in
them, at the top or inside a function, must resolve: the module imports and has the names taken
from it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "paper").glob("*.py")])


def _package_imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """``(line, module, names)`` of every ``import rep_theory...`` / ``from rep_theory... import ...``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "rep_theory":
            out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names if a.name.split(".")[0] == "rep_theory"]
    return out


def test_the_scripts_are_found():
    names = {p.name for p in SCRIPTS}
    assert {"bench_irreps.py", "bench_verify.py", "tables.py"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_package_import_of_a_script_resolves(path):
    imports = _package_imports(path)
    for line, module, names in imports:
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            pytest.fail(f"{path.name}:{line}: cannot import {module}: {e}")
        for name in names:
            if name == "*" or hasattr(mod, name):
                continue
            try:                                   # a submodule: ``from rep_theory.algebra import fourier``
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                pytest.fail(f"{path.name}:{line}: {module} has no {name!r}")


def test_a_moved_module_is_caught(tmp_path):
    """The check fails on the import that broke ``bench_irreps.py``."""
    bad = tmp_path / "bench_bad.py"
    bad.write_text("def main():\n    from rep_theory.algebra import cache\n")
    (line, module, names), = _package_imports(bad)
    mod = importlib.import_module(module)
    assert line == 2 and not hasattr(mod, names[0])
    with pytest.raises(ImportError):
        importlib.import_module(f"{module}.{names[0]}")
