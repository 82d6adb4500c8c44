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


# --- found by an audit that tried to make a reader serve a stale number --------------------------------
def _edit_config(run, **changes):
    cfg = json.loads((run / "cfg.json").read_text())
    cfg.update(changes)
    (run / "cfg.json").write_text(json.dumps(cfg))


def test_a_config_edit_makes_the_evaluation_stale(tmp_path):
    """frac_train changed after eval: the summary and rows describe the old split.  evaluation.json
    stamps the config; the run is stale until re-evaluated, and eval recomputes every row."""
    run = _trained(tmp_path)
    assert _eval(run) == 0 and run_state(run) == "evaluated"
    _edit_config(run, frac_train=0.5)
    assert run_state(run) == "trained" and staleness(run) == "cfg.json changed since it was evaluated"
    assert collect_runs(tmp_path) == ([], ["C7_MLP_seed1"])
    _edit_config(run, device="cuda")                    # the device changes no number: not part of the stamp
    assert staleness(run) == "cfg.json changed since it was evaluated"
    _edit_config(run, device="cpu")
    assert _eval(run) == 0 and run_state(run) == "evaluated"
    summary = json.loads((run / "summary_metrics.json").read_text())
    assert read_metrics_csv(run / "metrics.csv")[-1]["train_loss"] == pytest.approx(summary["train_loss"], rel=1e-12)
    _edit_config(run, device="cuda")
    assert run_state(run) == "evaluated"


def test_a_run_without_model_pt_serves_no_summary(tmp_path):
    """Deleting model.pt to retrain (or a retraining in progress) left tables, figures and universality
    serving the old summary as if it were the paper's released files."""
    from rep_theory.explain.universality import runs_from_key_reps

    run = _trained(tmp_path)
    assert _eval(run) == 0 and [r.run for r in runs_from_key_reps(tmp_path)] == ["C7_MLP_seed1"]
    (run / "model.pt").unlink()
    assert collect_runs(tmp_path) == ([], ["C7_MLP_seed1"])
    assert runs_from_key_reps(tmp_path) == []


def test_eval_final_with_another_key_set_drops_the_rows_and_the_order(tmp_path):
    """``eval --final`` with another key threshold changed key_reps.txt but kept key_reps_in_order.txt
    and the rows' stamps: tables showed an order of another key set."""
    run = _trained(tmp_path)
    assert _eval(run) == 0 and (run / "key_reps_in_order.txt").is_file()
    summary = json.loads((run / "summary_metrics.json").read_text())
    top = max(v for k, v in summary.items() if k.startswith("logit_") and k.endswith("_rep_trace_similarity"))
    assert _eval(run, "--final", "--key-threshold", str(top + 1e-6)) == 0   # no irrep is key any more
    assert not (run / "key_reps_in_order.txt").exists()
    assert run_state(run) == "trained" and "not evaluated" in staleness(run)
    assert _eval(run) == 0 and run_state(run) == "evaluated"


def test_a_model_pt_copied_over_with_its_size_and_time_is_caught(tmp_path):
    """Another seed's model.pt copied over, size and modification time restored: the stamp's digest
    (read from the checked file's header) tells them apart."""
    import shutil

    run = _trained(tmp_path)
    other = tmp_path / "other" / "C7_MLP_seed2"
    cfg = json.loads((run / "cfg.json").read_text())
    cfg["seed"] = 2
    other.parent.mkdir()
    new_run(other, RunConfig.from_dict(cfg))
    train_runs([other], device="cpu", progress=False)
    assert _eval(run) == 0 and run_state(run) == "evaluated"
    before = (run / "model.pt").stat()
    assert (other / "model.pt").stat().st_size == before.st_size
    shutil.copyfile(other / "model.pt", run / "model.pt")
    os.utime(run / "model.pt", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert staleness(run) == "model.pt changed since it was evaluated"


def test_a_fresh_training_moves_the_earlier_checkpoints_aside(tmp_path):
    """Retraining with fewer epochs after deleting model.pt and resume/ left the old training's later
    checkpoints beside the new ones, and eval kept their rows."""
    run = _trained(tmp_path)
    old = [e for e, _ in list_checkpoints(run)]
    (run / "model.pt").unlink()
    for path in (run / "resume").iterdir():
        path.unlink()
    _edit_config(run, num_epochs=12)
    train_runs([run], device="cpu", progress=False)
    assert max(e for e, _ in list_checkpoints(run)) == 12 < max(old)
    aside = [p for p in run.iterdir() if p.name.startswith("checkpoints.superseded-")]
    assert len(aside) == 1 and len(list(aside[0].iterdir())) == len(old)


def test_lenses_read_key_irreps_only_from_a_current_evaluation(tmp_path):
    """``run_lenses`` read key irreps from key_reps files whatever their staleness; a stale evaluation's
    files are now ignored and the model decides."""
    from rep_theory.lenses.runs import _load_run

    run = _trained(tmp_path)
    assert _eval(run) == 0
    assert _load_run(run, "cpu")[3] == list((run / "key_reps_in_order.txt").read_text().split())
    _edit_config(run, frac_train=0.5)
    assert _load_run(run, "cpu")[3] is None


def test_eval_final_after_a_config_edit_stops_vouching_for_the_rows(tmp_path):
    """A review found ``eval --final`` after a cfg.json edit stamping the new config while keeping the
    old split's rows and order as current."""
    run = _trained(tmp_path)
    assert _eval(run) == 0
    _edit_config(run, frac_train=0.5)
    assert _eval(run, "--final") == 0
    assert not (run / "key_reps_in_order.txt").exists()
    assert run_state(run) == "trained" and "not evaluated" in staleness(run)
    assert run_state(run, final_only=True) == "evaluated"


def test_the_config_stamp_ignores_what_changes_no_number(tmp_path):
    from rep_theory.training.rundir import config_digest

    run = _trained(tmp_path)
    before = config_digest(run)
    _edit_config(run, device="cuda", log_every=7, version="9.9.9")
    assert config_digest(run) == before
    _edit_config(run, lr=2e-2)
    assert config_digest(run) != before
    assert _eval(run) == 0
    (run / "cfg.json").write_text("{")
    assert staleness(run).startswith("cfg.json is unreadable")


def test_a_second_fresh_training_in_the_same_second_keeps_both_old_series(tmp_path, monkeypatch):
    import rep_theory.training.train as train_module

    run = _trained(tmp_path)
    monkeypatch.setattr(train_module.time, "strftime", lambda *args: "20260101T000000")
    for _ in range(2):
        (run / "model.pt").unlink()
        for path in (run / "resume").iterdir():
            path.unlink()
        train_runs([run], device="cpu", progress=False)
    aside = sorted(p.name for p in run.iterdir() if p.name.startswith("checkpoints.superseded-"))
    assert aside == ["checkpoints.superseded-20260101T000000", "checkpoints.superseded-20260101T000000-1"]
