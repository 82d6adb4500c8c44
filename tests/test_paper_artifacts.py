"""The paper's own artifacts, each demonstrated from first principles, and how the tables flag them.

Chughtai, Chan & Nanda, "A Toy Model of Universality" (ICML 2023) released run summaries
(``reference/paper_runs.csv``) some of whose numbers come from its code, not its networks
(:mod:`rep_theory.analysis.paper_artifacts`; README, "Where the paper's numbers cannot be
reproduced, and why"):

* A5: the paper's 3-d "irreps" are built from a rotation about a non-unit axis, so they are not
  representations;
* the paper's ``loss_fn`` returns 8x the mean above 15,000 rows, which only S6 reaches, and only the
  S6 transformer summaries were computed with it;
* the paper's released configs (all families, the width sweep, S6's stale ``epochs`` key) load as
  they are;
* the paper's learning-order rule (one irrep per checkpoint, in key-irrep order) is reproduced on
  its own ``metrics.csv`` files;
* the comparison tables mark every affected cell and put chunked losses on the mean scale.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import re
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from rep_theory.algebra.groups import get_group
from rep_theory.analysis import paper_artifacts as pa
from rep_theory.analysis import summaries, tables
from rep_theory.analysis.metrics import learning_order
from rep_theory.cli import main
from rep_theory.training.config import PAPER_EXTRA_KEYS, group_spec, load_config
from rep_theory.training.rundir import read_lines, read_metrics_csv

GOLDEN = (1 + math.sqrt(5)) / 2
EYE3 = torch.eye(3, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# A5: the paper's 3-d irreps are not representations
# --------------------------------------------------------------------------------------------
def _paper_generator_from_scratch() -> torch.Tensor:
    """The paper's construction, rebuilt here independently of the module: scipy's
    ``Rotation.from_rotvec(2 pi/5 * a * (1/2, (1+sqrt5)/5, 0))`` (the rotation by the vector's norm
    about its direction), ``a = sqrt(8/(5+sqrt5))``."""
    scipy_rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    a = math.sqrt(8 / (5 + math.sqrt(5)))
    rotvec = [2 * math.pi / 5 * a * c for c in (0.5, (1 + math.sqrt(5)) / 5, 0.0)]
    return torch.tensor(scipy_rotation.from_rotvec(rotvec).as_matrix(), dtype=torch.float64)


def test_paper_a5_3d_generator_is_not_a_representation():
    """The paper's 5-cycle matrix has x^5 != I and trace 1.94, not the golden ratio; its axis has
    norm 0.86, so it rotates by 0.86 * 72 degrees."""
    x = pa.paper_a5_3d_generator()
    assert torch.allclose(x, _paper_generator_from_scratch(), atol=1e-12), "Rodrigues equals scipy's from_rotvec"
    assert torch.allclose(x @ x.T, EYE3, atol=1e-12), "it is a rotation"
    a = math.sqrt(8 / (5 + math.sqrt(5)))
    axis_norm = a * math.hypot(0.5, (1 + math.sqrt(5)) / 5)
    assert axis_norm == pytest.approx(0.86, abs=0.005)
    angle = math.degrees(math.acos((torch.trace(x).item() - 1) / 2))
    assert angle == pytest.approx(72 * axis_norm, abs=1e-9) and abs(angle - 72) > 9
    error = (torch.linalg.matrix_power(x, 5) - EYE3).abs().max().item()
    assert error > 0.5, f"x^5 should be far from I (the 5-cycle has order 5), max error {error}"
    assert abs(torch.trace(x).item() - GOLDEN) > 0.3, f"trace {torch.trace(x).item()} vs golden ratio {GOLDEN}"


def test_the_unit_axis_gives_a_representation_and_so_do_ours():
    """With (1+sqrt5)/4 (a unit axis) the same construction satisfies A5's presentation
    x^5 = y^2 = (xy)^3 = I with the paper's involution y = diag(-1, 1, -1); the paper's x fails
    (xy)^3 = I as well.  Our a5_3d_a / a5_3d_b are homomorphisms with characters phi and 1 - phi
    on the 5-cycle 0->1->2->3->4->0."""
    y = torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64))
    fixed = pa.paper_a5_3d_generator(corrected=True)
    for relation in (torch.linalg.matrix_power(fixed, 5), y @ y, torch.linalg.matrix_power(fixed @ y, 3)):
        assert torch.allclose(relation, EYE3, atol=1e-12)
    assert torch.trace(fixed).item() == pytest.approx(GOLDEN, abs=1e-12)
    broken = pa.paper_a5_3d_generator()
    assert (torch.linalg.matrix_power(broken @ y, 3) - EYE3).abs().max() > 0.1

    G = get_group("A5")
    irreps = {r.name: r for r in G.irreps()}
    five_cycle = [tuple(int(v) for v in e) for e in G.elements].index((1, 2, 3, 4, 0))
    for name, expected in (("a5_3d_a", GOLDEN), ("a5_3d_b", 1 - GOLDEN)):
        rho = irreps[name].matrices
        assert torch.allclose(torch.linalg.matrix_power(rho[five_cycle], 5), EYE3, atol=1e-10), name
        assert irreps[name].character[five_cycle].item() == pytest.approx(expected, abs=1e-10), name
        products = torch.einsum("aij,bjk->abik", rho, rho)
        assert torch.allclose(products, rho[G.table], atol=1e-10), f"{name}: rho(a) rho(b) != rho(ab)"


# --------------------------------------------------------------------------------------------
# The chunked loss
# --------------------------------------------------------------------------------------------
def _mean_loss(logits, labels):
    return F.cross_entropy(logits.to(torch.float64), labels)


@pytest.mark.parametrize("rows, factor", [(15_000, 1), (14_400, 1), (16_000, 8), (129_600 // 8, 8)])
def test_paper_chunked_loss_is_8x_the_mean_above_15000_rows(rows, factor):
    """The paper's loss_fn sums 8 chunk means above 15,000 rows: with equal chunks that is 8x the mean."""
    gen = torch.Generator().manual_seed(rows)
    logits = torch.randn(rows, 7, generator=gen)
    labels = torch.randint(0, 7, (rows,), generator=gen)
    mean = _mean_loss(logits, labels)
    assert pa.paper_loss_fn(logits, labels).item() == pytest.approx(factor * mean.item(), rel=1e-12)
    assert pa.paper_loss_factor(rows) == factor


