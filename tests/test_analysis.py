"""Tables and figures over many runs, checked against the paper's own tables and run directories."""

from __future__ import annotations

import csv
import io
import shutil
from collections import Counter
from pathlib import Path

import pytest

from rep_theory.analysis import batch_figures, summaries as analysis, tables
from rep_theory.training.config import group_spec, model_short_name
from rep_theory.training.rundir import read_metrics_csv
from rep_theory.cli import main

REFERENCE = Path(__file__).resolve().parents[1] / "reference"  # as tests/conftest.py
PAPER_MODELS = REFERENCE / "paper_models"
PAPER_RUN_NAMES = ("C113_MLP_seed1", "C113_T_seed1", "D59_MLP_seed1", "S5_MLP_seed1")
_SMALL_FILES = ("cfg.json", "summary_metrics.json", "key_reps_in_order.txt", "key_reps.txt",
                "irreps.txt", "metrics.csv")


def _paper_rows(name: str) -> list[dict[str, str]]:
    """Rows of a paper table, read straight from the CSV with the csv module."""
    text = analysis.reference_text(f"paper_{name}.csv")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def paper_batch(tmp_path_factory, reference_dir) -> Path:
    """A batch directory holding the four paper runs (without weights) and one pending run."""
    assert reference_dir == REFERENCE
    batch = tmp_path_factory.mktemp("paper_batch")
    for name in PAPER_RUN_NAMES:
        (batch / name).mkdir()
        for file in _SMALL_FILES:
            if (PAPER_MODELS / name / file).is_file():
                shutil.copy(PAPER_MODELS / name / file, batch / name / file)
    pending = batch / "S5_MLP_seed2"
    pending.mkdir()
    shutil.copy(PAPER_MODELS / "S5_MLP_seed1" / "cfg.json", pending / "cfg.json")
    return batch


def test_shipped_reference_tables_are_the_papers():
    for name in ("mlp_all", "mlp_avg", "transformer_all", "transformer_avg"):
        shipped = analysis.reference_text(f"paper_{name}.csv")
        assert shipped == (REFERENCE / f"paper_{name}.csv").read_text()


@pytest.mark.parametrize("model, name", [("MLP", "mlp"), ("T", "transformer")])
def test_paper_runs_reproduce_the_papers_per_run_tables(model, name):
    """Formatting every one of the paper's runs gives its table cell for cell."""
    runs = [r for r in analysis.paper_runs() if r.seed <= 4]
    ours = tables.run_table(runs, model=model, mark_runs=False)  # the paper marks nothing
    paper = tables.paper_table(f"{name}_all")
    assert ours.header == paper.header
    assert len(ours.rows) == 28
    assert ours.rows == paper.rows


@pytest.mark.parametrize("model, name", [("MLP", "mlp"), ("T", "transformer")])
def test_paper_runs_reproduce_the_papers_average_tables(model, name):
    runs = [r for r in analysis.paper_runs() if r.seed <= 4]
    ours = tables.average_table(runs, model=model)
    paper = tables.paper_table(f"{name}_avg")
    assert ours.header == paper.header
    assert ours.rows == paper.rows


def test_batch_of_paper_run_dirs_gives_the_papers_rows(paper_batch, tmp_path):
    written = tables.write_tables(paper_batch, tmp_path / "tables")
    mlp = list(csv.DictReader(open(written["mlp_all.csv"])))
    paper = {(r["Group"], r["Seed"]): r for r in _paper_rows("mlp_all")}
    assert [(r["Group"], r["Seed"]) for r in mlp] == [("$C_{113}$", "1"), ("$D_{59}$", "1"),
                                                       ("$S_{5}$", "1")]
    for row in mlp:
        assert row == paper[(row["Group"], row["Seed"])]
    transformer = list(csv.DictReader(open(written["transformer_all.csv"])))
    assert transformer == [r for r in _paper_rows("transformer_all")
                           if (r["Group"], r["Seed"]) == ("$C_{113}$", "1")]
    # Averages over one seed are that seed's values.
    avg = {r["Group"]: r for r in csv.DictReader(open(written["mlp_avg.csv"]))}
    assert avg["$S_{5}$"]["MTest Loss"] == paper[("$S_{5}$", "1")]["Test Loss"]
    assert avg["$D_{59}$"]["M$W_U$ FVE"] == paper[("$D_{59}$", "1")]["$W_U$ FVE"]
    # Side by side with the paper: our row equals the paper's row, key irreps the same set.
    compare = list(csv.DictReader(open(written["compare_mlp_all.csv"])))
    assert [r["Source"] for r in compare] == ["ours", "paper"] * 3
    for ours, theirs in zip(compare[::2], compare[1::2]):
        assert ours["Same Key Irreps"] == "yes"
        assert {k: v for k, v in ours.items() if k not in ("Source", "Same Key Irreps", "Notes")} == \
               {k: v for k, v in theirs.items() if k not in ("Source", "Same Key Irreps", "Notes")}
    # Every format parses back, the pending run is listed, runs.csv round-trips.
    for stem in ("mlp_all", "transformer_all", "mlp_avg", "compare_mlp_avg"):
        assert (tmp_path / "tables" / f"{stem}.tex").read_text().startswith("\\begin{tabular}")
        md = (tmp_path / "tables" / f"{stem}.md").read_text().splitlines()
        assert len(md) == 2 + len(list(csv.DictReader(open(written[f"{stem}.csv"]))))
    assert "S5_MLP_seed2" in (tmp_path / "tables" / "tables.md").read_text()
    again = analysis.runs_from_csv(written["runs.csv"])
    loaded, pending = analysis.collect_runs(paper_batch)
    assert pending == ["S5_MLP_seed2"]
    assert [r.run for r in again] == [r.run for r in loaded]
    assert [r.key_irreps for r in again] == [r.key_irreps for r in loaded]
    assert [r.metrics["test_loss"] for r in again] == [r.metrics["test_loss"] for r in loaded]


