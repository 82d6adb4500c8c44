"""The paper's trained MLPs are 100% accurate on the package's tables once rows are put in package order.

This pins down the package's element order and composition convention against the paper's own
weights: a wrong permutation or a reversed product (a*b vs b*a) would drop the accuracy to chance.
"""

import json

import pytest
import torch

from rep_theory.algebra.groups import get_group
from rep_theory.algebra.paper_order import PAPER_ORDERED_GROUPS, package_to_paper, paper_to_package


def _mlp_predictions(state: dict, n: int) -> torch.Tensor:
    """``[n, n]`` argmax of relu(cat(W_x[a], W_y[b]) @ W) @ W_U over all pairs (plain torch, float64)."""
    W_x, W_y, W, W_U = (state[k].double() for k in ("W_x", "W_y", "W", "W_U"))
    a, b = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    x = torch.cat([W_x[a.reshape(-1)], W_y[b.reshape(-1)]], dim=1)      # [pair, 2 * embed]
    logits = torch.relu(x @ W) @ W_U                                      # [pair, n]
    return logits.argmax(dim=1).reshape(n, n)


def _load(reference_dir, run):
    folder = reference_dir / "paper_models" / run
    return torch.load(folder / "model.pt", map_location="cpu"), json.loads((folder / "cfg.json").read_text())


def test_s5_mlp_is_exact_in_package_order(reference_dir):
    state, cfg = _load(reference_dir, "S5_MLP_seed1")
    assert (cfg["group"], cfg["group_parameter"]) == ("SymmetricGroup", 5)
    G = get_group("S5")
    assert tuple(state["W_x"].shape) == (120, 256) and tuple(state["W"].shape) == (512, 128)
    order = package_to_paper("S5")
    reordered = dict(state, W_x=state["W_x"][order], W_y=state["W_y"][order], W_U=state["W_U"][:, order])
    pred = _mlp_predictions(reordered, G.order)
    assert (pred == G.table).float().mean().item() == 1.0
    # without the reordering, or with the product reversed, it is not
    assert (_mlp_predictions(state, G.order) == G.table).float().mean().item() < 0.1
    assert (pred == G.table.T).float().mean().item() < 0.5


def test_d59_mlp_needs_no_reordering(reference_dir):
    state, cfg = _load(reference_dir, "D59_MLP_seed1")
    assert (cfg["group"], cfg["group_parameter"]) == ("DihedralGroup", 59)
    G = get_group("D59")
    pred = _mlp_predictions(state, G.order)
    assert (pred == G.table).float().mean().item() == 1.0
    assert torch.equal(package_to_paper("D59"), torch.arange(G.order))


@pytest.mark.parametrize("spec", PAPER_ORDERED_GROUPS)
def test_paper_order_is_a_permutation_and_its_inverse(spec):
    G = get_group(spec)
    fwd, back = paper_to_package(spec), package_to_paper(spec)
    assert sorted(fwd.tolist()) == list(range(G.order))
    assert torch.equal(fwd[back], torch.arange(G.order)) and torch.equal(back[fwd], torch.arange(G.order))
