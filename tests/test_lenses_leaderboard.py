"""The leaderboard on small trained / random models, the run-directory wrapper, the batch table and the CLI."""

from __future__ import annotations

import math

import pytest
import torch

from rep_theory.algebra.groups import get_group
from rep_theory.cli import main
from rep_theory.io import atomic_write_json
from rep_theory.lenses import COLUMNS, LENSES, batch_lens_table, lens_leaderboard, run_lenses
from rep_theory.lenses.runs import read_leaderboard
from rep_theory.training.config import RunConfig
from rep_theory.training.models import Transformer
from rep_theory.training.train import fit


@pytest.fixture(scope="module")
def trained_s4():
    """Two seeds of a tiny S4 MLP that generalises (test accuracy 1 after 1500 full-batch steps, ~3 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny models: one thread avoids per-op thread start-up
    cfgs = [RunConfig(group="S4", model="MLP", seed=s, num_epochs=1500, embed_dim=32, hidden_dim=32, frac_train=0.9,
                      lr=1e-2, weight_decay=2.0, device="cpu", log_every=500) for s in (1, 2)]
    models, logs = fit(cfgs, "cpu")
    assert all(log[-1]["test_acc"] > 0.95 for log in logs)
    yield cfgs, models
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def s4_rows(trained_s4):
    _, models = trained_s4
    return lens_leaderboard(models[0], get_group("S4"), progress=False)


def test_mlp_leaderboard_covers_every_lens_and_site(s4_rows):
    got = {(r["lens"], r["site"]) for r in s4_rows}
    for lens in LENSES:
        sites = ["hidden"] if lens in ("transcoder", "scae") else ["embed_left", "embed_right", "hidden"]
        assert {(lens, s) for s in sites} <= got, lens
    assert len(got) == 6 * 3 + 2
    for r in s4_rows:
        assert set(COLUMNS) <= set(r)
        for col in ("purity", "alignment", "loss_recovered"):
            assert 0.0 <= r[col] <= 1.0 + 1e-9 or col == "loss_recovered", (r["lens"], r["site"], col, r[col])
        has_edges = r["lens"] in ("lib", "transcoder", "scae")
        assert (0.0 <= r["cross_irrep_edge_mass"] <= 1.0) if has_edges else math.isnan(r["cross_irrep_edge_mass"])
        sparse = r["lens"] in ("sae_topk", "sae_l1", "transcoder", "scae")
        assert (r["l0"] > 0) if sparse else math.isnan(r["l0"])
    assert r["key_irreps"]  # the trained model has key irreps


def test_mlp_leaderboard_scores_make_sense(s4_rows):
    by = {(r["lens"], r["site"]): r for r in s4_rows}
    # complete bases reconstruct exactly; LIB only drops what the logits cannot see
    for lens in ("neuron", "random", "pca"):
        assert by[(lens, "hidden")]["loss_recovered"] == pytest.approx(1.0, abs=1e-6)
    assert by[("lib", "hidden")]["loss_recovered"] == pytest.approx(1.0, abs=1e-4)
    # the GCR neurons are far purer than a random rotation of them
    assert by[("neuron", "hidden")]["purity"] > by[("random", "hidden")]["purity"] + 0.3
    assert by[("sae_topk", "hidden")]["l0"] <= 8.0
    assert by[("transcoder", "hidden")]["loss_recovered"] > 0.5


def test_transformer_sites_and_lenses_run():
    torch.manual_seed(0)
    model = Transformer(6, seed=0)
    rows = lens_leaderboard(model, get_group("S3"), lenses=["neuron", "lib", "pca", "transcoder", "scae"],
                            key_irreps=["standard"], progress=False)
    got = {(r["lens"], r["site"]) for r in rows}
    assert got == {("neuron", "resid_mid"), ("neuron", "mlp_post"), ("lib", "resid_mid"), ("lib", "mlp_post"),
                   ("pca", "resid_mid"), ("pca", "mlp_post"), ("transcoder", "mlp_post"), ("scae", "mlp_post")}
    by = {(r["lens"], r["site"]): r for r in rows}
    assert by[("neuron", "resid_mid")]["loss_recovered"] == pytest.approx(1.0, abs=1e-6)
    assert by[("lib", "mlp_post")]["loss_recovered"] == pytest.approx(1.0, abs=1e-4)
    # the full hook names are accepted as sites
    alias = lens_leaderboard(model, get_group("S3"), lenses=["neuron"], sites=["blocks.0.mlp.hook_post"],
                             key_irreps=["standard"], progress=False)
    assert alias[0]["site"] == "mlp_post" and alias[0]["purity"] == by[("neuron", "mlp_post")]["purity"]


def test_errors_name_the_bad_value(trained_s4):
    _, models = trained_s4
    G = get_group("S4")
    with pytest.raises(ValueError, match=r"unknown lens 'ica'; expected one of \['neuron', 'random'"):
        lens_leaderboard(models[0], G, lenses=["ica"])
    with pytest.raises(ValueError, match=r"unknown site 'resid_mid' for a OneLayerMLP; expected one of"):
        lens_leaderboard(models[0], G, lenses=["neuron"], sites=["resid_mid"])
    with pytest.raises(ValueError, match="group S5 has order 120"):
        lens_leaderboard(models[0], get_group("S5"), lenses=["neuron"])


def test_run_dirs_cli_and_batch_table(trained_s4, tmp_path, capsys):
    cfgs, models = trained_s4
    batch = tmp_path / "batch"
    runs = []
    for cfg, model in zip(cfgs, models):
        rd = batch / f"S4_MLP_seed{cfg.seed}"
        rd.mkdir(parents=True)
        atomic_write_json(rd / "cfg.json", cfg.to_dict())
        torch.save(model.state_dict(), rd / "model.pt")
        runs.append(rd)
    (batch / "S4_MLP_seed3").mkdir()
    atomic_write_json(batch / "S4_MLP_seed3" / "cfg.json", cfgs[0].replace(seed=3).to_dict())   # not run yet
    path = run_lenses(runs[0], lenses=["neuron", "lib"], sites=["hidden"], progress=False)
    assert path == runs[0] / "lenses" / "leaderboard.csv"
    rows = read_leaderboard(path)
    assert [(r["lens"], r["site"]) for r in rows] == [("neuron", "hidden"), ("lib", "hidden")]
    assert "plotly" in (runs[0] / "lenses" / "leaderboard.html").read_text()
    assert main(["lenses", str(runs[1]), "--lens", "neuron", "--lens", "lib", "--site", "hidden", "--no-progress"]) == 0
    assert main(["lenses", str(runs[1]), "--lens", "ica"]) == 2
    assert "expected one of" in capsys.readouterr().err
    assert main(["lenses", str(batch), "--table"]) == 0
    table = capsys.readouterr().out
    assert table == batch_lens_table(batch)
    lines = [l for l in table.splitlines() if l.startswith("| ") and "neuron" in l]
    assert len(lines) == 1
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    assert cells[1:4] == ["neuron", "hidden", "2"]
    match, hist = float(cells[-2]), float(cells[-1])
    assert 0.0 < match <= 1.0 and 0.0 < hist <= 1.0
    assert "pending (no lenses/leaderboard.csv): S4_MLP_seed3" in table


def _run_dir(tmp_path, cfg, model, name="run"):
    rd = tmp_path / name
    rd.mkdir(parents=True)
    atomic_write_json(rd / "cfg.json", cfg.to_dict())
    torch.save(model.state_dict(), rd / "model.pt")
    return rd


def test_an_interrupted_run_keeps_its_finished_lenses_and_resumes(trained_s4, tmp_path, monkeypatch):
    """Ctrl-C in the third (lens, site) job: the two finished ones are in partial.pt and are not
    fitted again; the resumed leaderboard equals an uninterrupted one (fitting times aside)."""
    import dataclasses

    import rep_theory.lenses.leaderboard as LB

    cfgs, models = trained_s4
    whole = run_lenses(_run_dir(tmp_path, cfgs[0], models[0], "whole"), lenses=["neuron", "pca"], progress=False)
    rd = _run_dir(tmp_path, cfgs[0], models[0])
    calls = []
    real = dict(LB.LENSES)

    def counting(name, fail_at=None):
        def fit(ctx, site, **kw):
            calls.append((name, site))
            if fail_at is not None and len(calls) == fail_at:
                raise KeyboardInterrupt
            return real[name].fit(ctx, site, **kw)
        return dataclasses.replace(real[name], fit=fit)

    for name in ("neuron", "pca"):
        monkeypatch.setitem(LB.LENSES, name, counting(name, fail_at=3))
    with pytest.raises(KeyboardInterrupt):
        run_lenses(rd, lenses=["neuron", "pca"], progress=False)
    assert not (rd / "lenses" / "leaderboard.csv").exists()
    kept = torch.load(rd / "lenses" / "partial.pt", weights_only=True)
    assert sorted(kept["done"]) == ["neuron@embed_left", "neuron@embed_right"]
    calls.clear()
    for name in ("neuron", "pca"):
        monkeypatch.setitem(LB.LENSES, name, counting(name))
    path = run_lenses(rd, lenses=["neuron", "pca"], progress=False)
    assert ("neuron", "embed_left") not in calls and ("neuron", "embed_right") not in calls
    assert len(calls) == 4 and not (rd / "lenses" / "partial.pt").exists()
    got, want = read_leaderboard(path), read_leaderboard(whole)
    assert [(r["lens"], r["site"]) for r in got] == [(r["lens"], r["site"]) for r in want]
    for a, b in zip(got, want):
        for col in ("purity", "coverage", "alignment", "loss_recovered", "n_live"):
            assert a[col] == pytest.approx(b[col], rel=1e-9, abs=1e-12), (a["lens"], a["site"], col)
    # a partial file of other options (another seed) is not reused
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        for name in ("neuron", "pca"):
            monkeypatch.setitem(LB.LENSES, name, counting(name, fail_at=2))
        run_lenses(rd, lenses=["neuron", "pca"], progress=False, seed=1)
    calls.clear()
    for name in ("neuron", "pca"):
        monkeypatch.setitem(LB.LENSES, name, counting(name))
    run_lenses(rd, lenses=["neuron", "pca"], progress=False)        # seed 0 again: nothing of seed 1 kept
    assert len(calls) == 6


def test_batch_table_serves_no_leaderboard_of_other_weights(trained_s4, tmp_path):
    cfgs, models = trained_s4
    batch = tmp_path / "batch"
    runs = [_run_dir(batch, cfg, model, f"S4_MLP_seed{cfg.seed}") for cfg, model in zip(cfgs, models)]
    for rd in runs:
        run_lenses(rd, lenses=["neuron"], sites=["hidden"], progress=False)
    assert "| neuron | hidden | 2 |" in batch_lens_table(batch)
    torch.save(models[0].state_dict(), runs[1] / "model.pt")          # seed 2 "retrained"
    table = batch_lens_table(batch)
    assert "| neuron | hidden | 1 |" in table
    assert "stale, not shown" in table and "S4_MLP_seed2 (model.pt changed since the lenses were scored)" in table
    (runs[0] / "lenses" / "record.json").unlink()                     # written before records existed
    assert "S4_MLP_seed1 (no lenses/record.json" in batch_lens_table(batch)
    run_lenses(runs[1], lenses=["neuron"], sites=["hidden"], progress=False)
    assert "S4_MLP_seed2" not in batch_lens_table(batch).split("stale")[-1]
