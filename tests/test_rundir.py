"""Run directories never serve stale or broken results (the contract of rep_theory.training.rundir).

A run is trained for real (tiny C7 MLP), evaluated, then changed the ways a user changes runs.
"""

import json
import os

import pytest

from rep_theory.analysis.summaries import collect_runs
from rep_theory.cli import main
from rep_theory.locks import run_lock
from rep_theory.training.config import RunConfig
from rep_theory.training.rundir import (list_checkpoints, new_run, read_metrics_csv, run_state, staleness,
                                        write_metrics_csv)
from rep_theory.training.train import train_runs

pytestmark = pytest.mark.usefixtures("one_thread")


def _trained(batch, weight_decay=1.0):
    run = batch / "C7_MLP_seed1"
    cfg = RunConfig(group="C7", model="MLP", seed=1, frac_train=0.6, num_epochs=30, lr=1e-2,
                    weight_decay=weight_decay, embed_dim=8, hidden_dim=16, log_every=10)
    new_run(run, cfg)
    train_runs([run], device="cpu", progress=False)
    return run


def _eval(run, *extra) -> int:
    return main(["eval", str(run), "--no-progress", *extra])


def test_retrained_run_gets_every_result_recomputed(tmp_path):
    """The reported bug: evaluate, change weight_decay, delete model.pt and resume/, retrain,
    re-evaluate: metrics.csv kept the old last-checkpoint row while the summary was new."""
    run = _trained(tmp_path)
    assert _eval(run) == 0 and run_state(run) == "evaluated"
    old_last = read_metrics_csv(run / "metrics.csv")[-1]["test_loss"]

    cfg = json.loads((run / "cfg.json").read_text())
    cfg["weight_decay"] = 0.0
    (run / "cfg.json").write_text(json.dumps(cfg))
    (run / "model.pt").unlink()
    for path in (run / "resume").iterdir():
        path.unlink()
    train_runs([run], device="cpu", progress=False)

    # Between retraining and evaluation the old results are stale, and tables leave the run out.
    assert run_state(run) == "trained" and "model.pt changed" in staleness(run)
    runs, pending = collect_runs(tmp_path)
    assert runs == [] and pending == ["C7_MLP_seed1"]

    assert _eval(run) == 0 and run_state(run) == "evaluated"
    summary = json.loads((run / "summary_metrics.json").read_text())
    rows = read_metrics_csv(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [e for e, _ in list_checkpoints(run)]
    assert rows[-1]["test_loss"] == pytest.approx(summary["test_loss"], rel=1e-12)
    assert rows[-1]["test_loss"] != pytest.approx(old_last, rel=1e-6)
    [summary_run], _ = collect_runs(tmp_path)
    assert summary_run.order_known and summary_run.metrics["test_loss"] == summary["test_loss"]


def test_a_changed_checkpoint_row_is_recomputed_and_a_gone_one_dropped(tmp_path):
    run = _trained(tmp_path)
    assert _eval(run, "--no-figures") == 0
    rows = read_metrics_csv(run / "metrics.csv")
    # Forge a row and touch a checkpoint: the row no longer describes those weights.
    epoch, path = list_checkpoints(run)[3]
    forged = [dict(r, test_loss=123.0) if r["epoch"] == epoch else r for r in rows]
    columns = open(run / "metrics.csv").readline().strip().split(",")
    write_metrics_csv(run / "metrics.csv", columns, forged)
    os.utime(path, ns=(1, 1))                                    # same bytes, another stamp: rehashed, kept
    assert _eval(run, "--no-figures") == 0
    assert {r["epoch"]: r["test_loss"] for r in read_metrics_csv(run / "metrics.csv")}[epoch] == 123.0
    path.write_bytes(list_checkpoints(run)[0][1].read_bytes())   # other weights under that epoch
    gone_epoch, gone = list_checkpoints(run)[5]
    gone.unlink()
    assert "changed" in staleness(run)
    assert _eval(run, "--no-figures") == 0
    after = {r["epoch"]: r["test_loss"] for r in read_metrics_csv(run / "metrics.csv")}
    assert after[epoch] == pytest.approx(after[0.0], rel=1e-12) and gone_epoch not in after


def test_no_checkpoints_means_no_learning_order_and_no_figures(tmp_path):
    run = _trained(tmp_path)
    assert _eval(run) == 0
    assert (run / "key_reps_in_order.txt").is_file() and (run / "figures" / "complete.json").is_file()
    for _, path in list_checkpoints(run):
        path.unlink()
    (run / "metrics.csv").unlink()
    assert _eval(run) == 0
    assert not (run / "key_reps_in_order.txt").exists()
    assert not (run / "figures" / "complete.json").exists() and not (run / "figures" / "fve.html").exists()


def test_figures_are_part_of_evaluated(tmp_path):
    run = _trained(tmp_path)
    assert _eval(run) == 0 and run_state(run) == "evaluated"
    (run / "figures" / "complete.json").unlink()   # e.g. Ctrl-C while the figures were written
    assert run_state(run) == "trained" and "figures" in staleness(run)
    assert _eval(run) == 0 and run_state(run) == "evaluated"


def test_corrupt_checkpoint_is_one_line_and_keeps_the_rows(tmp_path, capsys):
    run = _trained(tmp_path)
    checkpoints = list_checkpoints(run)
    epoch, bad = checkpoints[len(checkpoints) // 2]
    bad.write_bytes(bad.read_bytes()[:200])          # truncated
    assert _eval(run) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "Traceback" not in err[0], err
    kept = [r["epoch"] for r in read_metrics_csv(run / "metrics.csv")]
    assert kept and max(kept) < epoch and len(kept) == len(checkpoints) // 2
    assert run_state(run) == "trained"


def test_a_second_command_on_a_locked_run_says_busy(tmp_path, capsys):
    run = _trained(tmp_path)
    with run_lock([run]):
        assert _eval(run) == 75
        assert main(["train", str(run), "--no-progress"]) == 75
    err = capsys.readouterr().err
    assert err.count("busy") == 2 and "Traceback" not in err
    assert _eval(run) == 0
