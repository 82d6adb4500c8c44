"""Gradient routing: masked gradients equal hand-computed ones, plain training is untouched, routed
runs resume exactly, ablation and the measures behave, and the experiment / CLI write their files."""

import csv
import json
import math

import pytest
import torch

from rep_theory.algebra.groups import get_group
from rep_theory.analysis.bases import orthonormal_basis
from rep_theory.analysis.routing import localisation, measure_models, purity
from rep_theory.cli import main as cli_main
from rep_theory.io import load_checked
from rep_theory.training.batched import BatchedOneLayerMLP, make_batched_model
from rep_theory.training.config import RunConfig, load_config
from rep_theory.training.data import element_permutation, make_split
from rep_theory.training.losses import sum_cross_entropy64
from rep_theory.training.route_spec import RouteSpec, parse_route
from rep_theory.training.routing import (Router, ablate_units, finetune_ablated, isotypic_projector, routed_logits,
                                         subgroup_pair_mask)
from rep_theory.training.rundir import load_weights, model_for_config, new_run, resume_files
from rep_theory.training.train import fit, train_runs

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(seed=1, route=None, **kw):
    base = dict(group="S3", model="MLP", seed=seed, num_epochs=40, embed_dim=8, hidden_dim=6, frac_train=0.6,
                lr=1e-2, log_every=20, device="cpu", route=route)
    base.update(kw)
    return RunConfig(**base)


# --- the projector -----------------------------------------------------------------------------------
def test_isotypic_projector_is_the_character_formula_and_the_basis_projector():
    G = get_group("S4")
    n = G.order
    total = torch.zeros(n, n, dtype=torch.float64)
    for rho in G.irreps():
        P = isotypic_projector(G, rho.name)
        chi = torch.einsum("gii->g", rho.matrices.to(torch.float64))
        # P[g, h] = (d / |G|) chi(h^-1 g)  (all S4 irreps are of real type)
        by_formula = torch.tensor([[rho.dim / n * float(chi[G.table[G.inverses[h], g]]) for h in range(n)]
                                   for g in range(n)], dtype=torch.float64)
        Q = orthonormal_basis(rho.matrices.reshape(n, -1))
        assert torch.allclose(P, by_formula, atol=1e-12)
        assert torch.allclose(P, Q @ Q.T, atol=1e-12)
        assert torch.allclose(P @ P, P, atol=1e-12) and torch.allclose(P, P.T, atol=1e-12)
        total += P
    assert torch.allclose(total, torch.eye(n, dtype=torch.float64), atol=1e-12)


