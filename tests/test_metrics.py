"""Metrics of one checkpoint: the pure functions against mathematics, and the fast structured
computation against a brute-force one (explicit pair bases and trace cubes, no shortcuts).

``naive_metrics`` below is the independent reference (also timed by ``benchmarks/bench_metrics.py``):
it follows the paper's procedure literally, materialising the ``[n^2, r]`` bases ``Q^a``, ``Q^b``,
``Q^ab`` (orthonormalised by scipy, not by the package) and the ``[n^2, n]`` trace tensor
``chi(a b c^-1)`` of every irrep.
"""

from __future__ import annotations

import copy
import math

import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

import rep_theory.analysis.metrics as M
from rep_theory.training.data import train_test_split
from rep_theory.algebra.groups import get_group
from rep_theory.analysis.metrics import (IrrepBases, aggregate_pairs, checkpoint_metrics, fve, learning_order,
                                logit_similarity, metric_names, orthonormal_basis, product_kernel,
                                project, select_key_irreps)
from rep_theory.training.models import make_model


# --------------------------------------------------------------------------------------------------
# The brute-force reference
# --------------------------------------------------------------------------------------------------
def _orth(matrix: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(scipy.linalg.orth(matrix.numpy(), rcond=1e-8))


def naive_setup(group) -> dict[str, dict[str, torch.Tensor]]:
    """Per irrep, what the paper's code built once per run: the bases ``Q [n, r]`` and the explicit
    pair bases ``Qa, Qb, Qab [n^2, r]``, and the trace tensor ``cube [n^2, n]`` (``n^3`` entries)."""
    G = get_group(group) if isinstance(group, str) else group
    n = G.order
    a, b = torch.arange(n * n) // n, torch.arange(n * n) % n
    labels = G.table.reshape(-1)
    setup = {}
    for rho in G.irreps():
        mats = rho.matrices.reshape(n, -1)
        setup[rho.name] = {
            "Q": _orth(mats), "Qa": _orth(mats[a]), "Qb": _orth(mats[b]), "Qab": _orth(mats[labels]),
            "cube": None if rho.name == "trivial" else rho.character[G.table[labels][:, G.inverses]]}
    return setup


def naive_metrics(model, group, train_pairs, key_irreps, *, recompute: bool = True,
                  setup: dict | None = None) -> dict[str, float]:
    """Every metric by brute force: explicit ``[n^2, r]`` pair bases and ``[n^2, n]`` trace tensors.

    ``recompute=True`` recomputes the hidden layer and logits for every metric of every irrep, as the
    paper's code did.  ``setup``: :func:`naive_setup` of the group (built here when not given).
    The weight products, and the MLPs' hidden layer and logits, come from a float64 copy of the
    model (the metrics' arithmetic, ``METRICS_REVISION`` 2); the transformer's hidden layer and
    logits from its own float32 forward.
    """
    weights64 = copy.deepcopy(model).double()
    if type(model).__name__ != "Transformer":
        model = weights64
    G = get_group(group) if isinstance(group, str) else group
    n = G.order
    labels = G.table.reshape(-1)
    setup = naive_setup(G) if setup is None else setup
    train = torch.zeros(n * n, dtype=torch.bool)
    train[train_pairs] = True
    cache = {}

    def hidden():
        if recompute or "h" not in cache:
            cache["h"] = model.hidden_all_pairs().double()
        return cache["h"]

    def logits():
        if recompute or "l" not in cache:
            cache["l"] = model.logits_all_pairs().double()
        return cache["l"]

    with torch.no_grad():
        U = weights64.unembedding()
        E_left, E_right = weights64.embedding_left(), weights64.embedding_right()

        def frac(x, Q):
            return float((Q.T @ x).pow(2).sum() / x.pow(2).sum())

        out = {}
        L0 = logits()
        out["train_loss"] = float(F.cross_entropy(L0[train], labels[train]))
        out["test_loss"] = float(F.cross_entropy(L0[~train], labels[~train]))
        out["train_acc"] = float((L0[train].argmax(-1) == labels[train]).double().mean())
        out["test_acc"] = float((L0[~train].argmax(-1) == labels[~train]).double().mean())
        out["all_loss"] = float(F.cross_entropy(L0, labels))
        sims, comps, pair_bases = {}, {}, {}
        for rho in G.irreps():
            name = rho.name
            bases = setup[name]
            if name != "trivial":
                cube = bases["cube"]                                       # [pair, n]: chi(a b c^-1)
                L = logits()
                Lc = L - L.mean(-1, keepdim=True)
                sim = float(F.cosine_similarity(Lc.reshape(-1), cube.reshape(-1), dim=0))
                comp = sim * Lc.norm() * cube / cube.norm()
                sims[name], comps[name] = sim, comp
                out[f"logit_{name}_rep_trace_similarity"] = sim
                out[f"logit_excluded_loss_{name}_rep"] = float(F.cross_entropy((Lc - comp)[train], labels[train]))
                out[f"logit_restricted_loss_{name}_rep"] = float(F.cross_entropy(comp, labels))
            Q = bases["Q"]
            out[f"percent_x_embed_{name}_rep"] = frac(E_left, Q)
            out[f"percent_y_embed_{name}_rep"] = frac(E_right, Q)
            out[f"percent_unembed_{name}_rep"] = frac(U, Q)
            Qa, Qb, Qab = bases["Qa"], bases["Qb"], bases["Qab"]
            pair_bases[name] = Qab
            parts = []
            for part, basis in (("x", Qa), ("y", Qb), ("xy", Qab)):
                H = hidden()
                Hc = H - H.mean(0, keepdim=True)
                parts.append(frac(Hc, basis))
                out[f"percent_hidden_{part}_{name}_rep"] = parts[-1]
            out[f"total_percent_hidden_{name}_rep"] = sum(parts)
            H = hidden()
            proj = Qab @ (Qab.T @ H)
            out[f"hidden_excluded_loss_{name}_rep"] = float(F.cross_entropy(((H - proj) @ U.T)[train], labels[train]))
            H = hidden()
            proj = Qab @ (Qab.T @ H)
            out[f"hidden_restricted_loss_{name}_rep"] = float(F.cross_entropy(proj @ U.T, labels))
        out["percent_logits_explained"] = sum(s ** 2 for s in sims.values())
        L = logits()
        Lc = L - L.mean(-1, keepdim=True)
        comp = sum((comps[k] for k in key_irreps), torch.zeros_like(Lc))
        out["total_logit_excluded_loss"] = float(F.cross_entropy((Lc - comp)[train], labels[train]))
        out["total_logit_restricted_loss"] = float(F.cross_entropy(comp, labels))
        H = hidden()
        proj = sum((pair_bases[k] @ (pair_bases[k].T @ H) for k in key_irreps), torch.zeros_like(H))
        out["total_hidden_excluded_loss"] = float(F.cross_entropy(((H - proj) @ U.T)[train], labels[train]))
        out["total_hidden_restricted_loss"] = float(F.cross_entropy(proj @ U.T, labels))
        out["test_loss_restricted_loss_ratio"] = out["test_loss"] / out["total_hidden_restricted_loss"]
        out["sum_of_squared_weights"] = float(sum(p.double().pow(2).sum() for p in model.parameters()))
        out["percent_hidden_explained"] = sum(out[f"total_percent_hidden_{k}_rep"] for k in key_irreps)
        out["percent_hidden_xy_explained"] = sum(out[f"percent_hidden_xy_{k}_rep"] for k in key_irreps)
        for part in ("x_embed", "y_embed", "unembed"):
            out[f"percent_{part}_explained"] = sum(out[f"percent_{part}_{k}_rep"] for k in key_irreps)
    return out


def assert_metrics_close(fast: dict, slow: dict, *, rtol=1e-8, atol=1e-10, keys=None):
    keys = list(slow) if keys is None else keys
    bad = [(k, fast[k], slow[k]) for k in keys if not math.isclose(fast[k], slow[k], rel_tol=rtol, abs_tol=atol)]
    assert not bad, f"{len(bad)} metrics differ (key, fast, brute force): {bad[:8]}"


def _random_model(kind: str, n: int, seed: int):
    if kind == "OneLayerMLP":
        return make_model(kind, n, seed=seed, embed_dim=16, hidden_dim=24)
    if kind == "BilinearNet":
        return make_model(kind, n, seed=seed, embed_dim=12)
    return make_model(kind, n, seed=seed)


# --------------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["C7", "C6", "D5", "D4", "S4", "Q8", "A4"])
def test_irrep_bases_are_an_orthonormal_basis_of_functions_on_the_group(spec):
    """Matrix-coefficient spaces of distinct irreps are orthogonal and together span R^n (Peter-Weyl),
    with rank d^2 / {1, 2, 4} by Frobenius-Schur type."""
    G = get_group(spec)
    B = IrrepBases.for_group(G)
    ranks = {"real": 1, "complex": 2, "quaternionic": 4}
    for rho in G.irreps():
        assert B.bases[rho.name].shape == (G.order, rho.dim ** 2 // ranks[rho.kind]), rho
    Q = torch.cat([B.bases[name] for name in B.names], dim=1)
    assert Q.shape == (G.order, G.order)
    torch.testing.assert_close(Q.T @ Q, torch.eye(G.order, dtype=torch.float64), atol=1e-10, rtol=0)


def test_orthonormal_basis_numerical_rank():
    x = torch.randn(9, 2, dtype=torch.float64)
    m = torch.cat([x, x @ torch.randn(2, 3, dtype=torch.float64)], dim=1)  # rank 2, five columns
    Q = orthonormal_basis(m)
    assert Q.shape == (9, 2)
    torch.testing.assert_close(project(m, Q), m)
    assert orthonormal_basis(torch.zeros(4, 3)).shape == (4, 0)
    with pytest.raises(ValueError, match="2-d"):
        orthonormal_basis(torch.zeros(2, 2, 2))


def test_project_and_fve():
    g = torch.Generator().manual_seed(0)
    Q = orthonormal_basis(torch.randn(10, 3, generator=g, dtype=torch.float64))
    x = torch.randn(10, 4, generator=g, dtype=torch.float64)
    p = project(x, Q)
    torch.testing.assert_close(project(p, Q), p)                       # idempotent
    torch.testing.assert_close(Q.T @ (x - p), torch.zeros(3, 4, dtype=torch.float64), atol=1e-12, rtol=0)
    f = float(fve(x, Q))
    assert 0 < f < 1
    assert f == pytest.approx(float(p.pow(2).sum() / x.pow(2).sum()))
    assert float(fve(Q, Q)) == pytest.approx(1.0)
    assert float(fve(x, Q, total_sq=2 * x.pow(2).sum())) == pytest.approx(f / 2)


def test_pair_aggregates_equal_explicit_pair_bases():
    """(Q^ab)^T X = Q^T X_by_product / sqrt(n): the identity all hidden-layer metrics rest on."""
    G = get_group("S3")
    n = G.order
    B = IrrepBases.for_group(G)
    X = torch.randn(n * n, 5, dtype=torch.float64)
    by_product = aggregate_pairs(X, B.product, n)
    torch.testing.assert_close(B.sum_by_product(X), by_product)
    torch.testing.assert_close(B.sum_by_product(X[2 * n:5 * n], 2), aggregate_pairs(X[2 * n:5 * n], B.product[2 * n:5 * n], n))
    for rho in G.irreps():
        Q = B.bases[rho.name]
        Qab = Q[B.product] / math.sqrt(n)
        torch.testing.assert_close(Qab.T @ Qab, torch.eye(Q.shape[1], dtype=torch.float64))
        torch.testing.assert_close(Qab.T @ X, Q.T @ by_product / math.sqrt(n))
        torch.testing.assert_close(Qab @ (Qab.T @ X), project(by_product, Q)[B.product] / n)


def test_logit_similarity_matches_trace_cube():
    G = get_group("D4")
    n = G.order
    B = IrrepBases.for_group(G)
    L = torch.randn(n * n, n, dtype=torch.float64)
    Lc = L - L.mean(-1, keepdim=True)
    for rho in G.irreps()[1:]:
        cube = rho.character[G.table[B.product][:, G.inverses]]
        expected = F.cosine_similarity(Lc.reshape(-1), cube.reshape(-1), dim=0)
        K = product_kernel(rho.character, B.product_index)
        got = logit_similarity(aggregate_pairs(Lc, B.product, n), K, logits_sq=Lc.pow(2).sum())
        torch.testing.assert_close(got, expected)
        # the trace tensor of the irrep itself has similarity 1
        cube_c = cube - cube.mean(-1, keepdim=True)
        assert float(logit_similarity(aggregate_pairs(cube_c, B.product, n), K,
                                      logits_sq=cube_c.pow(2).sum())) == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------------
# One checkpoint: fast == brute force
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, kind, keys", [
    ("C6", "OneLayerMLP", ["sign", "freq_2"]),
    ("D4", "OneLayerMLP", ["freq_1"]),
    ("Q8", "BilinearNet", ["4d_a", "1d_b"]),
    ("S3", "Transformer", ["standard"]),
])
def test_checkpoint_metrics_match_brute_force(spec, kind, keys):
    G = get_group(spec)
    model = _random_model(kind, G.order, seed=3)
    train, _ = train_test_split(G.order, 0.5, seed=2)
    fast = checkpoint_metrics(model, G, train_pairs=train, key_irreps=keys, epoch=7)
    slow = naive_metrics(model, G, train, keys, recompute=False)
    assert list(fast) == metric_names([r.name for r in G.irreps()])
    assert fast["epoch"] == 7.0
    assert_metrics_close(fast, slow)
    # the FVEs of all irreps of a weight matrix add up to one
    for part in ("x_embed", "y_embed", "unembed"):
        assert sum(fast[f"percent_{part}_{r.name}_rep"] for r in G.irreps()) == pytest.approx(1.0)


