"""Evaluating run directories: files written, checkpoints skipped on re-runs, learning order, CLI.

The run is synthetic but meaningful: checkpoint 0 is the random initialisation, later checkpoints
are planted GCR models (tests/test_planted.py) in which freq_3 appears before freq_1, so the
learning order (freq_3, freq_1) differs from the irrep order (freq_1, freq_3).
"""

from __future__ import annotations

import csv
import json

import pytest
import torch

import rep_theory.analysis.evaluate as E
from rep_theory.cli import main
from rep_theory.training.config import RunConfig
from rep_theory.training.data import make_split
from rep_theory.io import save_checked
from rep_theory.analysis.metrics import checkpoint_metrics, metric_names
from rep_theory.analysis.metrics_batch import metrics_from_aggregates
from rep_theory.training.models import make_model
from rep_theory.analysis.run_figures import FIGURE_FILES
from rep_theory.pipeline.reports import evaluate_and_draw
from rep_theory.analysis.summaries import pending_reason
from rep_theory.training.rundir import load_weights, run_state, staleness
from test_planted import planted_mlp_state

SPEC = "C7"
IRREPS = ["trivial", "freq_1", "freq_2", "freq_3"]
# epoch -> (strength of freq_1, strength of freq_3); None: the random initialisation
SCHEDULE = {0: None, 1: (0.0, 1.0), 3: (0.02, 1.0), 10: (0.5, 1.0)}
FINAL = (1.0, 1.0)


def _state(strengths):
    if strengths is None:
        width = planted_mlp_state(SPEC, {"freq_1": 1, "freq_3": 1})["W_U"].shape[0]
        return make_model("OneLayerMLP", 7, seed=1, embed_dim=width, hidden_dim=width).state_dict()
    return planted_mlp_state(SPEC, {"freq_1": strengths[0], "freq_3": strengths[1]})


def _make_run(run_dir, epochs=SCHEDULE):
    width = _state(FINAL)["W_U"].shape[0]
    cfg = RunConfig(group=SPEC, model="OneLayerMLP", seed=1, frac_train=0.5, num_epochs=20,
                    embed_dim=width, hidden_dim=width)
    run_dir.mkdir(parents=True)
    (run_dir / "cfg.json").write_text(json.dumps(cfg.to_dict()))
    save_checked(run_dir / "model.pt", _state(FINAL))
    for k, (epoch, strengths) in enumerate(epochs.items()):
        _write_checkpoint(run_dir, epoch, _state(strengths), style=k % 3)
    return cfg


def _write_checkpoint(run_dir, epoch, state, style=0):
    path = run_dir / "checkpoints" / f"epoch_{epoch}.pt"
    path.parent.mkdir(exist_ok=True)
    if style == 0:
        torch.save(state, path)                          # the trainer's plain state dicts
    elif style == 1:
        save_checked(path, state)                        # checked files
    else:
        torch.save({"model": state, "epoch": epoch}, path)  # a trainer checkpoint dict


@pytest.fixture
def counted(monkeypatch):
    """Counts the checkpoints evaluate_run computes (one by one or several per pass)."""
    calls = []

    def counting(*args, **kwargs):
        calls.append(kwargs.get("epoch"))
        return checkpoint_metrics(*args, **kwargs)

    def counting_many(*args, **kwargs):
        calls.extend(kwargs.get("epochs"))
        return metrics_from_aggregates(*args, **kwargs)

    monkeypatch.setattr(E, "checkpoint_metrics", counting)
    monkeypatch.setattr(E, "metrics_from_aggregates", counting_many)
    return calls


def _csv(run_dir):
    with open(run_dir / "metrics.csv") as fh:
        rows = list(csv.reader(fh))
    return rows[0], [[float(v) for v in row] for row in rows[1:]]


def test_evaluate_run_writes_every_file(tmp_path, counted):
    run = tmp_path / "C7_MLP_seed1"
    cfg = _make_run(run)
    summary = evaluate_and_draw(run, progress=False)
    assert sorted(counted) == [0, 1, 3, 10, 20]
    columns, rows = _csv(run)
    assert columns == metric_names(IRREPS) and columns[-1] == "epoch"
    assert [r[-1] for r in rows] == [0.0, 1.0, 3.0, 10.0]
    assert (run / "irreps.txt").read_text() == "".join(f"{x}\n" for x in IRREPS)
    assert (run / "key_reps.txt").read_text() == "freq_1\nfreq_3\n"
    assert (run / "key_reps_in_order.txt").read_text() == "freq_3\nfreq_1\n"
    # the summary is the final model's metrics, with the paper's epoch
    assert json.loads((run / "summary_metrics.json").read_text()) == summary
    model = make_model("OneLayerMLP", 7, embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim)
    model.load_state_dict(_state(FINAL))
    split = make_split(SPEC, cfg.frac_train, cfg.seed)
    assert summary == checkpoint_metrics(model, SPEC, train_pairs=split.train, epoch=20)
    assert summary["epoch"] == 20.0 and summary["test_acc"] == 1.0
    # rows use the final model's key irreps for their totals
    row = dict(zip(columns, rows[1]))
    assert row["percent_unembed_explained"] == pytest.approx(row["percent_unembed_freq_1_rep"] + row["percent_unembed_freq_3_rep"])
    assert row["logit_freq_3_rep_trace_similarity"] == pytest.approx(1.0, abs=1e-5)
    for name in FIGURE_FILES:
        html = (run / "figures" / name).read_text()
        assert "plotly.min.js" in html and ("freq_3" in html) == (name != "loss_accuracy.html"), name
    assert (run / "figures" / "plotly.min.js").stat().st_size > 100_000


