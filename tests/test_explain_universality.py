"""Universality statistics (rep_theory.explain.universality) and the explain CLI verbs."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from rep_theory.algebra.rhosets import format_rho_set_table
from rep_theory.algebra.subgroups import format_subgroup_classes
from rep_theory.analysis.summaries import RunSummary
from rep_theory.cli import main
from rep_theory.explain.universality import (IrrepFrequency, bootstrap_spearman, monotone_violations,
                                             runs_from_key_reps, spearman, universality, universality_csv,
                                             universality_markdown)

PAPER_COUNTS = {"sign": 49, "standard": 49, "s5_5d_a": 18, "standard_sign": 17, "s5_5d_b": 10, "s5_6d": 0}
S5_MIN_SIZES = {"sign": 2, "standard": 5, "standard_sign": 10, "s5_5d_a": 6, "s5_5d_b": 10, "s5_6d": 20}


@pytest.fixture(scope="module")
def paper50(reference_dir):
    runs = runs_from_key_reps(reference_dir / "paper_s5_mlp_50")
    return runs, universality(runs, resamples=1000, seed=0)


def test_the_papers_50_s5_counts(paper50):
    runs, (u,) = paper50
    assert len(runs) == 50 and sorted(r.seed for r in runs) == list(range(1, 51))
    assert (u.group, u.model, u.variant, u.runs) == ("S5", "MLP", "", 50)
    assert {it.irrep: it.count for it in u.irreps} == PAPER_COUNTS
    assert {it.irrep: it.min_rho_set_size for it in u.irreps} == S5_MIN_SIZES
    assert {it.irrep: it.dim for it in u.irreps} == {"sign": 1, "standard": 4, "standard_sign": 4, "s5_5d_a": 5,
                                                     "s5_5d_b": 5, "s5_6d": 6}
    # frequency is non-increasing in min rho-set size, but not in dimension (s5_5d_a beats standard_sign)
    assert u.monotone_size and u.violations_size == ()
    assert u.violations_dim == (("standard_sign", "s5_5d_a"),)
    # key_reps.txt lists irreps in irrep order: sets, not learning orders
    assert not u.ordered and u.orders[0] == (("sign", "standard"), 20)
    assert sum(c for _, c in u.orders) == 50


def test_the_correlations_match_scipy(paper50):
    _, (u,) = paper50
    freq = [it.frequency for it in u.irreps]
    assert u.spearman_size[0] == pytest.approx(spearmanr(freq, [it.min_rho_set_size for it in u.irreps])[0])
    assert u.spearman_dim[0] == pytest.approx(spearmanr(freq, [it.dim for it in u.irreps])[0])
    rho, low, high = u.spearman_size
    assert -1 <= low <= high <= 1 and low <= rho + 1e-12
    # fixed seed: the interval is reproducible
    again = universality(paper50[0], resamples=1000, seed=0)[0]
    assert again.spearman_size == u.spearman_size


def test_spearman_against_scipy_on_random_data():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, size=7)                      # ties
    ys = rng.integers(0, 5, size=(20, 7))
    ours = spearman(x, ys)
    for row, value in zip(ys, ours):
        expected = spearmanr(x, row)[0]
        assert (np.isnan(value) and np.isnan(expected)) or value == pytest.approx(expected)
    assert np.isnan(spearman([1, 2, 3], [5, 5, 5]))     # constant: undefined


def test_bootstrap_of_a_perfect_ordering_is_degenerate():
    present = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]], dtype=float)   # freq 1, .75, .25
    assert bootstrap_spearman(present, [1, 2, 3], resamples=200)[0] == pytest.approx(-1.0)
    # every irrep in every run: all frequencies tie, so rho and every resample are undefined
    assert all(np.isnan(v) for v in bootstrap_spearman(np.ones((5, 3)), [1, 2, 3], resamples=50))


def test_monotonicity_and_orders_of_synthetic_runs():
    items = [IrrepFrequency("p", 1, 2, 3, 4), IrrepFrequency("q", 2, 3, 4, 4), IrrepFrequency("r", 3, 3, 1, 4)]
    assert monotone_violations(items, "min_rho_set_size") == [("p", "q")]
    assert monotone_violations(items, "dim") == [("p", "q")]
    runs = [RunSummary(run=f"S3_MLP_seed{s}", group="S3", model="MLP", seed=s, key_irreps=k)
            for s, k in enumerate([("standard", "sign"), ("standard", "sign"), ("sign", "standard"), ("standard",)])]
    (u,) = universality(runs, resamples=100)
    assert {it.irrep: it.count for it in u.irreps} == {"sign": 3, "standard": 4}
    assert u.ordered and u.orders == ((("standard", "sign"), 2), (("sign", "standard"), 1), (("standard",), 1))
    assert u.violations_size == (("sign", "standard"),)    # sign (size 2) is rarer than standard (size 3)
    text = universality_markdown([u])
    assert "standard > sign" in text and "NOT non-increasing in min rho-set size" in text
    rows = list(csv.DictReader(io.StringIO(universality_csv([u]))))
    assert [(r["irrep"], r["count"], r["min_rho_set_size"]) for r in rows] == [("sign", "3", "2"), ("standard", "4", "3")]
    bad = [RunSummary(run="S3_MLP_seed9", group="S3", model="MLP", seed=9, key_irreps=("nope",))]
    with pytest.raises(ValueError, match="nope"):
        universality(bad)


def test_cli_universality_writes_three_files(reference_dir, tmp_path, capsys):
    assert main(["universality", str(reference_dir / "paper_s5_mlp_50"), "--out", str(tmp_path),
                 "--resamples", "50"]) == 0
    out = capsys.readouterr().out
    assert "50 seeds" in out and "monotone in min rho-set size: yes" in out
    rows = list(csv.DictReader((tmp_path / "universality.csv").open()))
    assert {r["irrep"]: int(r["count"]) for r in rows} == PAPER_COUNTS
    assert "| s5_5d_a | 5 | 6 | 18/50 | 0.36 |" in (tmp_path / "universality.md").read_text()
    page = (tmp_path / "universality.html").read_text()
    assert "plotly" in page and "s5_6d" in page


def test_cli_subgroups_and_rho_sets(capsys):
    assert main(["subgroups", "S4"]) == 0
    assert capsys.readouterr().out.strip() == format_subgroup_classes("S4")
    assert main(["rho-sets", "S5"]) == 0
    assert capsys.readouterr().out.strip() == format_rho_set_table("S5")


def test_cli_explain_writes_neurons_csv(tmp_path, capsys):
    from rep_theory.algebra.groups import get_group
    from rep_theory.explain.planted import planted_rhoset_state
    from rep_theory.io import save_checked
    from rep_theory.training.config import paper_defaults
    from rep_theory.training.rundir import new_run

    state, _ = planted_rhoset_state(get_group("S4"), "standard")
    cfg = paper_defaults("S4", "MLP", embed_dim=16, hidden_dim=16, num_epochs=10)
    run = tmp_path / cfg.run_name
    new_run(run, cfg)
    save_checked(run / "model.pt", state)
    assert main(["explain", str(run), "--no-progress"]) == 0
    assert "16 rank one" in capsys.readouterr().out
    rows = list(csv.DictReader((run / "explain" / "neurons.csv").open()))
    assert len(rows) == 16 and {r["irrep"] for r in rows} == {"standard"}
    assert {(r["rho_set_size"], r["stabilizer"], r["coset_left_subgroup"]) for r in rows} == {("4", "S3", "S3")}
    summary = json.loads((run / "explain" / "summary.json").read_text())
    assert summary["neurons"]["rank_one_neurons"] == 16 and summary["cosets"]["left"]["found"] == 16
    from rep_theory.training.rundir import stamp_matches
    assert stamp_matches(run / "model.pt", summary["weights"], deep=True)     # tied to the weights it describes