def test_chunking_and_recomputation_do_not_change_results(monkeypatch):
    G = get_group("D5")
    model = _random_model("OneLayerMLP", G.order, seed=1)
    train, _ = train_test_split(G.order, 0.4, seed=1)
    ref = checkpoint_metrics(model, G, train_pairs=train)
    monkeypatch.setattr(M, "_STORE_BYTES", 0)          # pass 2 recomputes logits chunk by chunk
    monkeypatch.setattr(M, "_READOUT_BYTES", 1)        # one irrep table per pass over the training pairs
    got = checkpoint_metrics(model, G, train_pairs=train, chunk_size=7)
    # the model's float32 logits round differently in other chunk shapes: agree to float32 accuracy
    assert_metrics_close(got, ref, rtol=1e-7, atol=1e-10)


def test_default_key_irreps_are_the_models_own():
    G = get_group("C5")
    model = _random_model("OneLayerMLP", G.order, seed=5)
    train, _ = train_test_split(G.order, 0.4, seed=1)
    out = checkpoint_metrics(model, G, train_pairs=train, key_threshold=-1.0)   # every non-trivial irrep
    names = [r.name for r in G.irreps()][1:]
    assert out["percent_x_embed_explained"] == pytest.approx(sum(out[f"percent_x_embed_{k}_rep"] for k in names))
    with pytest.raises(ValueError, match="not non-trivial irreps"):
        checkpoint_metrics(model, G, train_pairs=train, key_irreps=["trivial"])


