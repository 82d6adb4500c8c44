"""Every dotted ``rep_theory.…`` name in the docs and docstrings names something that exists.

Modules moved (``rep_theory.irreps`` into ``rep_theory.algebra.irreps``, ``rep_theory.metrics`` into
``rep_theory.analysis.metrics``) and docstrings kept the old names; nothing imports a docstring,
so only a check like this one sees it.  Scanned: the package, the benchmark and paper scripts,
``README.md`` and ``reference/README.md``.  Paths of files (``….py``, ``….json``) are not names.
"""

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"\brep_theory(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
FILE_SUFFIXES = (".py", ".md", ".json", ".csv", ".txt", ".html", ".pt", ".sh")


def _scanned() -> list[Path]:
    return [*sorted((ROOT / "rep_theory").rglob("*.py")), *sorted((ROOT / "benchmarks").glob("*.py")),
            *sorted((ROOT / "paper").glob("*.py")), ROOT / "README.md", ROOT / "reference" / "README.md"]


def _resolves(name: str) -> bool:
    """Whether ``name`` is a module, or a module followed by attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _dangling(text: str) -> list[tuple[int, str]]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in NAME.finditer(line):
            name = match.group(0).rstrip(".")
            if "__main__" in name or name.endswith(FILE_SUFFIXES):  # importing __main__ would run the CLI
                continue
            if not _resolves(name):
                found.append((number, name))
    return found


def test_a_stale_name_is_found():
    assert _dangling("see :mod:`rep_theory.irreps` and rep_theory.algebra.irreps.Irrep") == [(1, "rep_theory.irreps")]


def test_names_resolve(tmp_cache):
    dangling = {str(path.relative_to(ROOT)): found for path in _scanned()
                if (found := _dangling(path.read_text(encoding="utf-8")))}
    assert len(_scanned()) > 100 and not dangling, f"names that do not exist (file: [(line, name)]): {dangling}"
