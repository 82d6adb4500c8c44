"""Planted models: MLPs built by hand to run the GCR algorithm with chosen irreps; the metrics
must single those irreps out.

Construction (exact, for any orthogonal irrep ``rho`` of dim ``d``): one pair of hidden neurons per
group element ``h``, matrix entry ``(i, j)`` and sign ``s = +-1``, with pre-activation

    gate_h(a) + s * (rho(h) rho(b))_ij,    gate_h(a) = M * (<rho(h), rho(a)>_F - d)

``<rho(h), rho(a)>_F = chi(h^-1 a)`` equals ``d`` iff ``rho(a) = rho(h)`` and is at most ``d - delta``
otherwise, so with ``M = 2 / delta`` the gate is 0 when ``rho(a) = rho(h)`` and <= -2 else (entries of
orthogonal matrices lie in [-1, 1]).  By ``relu(z) - relu(-z) = z`` the pair's difference is
``(rho(a) rho(b))_ij = rho(ab)_ij`` when the gate is open and 0 when it is shut; the readout
``alpha * s * rho(c)_ij / |ker rho|`` sums it to the logit ``alpha * chi(a b c^-1)``.  The embeddings
live in the span of ``rho`` (plus a constant for the gate) and the unembedding in the span of ``rho``.
"""

from __future__ import annotations

import math

import pytest
import torch

from rep_theory.training.data import train_test_split
from rep_theory.algebra.groups import get_group
from rep_theory.analysis.metrics import checkpoint_metrics
from rep_theory.training.models import make_model

MARGIN = 12.0
"""``alpha * delta``: the logit margin of the correct answer (loss about ``n * exp(-MARGIN)``)."""


def planted_mlp_state(spec: str, strengths: dict[str, float]) -> dict[str, torch.Tensor]:
    """OneLayerMLP state dict (``embed = hidden = width``) running GCR with each irrep of
    ``strengths``; irrep ``rho``'s logits are ``strength * (MARGIN / delta) * chi_rho(a b c^-1)``."""
    G = get_group(spec)
    n = G.order
    lefts, rights, readouts = [], [], []
    for name, strength in strengths.items():
        R = G.irrep(name).matrices                                          # [n, d, d]
        d = R.shape[1]
        chi = R.diagonal(dim1=1, dim2=2).sum(-1)
        is_identity = torch.isclose(chi, torch.tensor(float(d), dtype=torch.float64))
        delta = float(d - chi[~is_identity].max())
        kernel_size = int(is_identity.sum())
        alpha = strength * MARGIN / delta
        gate = (2.0 / delta) * (torch.einsum("hij,aij->ah", R, R) - d)        # [a, h]
        z = torch.einsum("hik,bkj->bhij", R, R).reshape(n, n, d * d)        # [b, h, ij]
        signs = torch.tensor([1.0, -1.0], dtype=torch.float64)
        lefts.append(gate[:, :, None, None].expand(n, n, d * d, 2).reshape(n, -1))
        rights.append((z[..., None] * signs).reshape(n, -1))
        unembed = R.reshape(n, d * d).T                                      # [ij, c] = rho(c)_ij
        readouts.append((alpha / kernel_size) * (unembed[None, :, None, :] * signs[None, None, :, None])
                        .expand(n, d * d, 2, n).reshape(-1, n))
    left, right, W_U = torch.cat(lefts, 1), torch.cat(rights, 1), torch.cat(readouts, 0)
    width = left.shape[1]
    eye = torch.eye(width, dtype=torch.float64)
    return {"W_x": left.float(), "W_y": right.float(), "W": torch.cat([eye, eye]).float(), "W_U": W_U.float()}


def planted_mlp(spec: str, strengths: dict[str, float]):
    state = planted_mlp_state(spec, strengths)
    width = state["W_U"].shape[0]
    model = make_model("OneLayerMLP", get_group(spec).order, embed_dim=width, hidden_dim=width)
    model.load_state_dict(state)
    return model


