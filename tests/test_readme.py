"""The README's quick start and CI stay in step."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quick_start_has_two_commands():
    commands = _quick_start_commands()
    assert len(commands) == 2, commands
    assert "rep-theory" in commands[0] and "pip install" in commands[0]
    assert "pytest" in commands[1] and ".[test]" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = _quick_start_commands()[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_main_job_command_exists():
    from rep_theory.cli import build_parser
    main_job = _quick_start_commands()[0].split("&&")[-1].split()
    assert main_job[0] == "rep-theory"
    subcommands = build_parser()._subparsers._group_actions[0].choices
    assert main_job[1] in subcommands, sorted(subcommands)


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_every_python_block_of_the_readme_names_only_what_exists():
    """Each block compiles, imports only names the package has, and uses no name it does not define
    (a block runs as written once its files exist)."""
    import ast
    import builtins
    import importlib

    blocks = _python_blocks()
    assert len(blocks) >= 8
    for k, block in enumerate(blocks):
        tree = ast.parse(block, filename=f"README block {k}")
        defined = set(dir(builtins))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name) or importlib.util.find_spec(
                        f"{node.module}.{alias.name}") is not None, f"block {k}: {node.module}.{alias.name}"
                    defined.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                defined.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.Name,)) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        assert used <= defined, f"README block {k} uses undefined names {sorted(used - defined)}:\n{block}"


def test_the_self_contained_readme_blocks_run(tmp_path, monkeypatch):
    """The blocks that need no run directory run as they are (groups and irreps; Fourier analysis)."""
    monkeypatch.chdir(tmp_path)
    ran = 0
    for block in _python_blocks():
        if "get_group(\"S5\")" in block and "batch_experiments" not in block and "runs/" not in block:
            exec(compile(block, "README", "exec"), {})
            ran += 1
    assert ran >= 2