def test_key_irreps_and_learning_order():
    sims = {"sign": 0.3, "freq_1": 0.004, "freq_2": 0.0051, "freq_3": -0.5}
    assert select_key_irreps(sims) == ["sign", "freq_2"]
    assert select_key_irreps(sims, threshold=0.1) == ["sign"]
    key = "logit_{}_rep_trace_similarity".format
    history = [
        {key("a"): 0.0, key("b"): 0.0, key("c"): 0.0, key("d"): 0.0},
        {key("a"): 0.01, key("b"): 0.06, key("c"): 0.0, key("d"): 0.0},
        {key("a"): 0.07, key("b"): 0.2, key("c"): 0.09, key("d"): 0.01},
        {key("a"): 0.04, key("b"): 0.2, key("c"): 0.3, key("d"): 0.02},
    ]
    # b first; a and c cross together (c larger there); d never crosses and comes last
    assert learning_order(history, ["a", "b", "c", "d"]) == ["b", "c", "a", "d"]
    assert learning_order(history, ["d", "a"], threshold=0.005) == ["a", "d"]
    assert learning_order(history, ["d", "a"], threshold=0.5) == ["d", "a"]
    assert learning_order([], ["x", "y"]) == ["x", "y"]


def test_bases_are_memoised_per_group_and_device():
    assert IrrepBases.for_group("C9") is IrrepBases.for_group(get_group("C9"), "cpu")
    assert IrrepBases.for_group("C9") is not IrrepBases.for_group("C10")