@pytest.mark.parametrize("spec, irrep", [("S4", "standard"), ("D7", "freq_2"), ("C11", "freq_3"), ("Q8", "4d_a")])
def test_metrics_single_out_the_planted_irrep(spec, irrep):
    G = get_group(spec)
    n = G.order
    model = planted_mlp(spec, {irrep: 1.0})
    # the construction is what it claims: logits = alpha * chi(a b c^-1)
    with torch.no_grad():
        logits = model.logits_all_pairs().double()
    chi = G.irrep(irrep).character
    cube = chi[G.table[G.table.reshape(-1)][:, G.inverses]]
    ratio = (logits * cube).sum() / cube.pow(2).sum()
    torch.testing.assert_close(logits, ratio * cube, atol=1e-4, rtol=1e-5)

    train, _ = train_test_split(n, 0.5, seed=0)
    out = checkpoint_metrics(model, G, train_pairs=train)
    others = [r.name for r in G.irreps()[1:] if r.name != irrep]
    assert out["train_acc"] == out["test_acc"] == 1.0
    assert 0 < out["all_loss"] < 1e-3
    assert out[f"logit_{irrep}_rep_trace_similarity"] > 0.9999
    for name in others:
        assert abs(out[f"logit_{name}_rep_trace_similarity"]) < 1e-4, name
        # nothing to restrict to: uniform logits
        assert out[f"hidden_restricted_loss_{name}_rep"] == pytest.approx(math.log(n), rel=1e-3), name
    assert out["percent_logits_explained"] == pytest.approx(1.0, abs=1e-3)
    # key irreps: the planted one alone, so the totals are its own
    assert out["percent_unembed_explained"] == out[f"percent_unembed_{irrep}_rep"]
    assert out[f"percent_unembed_{irrep}_rep"] == pytest.approx(1.0, abs=1e-6)
    assert out[f"percent_y_embed_{irrep}_rep"] == pytest.approx(1.0, abs=1e-6)
    assert out[f"percent_x_embed_{irrep}_rep"] + out["percent_x_embed_trivial_rep"] == pytest.approx(1.0, abs=1e-6)
    # restricting to the irrep keeps the model's loss; excluding it leaves chance
    for key in ("total_hidden_restricted_loss", "total_logit_restricted_loss", f"hidden_restricted_loss_{irrep}_rep",
                f"logit_restricted_loss_{irrep}_rep"):
        assert out[key] == pytest.approx(out["all_loss"], rel=2e-2), key
    for key in ("total_hidden_excluded_loss", "total_logit_excluded_loss", f"hidden_excluded_loss_{irrep}_rep",
                f"logit_excluded_loss_{irrep}_rep"):
        assert out[key] == pytest.approx(math.log(n), rel=1e-3), key
    assert out["hidden_excluded_loss_trivial_rep"] < 1e-3


def test_two_planted_irreps_share_the_logits():
    """Two circuits of strengths 1 and 2: similarities 1/sqrt(5) and 2/sqrt(5) (equal character norms)."""
    G = get_group("C9")
    model = planted_mlp("C9", {"freq_1": 1.0, "freq_4": 2.0})
    train, _ = train_test_split(9, 0.5, seed=0)
    out = checkpoint_metrics(model, G, train_pairs=train)
    assert out["logit_freq_1_rep_trace_similarity"] == pytest.approx(1 / math.sqrt(5), abs=1e-5)
    assert out["logit_freq_4_rep_trace_similarity"] == pytest.approx(2 / math.sqrt(5), abs=1e-5)
    assert abs(out["logit_freq_2_rep_trace_similarity"]) < 1e-5
    assert out["total_hidden_restricted_loss"] == pytest.approx(out["all_loss"], rel=2e-2)
    # either circuit alone still gets every answer right, so excluding one is cheap, excluding both is not
    assert out["hidden_excluded_loss_freq_4_rep"] < 0.1 < out["total_hidden_excluded_loss"]
