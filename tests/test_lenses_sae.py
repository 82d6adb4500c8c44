"""Sparse dictionaries: an SAE recovers a planted dictionary; determinism; errors."""

from __future__ import annotations

import pytest
import torch

from rep_theory.lenses.planted import planted_sparse_dictionary
from rep_theory.lenses.sae import train_sparse_dict
from rep_theory.lenses.scores import alignment


@pytest.mark.parametrize("variant, extra, forward", [("topk", {"k": 3}, 0.9), ("relu_l1", {"l1": 0.05}, 0.8)])
def test_sae_recovers_a_planted_dictionary(variant, extra, forward, one_thread):
    """Every planted atom is found (> 0.9 both variants); the learnt features point at atoms (> 0.9 for
    TopK; ReLU + L1 with twice as many latents as atoms also learns a few mixtures, hence 0.8)."""
    X, atoms = planted_sparse_dictionary(2000, 16, 20, 3, seed=0)
    sd = train_sparse_dict(X, n_latents=40, variant=variant, steps=600, lr=1e-2, seed=0, **extra)
    z = sd.encode(X)
    live = (z > 0).any(0)
    directions = sd.W_dec[live]
    # learnt features point at planted atoms, and every atom is found
    assert alignment(directions, {f"atom{i}": a[:, None] for i, a in enumerate(atoms)}) > forward
    assert alignment(atoms, {f"f{i}": d[:, None] / d.norm() for i, d in enumerate(directions)}) > 0.9
    assert sd.final_loss < 0.1
    if variant == "topk":
        assert float((z > 0).sum(1).float().mean()) <= 3


def test_sae_training_is_deterministic_and_rejects_bad_variants(one_thread):
    X, _ = planted_sparse_dictionary(200, 8, 10, 2, seed=1)
    a = train_sparse_dict(X, n_latents=16, steps=20, seed=5)
    b = train_sparse_dict(X, n_latents=16, steps=20, seed=5)
    c = train_sparse_dict(X, n_latents=16, steps=20, seed=6)
    assert torch.equal(a.W_dec, b.W_dec) and not torch.equal(a.W_dec, c.W_dec)
    with pytest.raises(ValueError, match="expected 'topk' or 'relu_l1'"):
        train_sparse_dict(X, n_latents=4, variant="gated")