def test_wrong_model_shape_is_an_error():
    G = get_group("C5")
    model = _random_model("OneLayerMLP", 6, seed=0)     # a model for another group order
    with pytest.raises(ValueError, match="n\\^2 = 25"):
        checkpoint_metrics(model, G, train_pairs=torch.arange(10))


# --------------------------------------------------------------------------------------------------
# The metrics' arithmetic (METRICS_REVISION 2): float64 from the weights for the MLPs
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["OneLayerMLP", "WuMLP", "BilinearNet", "Transformer"])
def test_hidden_all_pairs_float64_is_the_float64_forward(kind):
    """The MLPs' float64 hidden layer is their own forward run on float64 weights; the float32 forward
    differs from it by float32 rounding only; the transformer has no such form."""
    model = _random_model(kind, 6, seed=5)
    H = model.hidden_all_pairs_float64()
    if kind == "Transformer":
        assert H is None
        return
    forward64 = copy.deepcopy(model).double().hidden_all_pairs()
    assert H.dtype == torch.float64 and H.shape == forward64.shape
    torch.testing.assert_close(H, forward64, rtol=1e-12, atol=1e-12)
    gap = (model.hidden_all_pairs().double() - H).abs().max().item()
    assert 0 < gap < 1e-5 if kind == "OneLayerMLP" else gap < 1e-5   # the embed products round in float32


@pytest.mark.parametrize("kind", ["OneLayerMLP", "WuMLP", "BilinearNet"])
def test_mlp_metrics_do_not_depend_on_the_weights_dtype(kind):
    """An MLP checkpoint's metrics are the float64 function of its weights: the float32 model and
    its float64 copy give the same numbers to 1e-12 (revision 1's float32 arithmetic differed here by
    up to 1.1e-6, 3.8e-6 and 2.9e-7 relative)."""
    G = get_group("D4")
    model = _random_model(kind, G.order, seed=4)
    train, _ = train_test_split(G.order, 0.5, seed=1)
    m32 = checkpoint_metrics(model, G, train_pairs=train, key_irreps=["freq_1"])
    m64 = checkpoint_metrics(copy.deepcopy(model).double(), G, train_pairs=train, key_irreps=["freq_1"])
    assert_metrics_close(m32, m64, rtol=1e-12, atol=1e-14)