# --- the masked gradient on a 2-unit toy, by hand ----------------------------------------------------
@pytest.mark.parametrize("mode", ["unit", "activation"])
def test_irrep_routing_gradient_equals_the_hand_computed_one(mode):
    G = get_group("S3")
    P = isotypic_projector(G, "standard")
    I = torch.eye(6, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    h = torch.rand(1, 5, 2, generator=gen, dtype=torch.float64, requires_grad=True)   # 5 pairs, 2 units
    W_U = torch.randn(1, 2, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    R = torch.randn(1, 5, 6, generator=gen, dtype=torch.float64)                        # dL/dlogits
    u = torch.tensor([0.0, 1.0], dtype=torch.float64)                                    # unit 1 designated
    out = routed_logits(h, W_U, [(u, P), (1 - u, I - P)], mode)
    assert torch.equal(out, torch.bmm(h, W_U))                                         # forward unchanged, bit for bit
    (out * R).sum().backward()
    gP, gQ = R[0] @ P, R[0] @ (I - P)
    w = W_U[0].detach()
    # unit 1 only sees g P, unit 0 only g (I - P): through its activation ...
    assert torch.allclose(h.grad[0, :, 1], gP @ w[1], atol=1e-12)
    assert torch.allclose(h.grad[0, :, 0], gQ @ w[0], atol=1e-12)
    # ... and, with unit masks, through its unembedding row; the paper's activation mask leaves W_U whole
    hv = h[0].detach()
    if mode == "unit":
        assert torch.allclose(W_U.grad[0, 1], hv[:, 1] @ gP, atol=1e-12)
        assert torch.allclose(W_U.grad[0, 0], hv[:, 0] @ gQ, atol=1e-12)
    else:
        assert torch.allclose(W_U.grad[0], hv.T @ R[0], atol=1e-12)
    # and the split is not the identity: unrouted gradients differ
    assert not torch.allclose(h.grad[0, :, 1], R[0] @ w[1], atol=1e-6)


def _hand_model_grads(model, a, b, y, unit_terms):
    """Reference gradients of a plain BatchedOneLayerMLP: autograd of a surrogate whose gradient is
    the routed one, built from ``g = dL/dlogits`` by hand: unit ``j`` on pair ``i`` gets
    ``sum_k M_k[i, j] (g Pi_k W_U^T)[i, j]`` at its activation and ``sum_i M_k[i, j] h[i, j] (g Pi_k)[i]``
    at its unembedding row."""
    Lx, Ly = model.element_tables()
    hidden = torch.relu(Lx[0][a[0]] + Ly[0][b[0]])[None]                  # [1, batch, m]
    logits = torch.bmm(hidden, model.W_U)
    g = torch.autograd.grad(sum_cross_entropy64(logits, y, 1.0 / a.shape[1]), logits, retain_graph=True)[0]
    surrogate = 0
    for M, Pi in unit_terms:
        gPi = g if Pi is None else g @ Pi
        surrogate = surrogate + (hidden * M * (gPi @ model.W_U.transpose(1, 2)).detach()).sum()
        surrogate = surrogate + (model.W_U * torch.bmm((M * hidden).transpose(1, 2), gPi).detach()).sum()
    return torch.autograd.grad(surrogate, [model.W_x, model.W_y, model.W, model.W_U])


@pytest.mark.parametrize("kind,rest", [("irrep", None), ("subgroup", "others"), ("subgroup", "all")])
def test_routed_model_gradient_equals_the_hand_computed_one_on_a_two_unit_toy(kind, rest):
    G = get_group("S3")
    model = BatchedOneLayerMLP(6, embed_dim=3, hidden_dim=2, seeds=[3]).double()
    split = make_split(G, 0.7, 3)
    a, b, y = split.a_train[None], split.b_train[None], split.y_train[None]
    route = {"kind": kind, kind: "standard" if kind == "irrep" else "C3", "units": 1}
    spec = parse_route(route if rest is None else {**route, "rest": rest}, hidden_dim=2, model="OneLayerMLP")
    router = Router(spec, G, 2, dtype=torch.float64)
    u = torch.tensor([0.0, 1.0], dtype=torch.float64)
    if kind == "irrep":
        P = isotypic_projector(G, "standard")
        terms = [(u, P), (1 - u, torch.eye(6, dtype=torch.float64) - P)]
    else:
        inside = subgroup_pair_mask(G, (0, 3, 4)).to(torch.float64)[a[0] * 6 + b[0]][None, :, None]
        assert 0 < inside.sum() < a.shape[1]
        terms = [(inside * u + (1 - inside) * ((1 - u) if rest == "others" else 1), None)]
    expected = _hand_model_grads(model, a, b, y, terms)
    model.router = router
    sum_cross_entropy64(model(a, b), y, 1.0 / a.shape[1]).backward()
    for name, want in zip(("W_x", "W_y", "W", "W_U"), expected):
        assert torch.allclose(getattr(model, name).grad, want, atol=1e-12), name
    plain = torch.autograd.grad(sum_cross_entropy64(torch.bmm(torch.relu(model.element_tables()[0][0][a[0]]
                                + model.element_tables()[1][0][b[0]])[None], model.W_U), y, 1.0 / a.shape[1]),
                                model.W)[0]
    assert not torch.allclose(plain, model.W.grad, atol=1e-8)      # routing did change the gradient


# --- plain training is untouched ---------------------------------------------------------------------
def test_unrouted_training_is_bit_identical_to_a_plain_batched_loop():
    cfgs = [_cfg(seed=s) for s in (1, 2)]
    models, _ = fit(cfgs)
    G = get_group("S3")
    ref = make_batched_model("OneLayerMLP", 6, seeds=[1, 2], embed_dim=8, hidden_dim=6,
                             element_perm=element_permutation(G, True))
    splits = [make_split(G, 0.6, s) for s in (1, 2)]
    a, b, y = (torch.stack([getattr(s, k) for s in splits]) for k in ("a_train", "b_train", "y_train"))
    opt = torch.optim.AdamW(list(ref.parameters()), lr=1e-2, betas=(0.9, 0.98), weight_decay=1.0)
    for _ in range(40):
        opt.zero_grad(set_to_none=True)
        sum_cross_entropy64(ref(a, b), y, 1.0 / a.shape[1]).backward()
        opt.step()
    for i, m in enumerate(models):
        for key, value in m.state_dict().items():
            assert torch.equal(value, ref.single_state_dict(i)[key]), key
    assert "route" not in cfgs[0].to_dict()


def test_a_routed_run_starts_from_the_same_init_and_trains_differently():
    route = {"kind": "irrep", "irrep": "standard", "units": 2, "expand": 2}
    init_r, init_p = model_for_config(_cfg(route=route)), model_for_config(_cfg(hidden_dim=8))
    assert all(torch.equal(v, init_p.state_dict()[k]) for k, v in init_r.state_dict().items())
    (routed,), _ = fit(_cfg(route=route))
    (plain,), _ = fit(_cfg(hidden_dim=8))
    assert routed.W.shape == plain.W.shape == (16, 8)
    assert not torch.allclose(routed.W, plain.W, atol=1e-4)


# --- config ------------------------------------------------------------------------------------------
def test_route_config_round_trip_and_errors():
    cfg = _cfg(route={"kind": "subgroup", "subgroup": "C3", "units": 2, "expand": 1, "rest": "all"})
    assert cfg.route == RouteSpec("subgroup", "C3", 2, expand=1, rest="all")
    assert cfg.model_hidden_dim == 7 and cfg.hidden_dim == 6
    d = cfg.to_dict()
    assert d["route"] == {"kind": "subgroup", "subgroup": "C3", "units": 2, "expand": 1, "mask": "unit",
                          "rest": "all", "index": 0}
    assert RunConfig.from_dict(json.loads(json.dumps(d))) == cfg
    assert cfg.batch_key() != _cfg().batch_key() and hash(cfg.batch_key())
    bad = [({"kind": "neuron", "units": 1}, "route.kind"), ({"kind": "irrep", "irrep": "standard"}, "route.units"),
           ({"kind": "irrep", "irrep": "standard", "units": 6}, "units=6"),
           ({"kind": "irrep", "irrep": "standard", "units": 1, "rest": "all"}, "'rest'"),
           ({"kind": "irrep", "irrep": "standard", "units": 1, "mask": "weights"}, "'weights'"),
           ({"kind": "irrep", "irrep": 3, "units": 1}, "route.irrep=3"), ("standard", "route='standard'")]
    for route, needle in bad:
        with pytest.raises((ValueError, TypeError), match=needle.replace("(", r"\(").replace(")", r"\)")):
            _cfg(route=route)
    with pytest.raises(ValueError, match="OneLayerMLP"):
        _cfg(model="T", route={"kind": "irrep", "irrep": "standard", "units": 1})


def test_router_names_bad_subgroups_and_irreps():
    G = get_group("S3")
    with pytest.raises(ValueError, match=r"route.subgroup='A4'.*\['1', 'C2', 'C3', 'S3'\]"):
        Router(RouteSpec("subgroup", "A4", 1), G, 4)
    with pytest.raises(ValueError, match=r"route.index=3.*only 3"):
        Router(RouteSpec("subgroup", "C2", 1, index=3), G, 4)
    with pytest.raises(ValueError, match=r"route.irrep='s4_2_2'"):
        Router(RouteSpec("irrep", "s4_2_2", 1), G, 4)


# --- resume ------------------------------------------------------------------------------------------
def test_a_routed_run_resumes_bit_for_bit(tmp_path):
    cfg = _cfg(route={"kind": "subgroup", "subgroup": "C3", "units": 2, "expand": 2, "mask": "activation"},
               num_epochs=12)
    run = new_run(tmp_path / "run", cfg)
    train_runs([run], progress=False, resume_every_s=0.0)
    final = load_weights(run / "model.pt")
    assert final["W"].shape == (16, 8) and load_config(run) == cfg
    (run / "model.pt").unlink()
    newest_epoch, newest = resume_files(run)[0]
    assert newest_epoch == 12
    newest.unlink()                                                # resume from epoch 11
    assert load_checked(resume_files(run)[0][1])["epoch"] == 11
    train_runs([run], progress=False, resume_every_s=1e9)
    again = load_weights(run / "model.pt")
    for key in final:
        assert torch.equal(final[key], again[key]), key


# --- ablation and measures ---------------------------------------------------------------------------
def test_ablated_units_are_silent_and_stay_so_under_fine_tuning():
    route = parse_route({"kind": "irrep", "irrep": "standard", "units": 2, "expand": 2}, hidden_dim=6,
                        model="OneLayerMLP")
    cfgs = [_cfg(seed=s, route=route) for s in (1, 2)]
    models, _ = fit(cfgs)
    ablated = ablate_units(models[0], [6, 7])
    assert torch.count_nonzero(ablated.hidden_all_pairs()[:, 6:]) == 0
    tuned = finetune_ablated(models, cfgs, route, steps=5)
    for m, t in zip(models, tuned):
        assert torch.count_nonzero(t.W[:, 6:]) == 0 and torch.count_nonzero(t.W_U[6:]) == 0
        assert not torch.equal(m.W[:, :6], t.W[:, :6])
    with pytest.raises(ValueError, match=r"\[0, 8\).*\[9\]"):
        ablate_units(models[0], [9])


def test_localisation_and_purity_by_hand():
    energy = torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)
    variance = torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64)
    assert localisation(energy, [2]) == 0.75 and localisation(energy, [0, 1]) == 0.25
    assert purity(energy, variance, [1, 2]) == 0.75
    assert math.isnan(localisation(torch.zeros(3, dtype=torch.float64), [0]))
    assert math.isnan(purity(energy, torch.zeros(3, dtype=torch.float64), [0]))


