"""The package's layers hold: no module imports from a higher layer, and no import cycle exists.

Every ``import`` statement counts, including those inside functions (a lazy import is still a
dependency).  ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rep_theory"

LAYERS = {
    "rep_theory": 0, "rep_theory.io": 0, "rep_theory.checks": 0, "rep_theory.device": 0, "rep_theory.locks": 0,
    "rep_theory.algebra": 1, "rep_theory.training": 2, "rep_theory.analysis": 3, "rep_theory.explain": 4,
    "rep_theory.lenses": 5, "rep_theory.pipeline": 6, "rep_theory.cli": 7,
    # facades above everything: the design notes' alias and ``python -m rep_theory``
    "rep_theory.groups": 8, "rep_theory.__main__": 8,
}


def module_names(root: Path = PACKAGE) -> dict[str, Path]:
    """``{dotted module name: file}`` for every module of the package (``__init__`` as the package)."""
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """The package modules ``name`` (at ``path``) imports, anywhere in the file."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "rep_theory")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "rep_theory":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target)
    return {m for m in found if m in modules and m != name}


def layer_of(module: str) -> int:
    """The layer of a module: that of the longest prefix listed in :data:`LAYERS`."""
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        prefix = ".".join(parts[:k])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(f"module {module} is in no layer; add its subpackage to LAYERS")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules (first == last), or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(path, name, set(modules)) for name, path in modules.items()}


def test_every_module_has_a_layer(graph):
    for module in graph:
        layer_of(module)


def test_no_module_imports_from_a_higher_layer(graph):
    upward = sorted(f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
                    for m, targets in graph.items() for t in targets if layer_of(t) > layer_of(m))
    assert upward == []


def test_there_is_no_import_cycle(graph):
    assert find_cycle(graph) is None


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The walker sees lazy imports, and the checks flag an upward edge and a cycle."""
    pkg = tmp_path / "rep_theory"
    (pkg / "algebra").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "algebra" / "__init__.py").write_text("")
    (pkg / "algebra" / "a.py").write_text("def f():\n    from rep_theory.cli import main\n")
    (pkg / "algebra" / "b.py").write_text("from rep_theory.algebra import a\n")
    (pkg / "cli.py").write_text("from rep_theory.algebra.b import x\n")
    modules = module_names(pkg)
    g = {name: imports_of(path, name, set(modules)) for name, path in modules.items()}
    assert g["rep_theory.algebra.a"] == {"rep_theory.cli"}
    assert g["rep_theory.algebra.b"] == {"rep_theory.algebra.a"}
    assert layer_of("rep_theory.cli") > layer_of("rep_theory.algebra.a")
    assert find_cycle(g) in (["rep_theory.algebra.a", "rep_theory.cli", "rep_theory.algebra.b", "rep_theory.algebra.a"],
                             ["rep_theory.algebra.b", "rep_theory.algebra.a", "rep_theory.cli", "rep_theory.algebra.b"],
                             ["rep_theory.cli", "rep_theory.algebra.b", "rep_theory.algebra.a", "rep_theory.cli"])


def test_no_module_is_much_over_500_lines():
    long = {name: n for name, path in module_names().items()
            if (n := len(path.read_text().splitlines())) > 550}
    assert long == {}


def test_the_command_lines_help_imports_no_torch():
    """``rep-theory --help`` and every ``rep-theory COMMAND --help`` build their parsers without importing
    torch (which takes over a second): the constants they show live in torch-free modules."""
    import subprocess
    import sys

    code = ("import sys\nfrom rep_theory.cli import build_parser\nbuild_parser()\n"
            "heavy = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "print(len(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "0", "building the CLI's parsers imported torch"
    # and the parsers still carry the constants they show
    from rep_theory.cli import build_parser
    choices = build_parser()._subparsers._group_actions[0].choices
    verify_methods = next(a for a in choices["verify"]._actions if a.dest == "methods").choices
    from rep_theory.explain.proofs import METHODS
    assert tuple(verify_methods) == METHODS and "fourier" in METHODS
