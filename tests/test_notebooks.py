"""Both notebooks execute top to bottom with nbclient (the small demo preset; the smoke batch)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from test_pipeline import smoke_batch_dir

PAPER = Path(__file__).resolve().parents[1] / "paper"


def _execute(name: str, cwd: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(PAPER / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def _text_outputs(nb) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_install_cell_is_guarded():
    for name in ("demo.ipynb", "mainline_results_and_plots.ipynb"):
        nb = nbformat.read(PAPER / name, as_version=4)
        install = next(c for c in nb.cells if c.cell_type == "code")
        assert 'find_spec("rep_theory") is None' in install.source and "pip" in install.source


def test_demo_notebook_runs_the_quick_preset(tmp_path, monkeypatch):
    monkeypatch.setenv("REP_THEORY_DEMO_PRESET", "quick")
    monkeypatch.setenv("REP_THEORY_DEMO_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = _execute("demo.ipynb", tmp_path)
    text = _text_outputs(nb)
    assert "preset 'quick'" in text
    assert "Verdict: the network computes group composition via representations" in text
    run_dir = tmp_path / "out" / "S4_MLP_seed1"
    summary = json.loads((run_dir / "summary_metrics.json").read_text())
    assert summary["test_acc"] >= 0.99
    assert (tmp_path / "out" / "report.html").is_file()
    # The homomorphism check printed an error at rounding level for every irrep.
    errors = [float(line.rsplit("=", 1)[1]) for line in text.splitlines() if "rho(ab)| =" in line]
    assert len(errors) == 5 and max(errors) < 1e-12


def test_mainline_notebook_rebuilds_tables_from_the_smoke_batch(tmp_path_factory, tmp_path,
                                                                 monkeypatch):
    batch = smoke_batch_dir(tmp_path_factory)
    monkeypatch.setenv("REP_THEORY_BATCH_DIR", str(batch))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = _execute("mainline_results_and_plots.ipynb", tmp_path)
    text = _text_outputs(nb)
    assert "8 evaluated run(s), 0 not evaluated yet" in text
    markdown = "\n".join(str(o.get("data", {}).get("text/markdown", ""))
                         for c in nb.cells for o in c.get("outputs", []))
    assert "| C13 |" in markdown and "| D7 |" in markdown  # markdown reads as markdown, not LaTeX
    assert (batch / "tables" / "mlp_all.md").is_file()