def test_measures_of_a_model_whose_designated_units_carry_everything():
    """Units outside D ablated from the start: all energy (of every irrep) is in D, so localisation is 1,
    and ablating D leaves constant logits (similarity ratio 0)."""
    route = parse_route({"kind": "irrep", "irrep": "standard", "units": 3}, hidden_dim=6, model="OneLayerMLP")
    cfg = _cfg(route=route)
    (model,), _ = fit(cfg)
    ablate_units(model, [0, 1, 2])
    (m,) = measure_models([model], [cfg], route)
    assert m["localisation"] == pytest.approx(1.0) and m["chance"] == 0.5
    assert m["ablated_similarity_ratio"] == 0.0 and m["routed_irrep"] == "standard"
    assert set(m["localisation_by_irrep"]) == {"sign", "standard"}


# --- the experiment and the CLI ----------------------------------------------------------------------
def test_routing_cli_writes_the_table_and_figure_and_new_accepts_route_flags(tmp_path, capsys):
    out = tmp_path / "exp"
    args = ["routing", str(out), "--group", "S3", "--irrep", "standard", "--seeds", "2", "--device", "cpu",
            "--units", "2", "--expand", "2", "--epochs", "30", "--hidden-dim", "6", "--embed-dim", "8",
            "--finetune-steps", "3", "--no-progress"]
    assert cli_main(args) == 0
    rows = list(csv.DictReader(open(out / "routing.csv")))
    assert [(r["seed"], r["arm"]) for r in rows] == [("1", "routed"), ("2", "routed"), ("1", "unrouted"), ("2", "unrouted")]
    for col in ("seed", "arm", "routed_irrep", "localisation", "chance", "ablated_similarity_ratio", "test_acc",
                "ablated_test_acc"):
        assert all(r[col] != "" for r in rows), col
    assert rows[0]["chance"] == repr(2 / 8)
    assert "plotly" in (out / "routing.html").read_text()[:100000]
    assert "Means per arm" in (out / "routing.md").read_text()
    routed_cfg = load_config(out / "runs" / "routed" / "S3_MLP_seed1")
    unrouted_cfg = load_config(out / "runs" / "unrouted" / "S3_MLP_seed1")
    assert routed_cfg.route is not None and unrouted_cfg.route is None
    assert routed_cfg.model_hidden_dim == unrouted_cfg.hidden_dim == 8
    # the unrouted arm is plain training, bit for bit
    (plain,), _ = fit(unrouted_cfg)
    stored = load_weights(out / "runs" / "unrouted" / "S3_MLP_seed1" / "model.pt")
    assert all(torch.equal(stored[k], v) for k, v in plain.state_dict().items())
    # a second call reuses everything
    stamp = (out / "runs" / "routed" / "S3_MLP_seed1" / "routing.json").stat().st_mtime_ns
    assert cli_main(args) == 0
    assert (out / "runs" / "routed" / "S3_MLP_seed1" / "routing.json").stat().st_mtime_ns == stamp
    # the stored measure records the weights it describes; other weights are measured again
    from rep_theory.io import save_checked
    from rep_theory.training.rundir import stamp_matches
    routed = out / "runs" / "routed" / "S3_MLP_seed1"
    assert stamp_matches(routed / "model.pt", json.loads((routed / "routing.json").read_text())["weights"], deep=True)
    save_checked(routed / "model.pt", {k: v * 1.5 for k, v in load_weights(routed / "model.pt").items()})
    assert cli_main(args) == 0
    assert (routed / "routing.json").stat().st_mtime_ns != stamp
    assert stamp_matches(routed / "model.pt", json.loads((routed / "routing.json").read_text())["weights"], deep=True)

    run = tmp_path / "new_run"
    assert cli_main(["new", str(run), "--group", "S3", "--model", "MLP", "--seed", "1", "--route-subgroup", "C3",
                     "--route-units", "4", "--route-expand", "4"]) == 0
    assert load_config(run).route == RouteSpec("subgroup", "C3", 4, expand=4)
    assert cli_main(["new", str(tmp_path / "bad"), "--group", "S3", "--model", "MLP", "--seed", "1",
                     "--route-irrep", "standard"]) == 2
    assert "route.units" in capsys.readouterr().err
