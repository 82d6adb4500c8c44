"""The pair dataset and the paper's split, checked against the paper's trained runs."""

import json

import pytest
import torch

from rep_theory.training.data import (all_pairs, make_split, n_train_pairs, pair_labels, paper_train_test_split,
                             split_permutation, train_test_split)
from rep_theory.algebra.groups import get_group
from rep_theory.training.models import make_model
from rep_theory.algebra.paper_order import package_to_paper, paper_to_package


def _paper_split_loss(model, split):
    """float64 cross-entropy on the train and test pairs, as the paper computed it."""
    with torch.no_grad():
        logits = model.logits_all_pairs()
    log_probs = logits.to(torch.float64).log_softmax(-1).gather(1, split.labels[:, None])[:, 0]
    return -log_probs[split.train].mean().item(), -log_probs[split.test].mean().item()


def test_all_pairs_row_major_and_labels():
    a, b = all_pairs(7)
    assert a.dtype == torch.long and a.shape == (49,)
    p = torch.arange(49)
    assert torch.equal(a, p // 7) and torch.equal(b, p % 7)
    G = get_group("D4")
    a, b = all_pairs(G.order)
    assert torch.equal(pair_labels(G), G.table[a, b])


def test_split_permutation_is_the_papers_and_leaves_global_rng_alone():
    for n, seed in [(113, 1), (120, 4), (5, 0)]:
        torch.manual_seed(seed)
        expected = torch.randperm(n * n)
        torch.manual_seed(12345)
        before = torch.get_rng_state()
        assert torch.equal(split_permutation(n, seed), expected)
        assert torch.equal(torch.get_rng_state(), before)


def test_train_test_split_partition():
    n, frac = 13, 0.3
    train, test = train_test_split(n, frac, seed=3)
    assert len(train) == n_train_pairs(n, frac) == int(0.3 * 169)
    assert len(train) + len(test) == n * n
    assert torch.equal(torch.sort(torch.cat([train, test])).values, torch.arange(n * n))
    assert torch.equal(torch.cat([train, test]), split_permutation(n, 3))
    with pytest.raises(ValueError, match="frac_train"):
        train_test_split(n, 1.0, seed=3)


def test_element_perm_maps_paper_pairs():
    n = 6
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    train, test = train_test_split(n, 0.5, seed=2, element_perm=perm)
    paper_train, paper_test = train_test_split(n, 0.5, seed=2)
    for mapped, paper in ((train, paper_train), (test, paper_test)):
        expected = [int(perm[p // n]) * n + int(perm[p % n]) for p in paper.tolist()]
        assert mapped.tolist() == expected
    with pytest.raises(ValueError, match="permutation"):
        train_test_split(n, 0.5, seed=2, element_perm=torch.tensor([0, 0, 1, 2, 3, 4]))


def test_make_split_fields():
    s = make_split("C7", 0.5, seed=1)
    assert torch.equal(s.a_train * 7 + s.b_train, s.train)
    assert torch.equal(s.y_train, get_group("C7").table[s.a_train, s.b_train])
    assert torch.equal(s.y_test, get_group("C7").table[s.a_test, s.b_test])


@pytest.mark.parametrize("run, spec", [("C113_MLP_seed1", "C113"), ("D59_MLP_seed1", "D59")])
def test_split_reproduces_paper_losses(reference_dir, run, spec):
    folder = reference_dir / "paper_models" / run
    cfg = json.loads((folder / "cfg.json").read_text())
    summary = json.loads((folder / "summary_metrics.json").read_text())
    n = get_group(spec).order
    model = make_model("OneLayerMLP", n)
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu"))
    train_loss, test_loss = _paper_split_loss(model, make_split(spec, cfg["frac_train"], cfg["seed"]))
    assert train_loss == pytest.approx(summary["train_loss"], rel=1e-6)
    assert test_loss == pytest.approx(summary["test_loss"], rel=1e-6)
    # The split matters: another seed's split gives clearly different losses.
    other_train, _ = _paper_split_loss(model, make_split(spec, cfg["frac_train"], cfg["seed"] + 1))
    assert other_train != pytest.approx(summary["train_loss"], rel=1e-3)


def test_s5_paper_split_through_element_order(reference_dir):
    folder = reference_dir / "paper_models" / "S5_MLP_seed1"
    sd = torch.load(folder / "model.pt", map_location="cpu")
    to_paper = package_to_paper("S5")
    sd = {"W_x": sd["W_x"][to_paper], "W_y": sd["W_y"][to_paper], "W": sd["W"], "W_U": sd["W_U"][:, to_paper]}
    model = make_model("OneLayerMLP", 120)
    model.load_state_dict(sd)
    split = make_split("S5", 0.4, seed=1)  # paper_order=True: the paper's split mapped to package order
    train, test = paper_train_test_split("S5", 0.4, 1)
    assert torch.equal(split.train, train) and torch.equal(split.test, test)
    assert torch.equal(train, train_test_split(120, 0.4, 1, element_perm=paper_to_package("S5"))[0])
    train_loss, test_loss = _paper_split_loss(model, split)
    assert train_loss == pytest.approx(0.0000021038186226191977, rel=1e-6)
    assert test_loss == pytest.approx(0.000031398194903408896, rel=1e-6)
    # Without the element order the same seed gives another split and other losses.
    plain = make_split("S5", 0.4, seed=1, paper_order=False)
    assert _paper_split_loss(model, plain)[0] != pytest.approx(0.0000021038186226191977, rel=1e-2)