def test_unequal_chunks_are_no_fixed_multiple():
    rows = 15_001  # rows // 8 = 1875: 9 chunks, the last of 1 row
    gen = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(rows, 5, generator=gen), torch.randint(0, 5, (rows,), generator=gen)
    ratio = (pa.paper_loss_fn(logits, labels) / _mean_loss(logits, labels)).item()
    assert not math.isclose(ratio, 8, rel_tol=1e-3)
    with pytest.raises(ValueError, match="15001 rows"):
        pa.paper_loss_factor(rows)


def test_only_s6_sets_exceed_15000_rows_and_their_factor_is_8():
    """Row counts of every (group, frac_train) the paper released: only S6's train, test and
    all-pairs sets exceed 15,000 rows (C118 and D59: 13,924; D61: 14,884; S5: 14,400), and 8
    divides each of them, so a chunked S6 summary is exactly 8x the mean."""
    seen = {}
    for run in summaries.paper_runs():
        n = get_group(run.group).order
        for key in ("train_loss", "test_loss", "all_loss", "total_hidden_excluded_loss",
                    "total_hidden_restricted_loss"):
            rows = pa.loss_rows(key, n, run.frac_train)
            seen[(run.group, run.frac_train, key)] = rows
            if run.group == "S6":
                assert rows > pa.PAPER_LOSS_CHUNK_ROWS and pa.paper_loss_factor(rows) == 8, (run.run, key, rows)
            else:
                assert rows <= pa.PAPER_LOSS_CHUNK_ROWS and pa.paper_loss_factor(rows) == 1, (run.run, key, rows)
    assert seen[("S6", 0.25, "train_loss")] == 129_600 and seen[("S6", 0.4, "train_loss")] == 207_360
    assert seen[("S6", 0.4, "total_hidden_restricted_loss")] == 720 ** 2


def test_released_summaries_carrying_the_factor():
    """Only the S6 transformer summaries carry it (the S6 MLP ones predate the chunking): their
    losses go back to the mean scale, their FVEs and every other run stay as they are."""
    by_run = {r.run: r for r in summaries.paper_runs()}
    for name, run in by_run.items():
        scaled = pa.on_mean_scale(run)
        carries = run.group == "S6" and run.model == "T"
        for key, value in run.metrics.items():
            expected = value / 8 if carries and "loss" in key else value
            assert scaled.metrics[key] == pytest.approx(expected, rel=1e-15), (name, key)
        assert pa.paper_loss_scale(run, "test_loss_restricted_loss_ratio") == 1.0
    assert pa.paper_loss_scale(by_run["S6_T_seed1"], "test_loss") == 8.0
    assert pa.paper_loss_scale(by_run["S6_MLP_seed1"], "test_loss") == 1.0
    # On the mean scale, S6_T_seed1's excluded loss (531.3 as released) is 66.4, as measured on its weights.
    assert pa.on_mean_scale(by_run["S6_T_seed1"]).metrics["total_hidden_excluded_loss"] == pytest.approx(66.4, abs=0.05)