def test_tables_command_writes_into_the_batch(paper_batch, capsys):
    assert main(["tables", str(paper_batch)]) == 0
    assert (paper_batch / "tables" / "mlp_all.csv").is_file()
    assert "table files" in capsys.readouterr().out
    assert main(["tables", str(paper_batch / "missing")]) == 2


def test_tables_of_an_unevaluated_batch_is_an_error(tmp_path):
    (tmp_path / "S5_MLP_seed1").mkdir()
    shutil.copy(PAPER_MODELS / "S5_MLP_seed1" / "cfg.json", tmp_path / "S5_MLP_seed1")
    with pytest.raises(ValueError, match="no evaluated run"):
        tables.write_tables(tmp_path)


def test_display_conventions():
    assert tables.group_label("C113") == "$C_{113}$"
    assert tables.group_label("C4xC6") == "$C_{4} \\times C_{6}$"
    assert tables.group_label("Dic3") == "$\\mathrm{Dic}_{3}$"
    assert tables.display_irrep("freq_32", "C113") == "32"
    assert tables.display_irrep("s5_5d_a", "S5") == "5d-a"
    assert tables.display_irrep("a5_3d_b", "A5") == "3d-b"
    assert tables.display_irrep("standard_sign", "S6") == "standard-sign"
    assert analysis.parse_run_name("S5_MLP_hidden_dim_32_seed10") == {
        "group": "S5", "model": "MLP", "variant": "hidden_dim_32", "seed": 10}
    assert analysis.parse_run_name("C4xC6_T_seed2")["group"] == "C4xC6"
    assert analysis.parse_run_name("notes") is None
    assert group_spec("DihedralGroup", 59) == "D59"
    with pytest.raises(ValueError, match="unknown model.*LSTM"):
        model_short_name("LSTM")
    groups = ["A5", "S6", "C118", "D59", "Q8", "S5", "C113", "D61"]
    assert sorted(groups, key=analysis.group_sort_key) == \
        ["C113", "C118", "D59", "D61", "S5", "S6", "A5", "Q8"]


def test_width_variants_get_tables_of_their_own():
    runs = analysis.paper_runs()
    variants = {r.variant for r in runs}
    assert {"", "hidden_dim_32", "hidden_dim_112"} <= variants
    table = tables.run_table(runs, model="MLP", variant="hidden_dim_32")
    assert table.column("Seed") == [str(s) for s in range(1, 11)]


def test_irrep_frequency_figure_counts_seeds():
    """The S5 MLP frequency figure over 50 seeds agrees with a direct count of paper_runs.csv."""
    text = analysis.reference_text("paper_runs.csv")
    rows = [r for r in csv.DictReader(io.StringIO(text))
            if r["group"] == "SymmetricGroup" and r["group_parameter"] == "5"
            and r["model"] == "OneLayerMLP" and r["hidden_dim"] == "128"]
    assert len(rows) == 50
    direct = Counter(name for r in rows for name in set(r["key_reps_in_order"].split(";")))
    fig = batch_figures.fig_irrep_frequency(analysis.paper_runs(), group="S5", model="MLP")
    shown = dict(zip(fig.data[0].x, fig.data[0].y))
    for name, count in direct.items():
        assert shown[tables.display_irrep(name, "S5")] == pytest.approx(count / 50)
    count_fig = batch_figures.fig_key_irrep_count(analysis.paper_runs(), group="S5", model="MLP")
    assert sum(count_fig.data[0].y) == 50


def test_figures_command_writes_offline_html(paper_batch, tmp_path):
    assert main(["figures", str(paper_batch), "--out", str(tmp_path / "figs")]) == 0
    names = {p.name for p in (tmp_path / "figs").iterdir()}
    assert batch_figures.PLOTLY_JS_NAME in names
    assert {"irrep_frequency_S5_MLP.html", "learning_order_D59_MLP.html",
            "key_irrep_count_C113_T.html", "grokking_S5_MLP.html"} <= names
    html = (tmp_path / "figs" / "grokking_D59_MLP.html").read_text()
    assert 'src="plotly.min.js"' in html and "test_loss" in html.replace(" ", "_")


def test_grokking_curve_reads_metrics_csv_in_epoch_order():
    rows = read_metrics_csv(PAPER_MODELS / "S5_MLP_seed1" / "metrics.csv")
    epochs = [r["epoch"] for r in rows]
    assert epochs == sorted(epochs) and epochs[0] == 0
    assert epochs[-1] == 249999  # the paper's metrics.csv counts epochs from 0
    assert rows[-1]["test_loss"] == pytest.approx(3.1398194903408896e-05)


def test_learning_order_uses_irrep_dimensions():
    fig = batch_figures.fig_learning_order(analysis.paper_runs(), group="S5", model="MLP")
    dims = {round(x) for x in fig.data[0].x}
    assert dims <= {1, 4, 5, 6} and {1, 4} <= dims
    assert min(fig.data[0].y) == 1


def test_paper_tables_script_reproduces_the_published_tables(tmp_path, capsys):
    import importlib.util
    path = Path(__file__).resolve().parents[1] / "paper" / "tables.py"
    spec = importlib.util.spec_from_file_location("paper_tables", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--paper", "--out", str(tmp_path)]) == 0
    assert "DIFFERS" not in capsys.readouterr().out
    assert (tmp_path / "paper_mlp_all.csv").read_text() == analysis.reference_text("paper_mlp_all.csv")
