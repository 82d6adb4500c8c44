"""The smoke grid end to end through ``create_run_and_eval_batch_experiments.sh``, to the tables.

One smoke batch is built per test session (:func:`smoke_batch_dir`, shared with
``tests/test_notebooks.py``).  The subprocesses run single-threaded: the smoke models are tiny,
and on a shared 2-core machine intra-op threads only fight each other.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rep_theory.analysis import summaries as analysis, tables
from rep_theory.pipeline import runner as experiments
from rep_theory.pipeline.grids import load_grid
from rep_theory.algebra.groups import get_group

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "create_run_and_eval_batch_experiments.sh"
_BUILT: dict[str, Path] = {}


def smoke_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    bin_dir = str(Path(sys.executable).parent)  # the `rep-theory` of this interpreter
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def smoke_batch_dir(tmp_path_factory) -> Path:
    """Build the smoke batch once per session through the bash pipeline; return its directory."""
    if "smoke" not in _BUILT:
        batch = tmp_path_factory.mktemp("smoke") / "batch"
        proc = subprocess.run(["bash", str(SCRIPT), "--grid", "smoke", "--dir", str(batch)],
                              cwd=ROOT, env=smoke_env(), capture_output=True, text=True,
                              timeout=600)
        if proc.returncode != 0:
            pytest.fail(f"pipeline failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                        f"{proc.stderr[-3000:]}")
        (batch / "pipeline.log").write_text(proc.stdout + proc.stderr)
        _BUILT["smoke"] = batch
    return _BUILT["smoke"]


@pytest.fixture(scope="session")
def smoke_batch(tmp_path_factory) -> Path:
    return smoke_batch_dir(tmp_path_factory)


def test_every_run_is_trained_and_evaluated(smoke_batch):
    expected = {r.name: r.config for r in load_grid("smoke")}
    status = experiments.batch_status(smoke_batch)
    assert set(status) == set(expected)
    assert all(info["state"] == "evaluated" and info["failure"] is None for info in status.values())
    for name, config in expected.items():
        run_dir = smoke_batch / name
        summary = json.loads((run_dir / "summary_metrics.json").read_text())
        irreps = (run_dir / "irreps.txt").read_text().split()
        assert irreps == [rho.name for rho in get_group(config.spec).irreps()]
        key = (run_dir / "key_reps_in_order.txt").read_text().split()
        assert key, f"{name}: no key irreps"
        assert sorted(key) == sorted((run_dir / "key_reps.txt").read_text().split())
        for name_ in key:  # key means final logit similarity above the paper's threshold
            assert summary[f"logit_{name_}_rep_trace_similarity"] > analysis.KEY_THRESHOLD
        # One metrics row per checkpoint, the last being the final model.
        rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
        checkpoints = list((run_dir / "checkpoints").glob("epoch_*.pt"))
        assert len(rows) == len(checkpoints) > 100
        assert max(float(r["epoch"]) for r in rows) == config.num_epochs
        assert (run_dir / "figures").is_dir()


def test_tables_parse_and_match_the_runs(smoke_batch):
    tables_dir = smoke_batch / "tables"
    runs, pending = analysis.collect_runs(smoke_batch)
    assert pending == [] and len(runs) == 8
    for model, stem in (("MLP", "mlp"), ("T", "transformer")):
        rows = list(csv.DictReader(open(tables_dir / f"{stem}_all.csv")))
        assert [(r["Group"], r["Seed"]) for r in rows] == [
            ("$C_{13}$", "1"), ("$C_{13}$", "2"), ("$D_{7}$", "1"), ("$D_{7}$", "2")]
        for row in rows:
            run = next(r for r in runs if r.model == model and tables.group_label(r.group) ==
                       row["Group"] and str(r.seed) == row["Seed"])
            listed = ", ".join(tables.display_irrep(k, run.group) for k in run.key_irreps)
            if run.metrics["test_acc"] < tables.GENERALISED_ACC and listed:  # marked, never passed off
                assert row["Key Irreps"] == f"{listed} (not generalised: test acc {100 * run.metrics['test_acc']:.1f}%)"
            else:
                assert row["Key Irreps"] == listed
            assert float(row["Test Loss"]) == pytest.approx(run.metrics["test_loss"], rel=6e-3)
            for column, value in row.items():
                if column.endswith("FVE"):
                    assert re.fullmatch(r"\d+\.\d\d\\%", value), (column, value)
                    assert 0.0 <= float(value[:-2]) <= 100.5
        averages = list(csv.DictReader(open(tables_dir / f"{stem}_avg.csv")))
        assert [r["Group"] for r in averages] == ["$C_{13}$", "$D_{7}$"]
        mean = sum(r.metrics["test_loss"] for r in runs if r.model == model and r.group == "C13") / 2
        assert float(averages[0][f"{model[0]}Test Loss"]) == pytest.approx(mean, rel=6e-3)
        tex = (tables_dir / f"{stem}_all.tex").read_text()
        assert tex.count("\\\\") == 1 + 4  # header + one line per run
    # The smoke groups are not the paper's: no comparison tables.
    assert not list(tables_dir.glob("compare_*"))
    assert "C13_T_seed1" in (tables_dir / "runs.csv").read_text()


def test_batch_figures_cover_every_group_and_model(smoke_batch):
    figures = {p.name for p in (smoke_batch / "figures").iterdir()}
    for stem in ("C13_MLP", "C13_T", "D7_MLP", "D7_T"):
        for kind in ("irrep_frequency", "key_irrep_count", "learning_order", "grokking"):
            assert f"{kind}_{stem}.html" in figures
        assert f"neuron_irreps_{stem}_seed1.html" in figures  # lowest seed only
        assert f"neuron_irreps_{stem}_seed2.html" not in figures


def test_rerun_skips_everything_complete(smoke_batch):
    model = smoke_batch / "C13_MLP_seed1" / "model.pt"
    before = model.stat().st_mtime_ns
    report = experiments.run_batch(smoke_batch, stages=("train", "evaluate"))
    assert report.trained == [] and report.evaluated == [] and report.failed == {}
    assert len(report.skipped) == 8
    assert model.stat().st_mtime_ns == before


def test_script_rejects_unknown_arguments():
    proc = subprocess.run(["bash", str(SCRIPT), "--gird", "smoke"], cwd=ROOT, env=smoke_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown argument: --gird" in proc.stderr


def test_script_help_is_its_comment_and_a_missing_value_is_named():
    help_text = subprocess.run(["bash", str(SCRIPT), "--help"], cwd=ROOT, env=smoke_env(),
                               capture_output=True, text=True, timeout=60).stdout
    assert help_text.startswith("The paper's batch pipeline") and "set -euo" not in help_text
    proc = subprocess.run(["bash", str(SCRIPT), "--dir", "x", "--grid"], cwd=ROOT, env=smoke_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--grid needs a value" in proc.stderr and "unbound" not in proc.stderr