# --------------------------------------------------------------------------------------------
# Loading every released config as it is
# --------------------------------------------------------------------------------------------
def _paper_cfg(row: dict) -> dict:
    """The paper's cfg.json of one ``paper_runs.csv`` row, in the paper's layout (key order of its
    S5_MLP_seed1/cfg.json)."""
    return {"lr": 0.001, "num_epochs": int(row["num_epochs"]), "weight_decay": 1, "betas": [0.9, 0.98],
            "layers": {"embed_dim": int(row["embed_dim"]), "hidden_dim": int(row["hidden_dim"])},
            "model": row["model"], "group": row["group"], "group_parameter": int(row["group_parameter"]),
            "frac_train": float(row["frac_train"]), "seed": int(row["seed"])}


def _paper_rows(reference_dir: Path) -> list[dict]:
    return list(csv.DictReader(open(reference_dir / "paper_runs.csv")))


def test_every_released_config_loads_as_it_is(reference_dir, tmp_path):
    rows = _paper_rows(reference_dir)
    families = {(r["group"], r["model"], "hidden_dim" in r["run"]) for r in rows}
    assert len(rows) == 132 and len(families) == 9  # C/D/S/A x MLP/T, plus the S5 width sweep
    for row in rows:
        run_dir = tmp_path / row["run"]
        run_dir.mkdir()
        (run_dir / "cfg.json").write_text(json.dumps(_paper_cfg(row)))
        cfg = load_config(run_dir)
        assert cfg.run_name == re.sub(r"_hidden_dim_\d+", "", row["run"])  # the variant is the run name's
        assert (cfg.frac_train, cfg.num_epochs, cfg.embed_dim, cfg.hidden_dim, cfg.seed) == (
            float(row["frac_train"]), int(row["num_epochs"]), int(row["embed_dim"]), int(row["hidden_dim"]),
            int(row["seed"])), row["run"]
        assert cfg.to_dict()["group"] == row["group"] and cfg.to_dict()["model"] == row["model"]


def test_s6_stale_epochs_key_is_accepted_with_a_warning(reference_dir, tmp_path):
    """The paper's S6_MLP_seed2/cfg.json has "epochs": 50000 beside "num_epochs": 100000."""
    row = next(r for r in _paper_rows(reference_dir) if r["run"] == "S6_MLP_seed2")
    assert int(row["num_epochs"]) == 100_000
    cfg_dict = dict(_paper_cfg(row), epochs=50_000)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg_dict))
    with pytest.warns(UserWarning, match="epochs"):
        cfg = load_config(tmp_path)
    assert cfg.num_epochs == 100_000 and "epochs" in PAPER_EXTRA_KEYS
    (tmp_path / "cfg.json").write_text(json.dumps(dict(cfg_dict, epochz=1)))
    with pytest.raises(ValueError, match="epochz"), pytest.warns(UserWarning, match="epochs"):
        load_config(tmp_path)


@pytest.mark.parametrize("run", ["C113_T_seed2", "D61_MLP_seed3", "D59_T_seed1", "S6_MLP_seed2", "S6_T_seed1",
                                 "A5_MLP_seed4", "A5_T_seed2", "S5_T_seed3", "S5_MLP_hidden_dim_48_seed1"])