def test_rerun_skips_evaluated_checkpoints(tmp_path, counted):
    run = tmp_path / "run"
    _make_run(run)
    E.evaluate_run(run, progress=False)
    before = (run / "metrics.csv").read_text()
    counted.clear()
    E.evaluate_run(run, progress=False)
    assert counted == [20]                                          # only the final model
    assert (run / "metrics.csv").read_text() == before
    _write_checkpoint(run, 15, _state((0.9, 1.0)))
    counted.clear()
    E.evaluate_run(run, progress=False)
    assert sorted(counted) == [15, 20]
    assert [r[-1] for r in _csv(run)[1]] == [0.0, 1.0, 3.0, 10.0, 15.0]


def test_changed_key_irreps_reevaluate_every_checkpoint(tmp_path, counted):
    run = tmp_path / "run"
    _make_run(run)
    E.evaluate_run(run, progress=False)
    save_checked(run / "model.pt", _state((0.0, 1.0)))             # now only freq_3 is key
    counted.clear()
    E.evaluate_run(run, progress=False)
    assert sorted(counted) == [0, 1, 3, 10, 20]
    assert (run / "key_reps.txt").read_text() == "freq_3\n"
    columns, rows = _csv(run)
    row = dict(zip(columns, rows[-1]))
    assert row["percent_unembed_explained"] == row["percent_unembed_freq_3_rep"]


def test_rows_of_another_metrics_revision_are_recomputed(tmp_path, counted, capsys):
    """Rows written under an older arithmetic (evaluation.json without ``metrics_revision``, or
    another one) are never served: every checkpoint is evaluated again and the record says so."""
    run = tmp_path / "run"
    _make_run(run)
    E.evaluate_run(run, progress=False)
    record = json.loads((run / "evaluation.json").read_text())
    assert record["metrics_revision"] == E.METRICS_REVISION == 2
    for old in (None, 1):
        if old is None:
            del record["metrics_revision"]          # written before revisions were recorded
        else:
            record["metrics_revision"] = old
        (run / "evaluation.json").write_text(json.dumps(record))
        reason = staleness(run)                      # status and tables do not serve it meanwhile
        assert reason is not None and ("unrecorded" if old is None else "revision 1") in reason, reason
        assert run_state(run) == "trained" and pending_reason(run) == reason
        assert main(["batch", str(tmp_path), "--status"]) == 0       # and batch --status prints the reason
        assert f"trained  ({reason})" in capsys.readouterr().out
        counted.clear()
        E.evaluate_run(run, progress=False)
        assert sorted(counted) == [0, 1, 3, 10, 20], old
        assert json.loads((run / "evaluation.json").read_text())["metrics_revision"] == 2
        assert staleness(run, final_only=True) is None
    # --final on a run whose rows are of another revision: the summary is current, the rows are not
    record = json.loads((run / "evaluation.json").read_text())
    record["metrics_revision"] = 1
    (run / "evaluation.json").write_text(json.dumps(record))
    E.evaluate_run(run, progress=False, final_only=True)
    after = json.loads((run / "evaluation.json").read_text())
    assert after["metrics_revision"] == 2 and after["checkpoints"] == {}
    assert staleness(run, final_only=True) is None and "not evaluated" in staleness(run)


def test_cli_final_only(tmp_path, capsys):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        _make_run(run, epochs={0: None})
    assert main(["eval", "--final", "--no-progress", *map(str, runs)]) == 0
    for run in runs:
        assert (run / "summary_metrics.json").is_file() and (run / "key_reps.txt").is_file()
        assert not (run / "metrics.csv").exists() and not (run / "key_reps_in_order.txt").exists()
        assert not (run / "figures").exists()
    assert "test_loss" in capsys.readouterr().out


def test_errors_name_the_missing_file(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        E.evaluate_run(tmp_path)
    run = tmp_path / "run"
    _make_run(run, epochs={})
    (run / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match="model.pt"):
        E.evaluate_run(run)
    assert main(["eval", str(run)]) == 2
    assert "model.pt" in capsys.readouterr().err


def test_load_weights_rejects_other_objects(tmp_path):
    torch.save([1, 2, 3], tmp_path / "x.pt")
    with pytest.raises(ValueError, match="state dict"):
        load_weights(tmp_path / "x.pt")


def test_sigterm_during_eval_keeps_the_rows_and_exits_143(tmp_path, monkeypatch, capsys):
    """SIGTERM (a scheduler ending the job) stops ``eval`` like Ctrl-C: the rows computed so far are
    written, with their stamps, and the command exits 143 with one line."""
    import os
    import signal

    run = tmp_path / "run"
    _make_run(run)
    monkeypatch.setattr(E, "_FIRST_BATCH", 1)                         # batches [0], [1, 3], [10]
    calls, killed = [], []

    def terminated_on_the_second_batch(*args, **kwargs):
        calls.append(kwargs["epochs"])
        if len(calls) == 2 and not killed:
            killed.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return metrics_from_aggregates(*args, **kwargs)

    monkeypatch.setattr(E, "metrics_from_aggregates", terminated_on_the_second_batch)
    previous = signal.getsignal(signal.SIGTERM)
    assert main(["eval", str(run), "--no-figures", "--no-progress", "--device", "cpu"]) == 143
    assert signal.getsignal(signal.SIGTERM) is previous                # the handler is removed again
    err = capsys.readouterr().err
    assert "rep-theory eval: SIGTERM; what was finished is kept" in err and "Traceback" not in err
    assert [r[-1] for r in _csv(run)[1]] == [0.0]
    assert list(json.loads((run / "evaluation.json").read_text())["checkpoints"]) == ["0"]
    calls.clear()
    assert main(["eval", str(run), "--no-figures", "--no-progress", "--device", "cpu"]) == 0   # resumes
    assert sorted(e for batch in calls for e in batch) == [1, 3, 10]