def test_import_paper_takes_every_family(reference_dir, tmp_path, run):
    """``rep-theory import-paper`` on a paper-style run directory of each family (weights of the
    right shapes, the paper's cfg.json as released, S6_MLP_seed2 with its stale key)."""
    from rep_theory.training.models import make_model
    row = next(r for r in _paper_rows(reference_dir) if r["run"] == run)
    src = tmp_path / "paper" / run
    src.mkdir(parents=True)
    cfg_dict = _paper_cfg(row) | ({"epochs": 50_000} if run == "S6_MLP_seed2" else {})
    (src / "cfg.json").write_text(json.dumps(cfg_dict))
    n = get_group(group_spec(row["group"], int(row["group_parameter"]))).order
    model = make_model(row["model"], n, embed_dim=int(row["embed_dim"]), hidden_dim=int(row["hidden_dim"]))
    torch.save(model.state_dict(), src / "model.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the stale key's warning (tested above)
        assert main(["import-paper", str(src), str(tmp_path / run)]) == 0
    written = json.loads((tmp_path / run / "cfg.json").read_text())
    for key, value in _paper_cfg(row).items():
        assert written[key] == value, (run, key)
    assert written["paper_order"] is True and "epochs" not in written


# --------------------------------------------------------------------------------------------
# The paper's learning-order rule
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("run", ["D59_MLP_seed1", "S5_MLP_seed1"])
def test_paper_rule_reproduces_the_papers_learning_order(reference_dir, run):
    """The paper's ``key_reps_in_order.txt`` from its own ``metrics.csv`` and ``key_reps.txt``."""
    folder = reference_dir / "paper_models" / run
    history = read_metrics_csv(folder / "metrics.csv")
    keys = read_lines(folder / "key_reps.txt")
    expected = read_lines(folder / "key_reps_in_order.txt")
    assert list(expected) != list(keys), "the learning order is not the irrep order, so the test can fail"
    assert learning_order(history, keys, rule="paper") == list(expected)


def _history(*rows):
    return [{f"logit_{k}_rep_trace_similarity": v for k, v in row.items()} | {"epoch": float(e)}
            for e, row in enumerate(rows)]


def test_rules_differ_where_the_paper_adds_one_irrep_per_checkpoint():
    history = _history({"a": 0.0, "b": 0.0, "c": 0.0},
                       {"a": 0.06, "b": 0.3, "c": 0.0},   # a and b cross together; b is larger
                       {"a": 0.1, "b": 0.3, "c": 0.2},    # c crosses
                       {"a": 0.1, "b": 0.3, "c": 0.2})
    keys = ["a", "b", "c"]
    assert learning_order(history, keys, rule="package") == ["b", "a", "c"]
    assert learning_order(history, keys, rule="paper") == ["a", "b", "c"]  # b one checkpoint late, c after it
    # No key irreps: the paper falls back to the final similarity > 0.05, in the history's order.
    assert learning_order(history, [], rule="paper") == ["a", "b", "c"]
    assert learning_order(history, [], rule="package") == []
    with pytest.raises(ValueError, match="'papers'"):
        learning_order(history, keys, rule="papers")


def _force_simultaneous_crossing(run: Path, keys) -> None:
    """Rewrite metrics.csv so that every key irrep crosses 0.05 at the last two checkpoints, the
    later keys with larger similarities: there the two rules disagree."""
    with open(run / "metrics.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        header, rows = reader.fieldnames, list(reader)
    for k, row in enumerate(rows):
        for j, name in enumerate(keys):
            row[f"logit_{name}_rep_trace_similarity"] = str(0.1 * (j + 1) if k >= len(rows) - 2 else 0.0)
    with open(run / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def test_eval_order_rule_is_recorded_and_used(tmp_path):
    run = tmp_path / "C5_MLP_seed1"
    assert main(["new", str(run), "--group", "C5", "--model", "MLP", "--seed", "1", "--epochs", "30",
                 "--frac-train", "0.8", "--lr", "0.01", "--embed-dim", "16", "--hidden-dim", "16"]) == 0
    assert main(["train", str(run), "--device", "cpu", "--no-progress"]) == 0
    eval_args = ["eval", str(run), "--device", "cpu", "--no-figures", "--no-progress"]
    assert main(eval_args) == 0
    assert (run / "order_rule.txt").read_text().split() == ["package"]
    keys = list(read_lines(run / "key_reps.txt"))
    assert len(keys) >= 2, f"the test needs two key irreps to order, got {keys}"
    _force_simultaneous_crossing(run, keys)
    assert main(eval_args + ["--order-rule", "paper"]) == 0  # metrics.csv is complete: only reordered
    assert (run / "order_rule.txt").read_text().split() == ["paper"]
    assert list(read_lines(run / "key_reps_in_order.txt")) == keys  # one per checkpoint, in key order
    assert pa.order_rule(summaries.load_run(run)) == "paper"
    assert main(eval_args + ["--order-rule", "package"]) == 0
    assert list(read_lines(run / "key_reps_in_order.txt")) == keys[::-1]  # all cross at once, by similarity
    assert (run / "order_rule.txt").read_text().split() == ["package"]
    with pytest.raises(SystemExit):
        main(["eval", str(run), "--order-rule", "mine"])


# --------------------------------------------------------------------------------------------
# The comparison tables flag every affected cell
# --------------------------------------------------------------------------------------------
def _paper_seeds_1_4():
    return [r for r in summaries.paper_runs() if r.seed <= 4 and not r.variant]


def _notes(table, group, seed, source):
    row = next(r for r in table.records() if r["Group"] == tables.group_label(group)
               and r["Seed"] == str(seed) and r["Source"] == source)
    return row


def test_comparison_marks_artifacts_and_rescales_chunked_losses():
    paper = _paper_seeds_1_4()
    ours = [dataclasses.replace(r, num_epochs=250_000) if (r.group, r.model) == ("S6", "MLP") else r
            for r in paper]
    t = tables.comparison_table(ours, paper, model="T")
    s6 = _notes(t, "S6", 1, "paper")
    assert "s6-chunked-loss (paper / 8): Test Loss, Exc. Loss, Res. Loss" in s6["Notes"]
    assert "s6-six-irreps: Logit FVE, Key Irreps" in s6["Notes"]
    assert float(s6["Exc. Loss"]) == pytest.approx(531.31 / 8, abs=0.01)       # the mean scale
    assert float(_notes(t, "S6", 1, "ours")["Exc. Loss"]) == pytest.approx(531.31, abs=0.01)
    a5 = _notes(t, "A5", 4, "paper")["Notes"]          # key irreps: standard only
    assert a5 == "a5-3d-not-irreps: Logit FVE, Key Irreps"
    assert "Exc. Loss" in _notes(t, "A5", 1, "paper")["Notes"]  # its key irreps include a5_3d_a
    assert "cyclic-hidden-basis: Exc. Loss, Res. Loss, MLP FVE" in _notes(t, "C113", 1, "paper")["Notes"]
    assert _notes(t, "S5", 1, "paper")["Notes"] == "" and _notes(t, "D59", 2, "paper")["Notes"] == ""

    m = tables.comparison_table(ours, paper, model="MLP")
    assert "config-differs (num_epochs 250000 vs paper 100000): seed 2" in _notes(m, "S6", 2, "ours")["Notes"]
    assert "config-differs" not in _notes(m, "S6", 1, "ours")["Notes"]
    assert "s6-chunked-loss" not in _notes(m, "S6", 1, "paper")["Notes"]  # the MLP summaries are means
    matched = tables.comparison_table(ours, paper, model="MLP", match_config=True)
    assert {r["Seed"] for r in matched.records() if r["Group"] == "$S_{6}$"} == {"1"}

    avg = {(r["Group"], r["Source"]): r for r in tables.comparison_table(ours, paper, model="T", average=True).records()}
    mean_test = sum(r.metrics["test_loss"] for r in paper if (r.group, r.model) == ("S6", "T")) / 4
    assert float(avg[("$S_{6}$", "paper")]["TTest Loss"]) == pytest.approx(mean_test / 8, rel=5e-3)
    assert "s6-chunked-loss" in avg[("$S_{6}$", "paper")]["Notes"]


def test_write_tables_explains_the_notes(tmp_path, reference_dir):
    """A batch holding the paper's S5_MLP_seed1 and C113_MLP_seed1 as evaluated runs: tables.md
    explains every id its comparison Notes use, and our rows say which order rule they used."""
    import shutil
    for run in ("S5_MLP_seed1", "C113_MLP_seed1"):
        shutil.copytree(reference_dir / "paper_models" / run, tmp_path / "batch" / run,
                        ignore=shutil.ignore_patterns("model.pt", "metrics.csv"))
    (tmp_path / "batch" / "S5_MLP_seed1" / "order_rule.txt").write_text("paper\n")
    written = tables.write_tables(tmp_path / "batch")
    rows = list(csv.DictReader(open(written["compare_mlp_all.csv"])))
    notes = {(r["Group"], r["Source"]): r["Notes"] for r in rows}
    assert notes[("$S_{5}$", "ours")] == ""  # ordered by the paper's rule
    assert notes[("$C_{113}$", "ours")] == "learning-order-rule (package): Key Irreps"
    text = (tmp_path / "batch" / "tables" / "tables.md").read_text()
    assert "## Notes on the comparisons with the paper" in text
    for artifact in ("cyclic-hidden-basis", "learning-order-rule"):
        assert f"- `{artifact}`: {pa.ARTIFACTS[artifact].title}" in text
    assert "`a5-3d-not-irreps`" not in text  # only the ids the tables use
