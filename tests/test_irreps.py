"""Every real irrep of every supported group: proved by the checker, named as the paper names them."""

import math
from math import comb, factorial

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from rep_theory.algebra.groups import Group, get_group
from rep_theory.algebra.irreps import (KINDS, PAPER_IRREP_NAMES, Irrep, compute_irreps, conjugate_partition,
                               partitions, verify_irreps)

CHECKED_SPECS = ["C1", "C2", "C5", "C12", "C113", "D3", "D4", "D8", "D59", "S1", "S2", "S3", "S4", "S5", "S6",
                 "A3", "A4", "A5", "A6", "Q8", "Dic3", "Dic5", "C4xC6", "Q8xC3", "S3xC2"]


def irreps_of(spec_or_group):
    """Freshly computed irreps (no on-disk cache), so the tests exercise the construction."""
    G = get_group(spec_or_group) if isinstance(spec_or_group, str) else spec_or_group
    return G, compute_irreps(G, use_cache=False)


def index_of(G, perm):
    return next(i for i, p in enumerate(G.elements.tolist()) if p == list(perm))


# --- the checker accepts every family ----------------------------------------------------------------
@pytest.mark.parametrize("spec", CHECKED_SPECS)
def test_checker_accepts(spec):
    G, irreps = irreps_of(spec)
    verify_irreps(G, irreps)
    assert [r.name for r in irreps] == [r.name for r in compute_irreps(G, use_cache=False)]  # deterministic


def test_checker_accepts_a_table_group_and_a_permutation_group():
    G = get_group("D4")
    perm = np.array([0, 5, 2, 7, 1, 3, 6, 4])
    inv = np.argsort(perm)
    T = Group.from_table(perm[G.table.numpy()[np.ix_(inv, inv)]])
    _, irreps = irreps_of(T)
    verify_irreps(T, irreps)
    assert [r.name for r in irreps] == ["trivial", "1d_a", "1d_b", "1d_c", "2d_a"]
    F20 = Group.from_permutations([[1, 2, 3, 4, 0], [0, 2, 4, 1, 3]])  # the Frobenius group of order 20
    _, irreps = irreps_of(F20)
    verify_irreps(F20, irreps)
    assert F20.order == 20 and sorted((r.dim, r.kind) for r in irreps) == [
        (1, "real"), (1, "real"), (2, "complex"), (4, "real")]


def test_seven_point_groups():
    """S7 and A7 (15 and 8 irreps, up to 35-dimensional); a few seconds, so kept in the suite."""
    G, irreps = irreps_of("S7")
    verify_irreps(G, irreps)
    assert [r.name for r in irreps] == [name for _, name in _symmetric_names(7)]
    G, irreps = irreps_of("A7")
    verify_irreps(G, irreps)
    assert len(irreps) == 8
    assert [r.name for r in irreps if r.kind == "complex"] == ["a7_4_1_1_1"]  # (4,1,1,1) does not split


_SMALL = ["C1", "C2", "C3", "C4", "C6", "D3", "D4", "D5", "Q8", "Dic3", "Dic4", "S3", "A4"]


@settings(max_examples=12, deadline=None)
@given(st.lists(st.sampled_from(_SMALL), min_size=1, max_size=3).filter(
    lambda fs: math.prod(get_group(f).order for f in fs) <= 96))
def test_checker_accepts_random_products(factors):
    G, irreps = irreps_of("x".join(factors))
    verify_irreps(G, irreps)


@settings(max_examples=8, deadline=None)
@given(st.sampled_from(["Dic2", "Dic3", "Dic4", "Dic5", "Dic6", "Q8xC2", "D6", "C3xS3"]), st.randoms())
def test_relabelled_groups_have_the_same_irreps(spec, rnd):
    """A random relabelling (0 fixed) goes the generic route and must find the same (dim, kind) list."""
    G, irreps = irreps_of(spec)
    perm = np.array([0] + rnd.sample(range(1, G.order), G.order - 1))
    inv = np.argsort(perm)
    T = Group.from_table(perm[G.table.numpy()[np.ix_(inv, inv)]])
    _, relabelled = irreps_of(T)
    verify_irreps(T, relabelled)
    assert sorted((r.dim, r.kind) for r in relabelled) == sorted((r.dim, r.kind) for r in irreps)


# --- the checker rejects what is not a complete set of irreps ------------------------------------------
def _broken(kind):
    G, irreps = irreps_of("S4")
    irreps = list(irreps)
    std, sgn = irreps[2], irreps[1]
    if kind == "missing":
        return G, irreps[:-1], "5 real classes"
    if kind == "duplicate":
        return G, irreps + [Irrep(G, "again", std.matrices, "real")], "not orthogonal"
    if kind == "not_homomorphism":
        m = std.matrices.clone()
        m[5] = m[5] @ m[1]
        return G, irreps[:2] + [Irrep(G, "standard", m, "real")] + irreps[3:], "not a homomorphism"
    if kind == "not_orthogonal":
        m = std.matrices.clone()
        m[1:] *= 1.001
        return G, irreps[:2] + [Irrep(G, "standard", m, "real")] + irreps[3:], "not orthogonal"
    if kind == "wrong_kind":
        return G, irreps[:2] + [Irrep(G, "standard", std.matrices, "complex")] + irreps[3:], "norm"
    if kind == "sum_called_complex":  # trivial + sign: norm 2 like a complex irrep, but indicator 2, not 0
        m = torch.zeros(24, 2, 2, dtype=torch.float64)
        m[:, 0, 0], m[:, 1, 1] = 1, sgn.matrices[:, 0, 0]
        return G, irreps[:1] + [Irrep(G, "pair", m, "complex")] + irreps[2:], "Frobenius-Schur"
    if kind == "double_called_quaternionic":  # standard + standard: norm 4 like a quaternionic irrep
        m = torch.zeros(24, 6, 6, dtype=torch.float64)
        m[:, :3, :3] = std.matrices
        m[:, 3:, 3:] = std.matrices
        return G, irreps[:2] + [Irrep(G, "double", m, "quaternionic")] + irreps[3:], "Frobenius-Schur"
    if kind == "trivial_not_first":
        return G, irreps[1:] + irreps[:1], "first irrep must be 'trivial'"
    if kind == "repeated_name":
        return G, irreps[:-1] + [Irrep(G, "sign", irreps[-1].matrices, "real")], "unique"
    if kind == "other_group":
        return G, irreps[:-1] + [Irrep("S5", irreps[-1].name, irreps[-1].matrices, "real")], "belongs to group"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "duplicate", "not_homomorphism", "not_orthogonal", "wrong_kind",
                                  "sum_called_complex", "double_called_quaternionic", "trivial_not_first",
                                  "repeated_name", "other_group"])
def test_checker_rejects(kind):
    G, irreps, message = _broken(kind)
    with pytest.raises(ValueError, match=message):
        verify_irreps(G, irreps)


def test_checker_catches_one_wrong_element():
    G, irreps = irreps_of("D8")
    m = irreps[4].matrices.clone()
    m[-1] = -m[-1]
    with pytest.raises(ValueError, match="freq_1.*not a homomorphism"):
        verify_irreps(G, irreps[:4] + [Irrep(G, "freq_1", m, "real")] + irreps[5:])


# --- names and known character values -------------------------------------------------------------------
def _symmetric_names(n):
    """The documented naming rule for S_n, written out independently of the implementation."""
    special = {(n,): "trivial"}
    if n >= 2:
        special[(1,) * n] = "sign"
    if n >= 3:
        special[(n - 1, 1)] = "standard"
    if n >= 4:
        special[(2,) + (1,) * (n - 2)] = "standard_sign"
    special.update(PAPER_IRREP_NAMES.get(f"S{n}", {}))
    rest = sorted((lam for lam in partitions(n) if lam not in special), reverse=True)
    return list(special.items()) + [(lam, f"s{n}_" + "_".join(map(str, lam))) for lam in rest]


def _hook_dim(lam):
    conj = conjugate_partition(lam)
    hooks = math.prod(lam[i] - j + conj[j] - i - 1 for i in range(len(lam)) for j in range(lam[i]))
    return factorial(sum(lam)) // hooks


def _transposition_character(lam):
    """chi^lambda((0 1)) = dim * (sum of contents) / C(n, 2)  (Frobenius)."""
    contents = sum(j - i for i in range(len(lam)) for j in range(lam[i]))
    n = sum(lam)
    return _hook_dim(lam) * contents / comb(n, 2)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_symmetric_names_match_partitions(n):
    """Each S_n irrep has the hook-length dimension and the transposition character of its partition."""
    G, irreps = irreps_of(f"S{n}")
    expected = _symmetric_names(n)
    assert [r.name for r in irreps] == [name for _, name in expected]
    t = index_of(G, [1, 0] + list(range(2, n)))
    for rho, (lam, _) in zip(irreps, expected):
        assert rho.dim == _hook_dim(lam)
        assert rho.character[t].item() == pytest.approx(_transposition_character(lam), abs=1e-9)


def test_s6_names():
    _, irreps = irreps_of("S6")
    assert [r.name for r in irreps] == ["trivial", "sign", "standard", "standard_sign", "s6_5d_a", "s6_5d_b",
                                        "s6_4_2", "s6_4_1_1", "s6_3_2_1", "s6_3_1_1_1", "s6_2_2_1_1"]


def test_s5_characters_on_a_transposition():
    G, irreps = irreps_of("S5")
    t = index_of(G, [1, 0, 2, 3, 4])
    values = {r.name: round(r.character[t].item(), 9) for r in irreps}
    assert values == {"trivial": 1, "sign": -1, "standard": 2, "standard_sign": -2, "s5_5d_a": -1,
                      "s5_5d_b": 1, "s5_6d": 0}


def test_a5_golden_ratio_characters():
    G, irreps = irreps_of("A5")
    assert [r.name for r in irreps] == ["trivial", "standard", "a5_5d_a", "a5_3d_a", "a5_3d_b"]
    assert [r.dim for r in irreps] == [1, 4, 5, 3, 3]
    c = index_of(G, [1, 2, 3, 4, 0])
    phi = (1 + math.sqrt(5)) / 2
    assert irreps[3].character[c].item() == pytest.approx(phi, abs=1e-12)
    assert irreps[4].character[c].item() == pytest.approx(1 - phi, abs=1e-12)
    # a5_5d_a is the restriction of (3, 2): character 1 on a double transposition, -1 on a 3-cycle
    assert irreps[2].character[index_of(G, [1, 0, 3, 2, 4])].item() == pytest.approx(1)
    assert irreps[2].character[index_of(G, [1, 2, 0, 3, 4])].item() == pytest.approx(-1)


def _alternating_partition(n, name):
    """Partition behind an A_n irrep name (the documented rule), and whether it is a split half."""
    if name == "trivial":
        return (n,), False
    if name == "standard":
        return (n - 1, 1), False
    for lam, paper in PAPER_IRREP_NAMES.get(f"A{n}", {}).items():
        if name in (paper, paper + "_a", paper + "_b"):
            return lam, name != paper
    parts, half = name.split("_")[1:], False
    if parts[-1] in ("a", "b"):
        parts, half = parts[:-1], True
    assert name.startswith(f"a{n}_")
    return tuple(int(p) for p in parts), half


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_alternating_names_dims_and_split_order(n):
    G, irreps = irreps_of(f"A{n}")
    names = [r.name for r in irreps]
    assert names[0] == "trivial" and (n < 4 or names[1] == "standard")
    seen = set()
    for rho in irreps:
        lam, half = _alternating_partition(n, rho.name)
        self_conjugate = lam == conjugate_partition(lam)
        assert lam >= conjugate_partition(lam)            # one of each conjugate pair: the larger
        assert rho.dim == _hook_dim(lam) // (2 if half else 1)
        assert rho.kind == ("complex" if self_conjugate and not half else "real")
        seen.add(lam)
    assert seen == {lam for lam in partitions(n) if lam >= conjugate_partition(lam)}
    halves = [r for r in irreps if _alternating_partition(n, r.name)[1]]
    assert len(halves) == {3: 0, 4: 0, 5: 2, 6: 2}[n]
    for a, b in zip(halves[::2], halves[1::2]):
        assert a.name[:-2] == b.name[:-2] and (a.name[-1], b.name[-1]) == ("a", "b")
        differ = np.nonzero(np.abs(a.character.numpy() - b.character.numpy()) > 1e-9)[0]
        assert a.character[differ[0]] > b.character[differ[0]]


@pytest.mark.parametrize("n", [5, 12, 113])
def test_cyclic_characters(n):
    G, irreps = irreps_of(f"C{n}")
    m = np.arange(n)
    for rho in irreps:
        if rho.name.startswith("freq_"):
            k = int(rho.name.split("_")[1])
            assert np.allclose(rho.character.numpy(), 2 * np.cos(2 * np.pi * k * m / n), atol=1e-12)
            assert rho.kind == "complex"
    assert len(irreps) == 1 + (n % 2 == 0) + (n - 1) // 2


@pytest.mark.parametrize("n", [3, 8, 59])
def test_dihedral_closed_forms(n):
    G, irreps = irreps_of(f"D{n}")
    idx = np.arange(2 * n)
    k, e = idx % n, idx // n
    by_name = {r.name: r.character.numpy() for r in irreps}
    assert np.allclose(by_name["sign"], (-1.0) ** e)
    if n % 2 == 0:
        assert np.allclose(by_name["sign_r"], (-1.0) ** k)
        assert np.allclose(by_name["sign_rs"], (-1.0) ** (k + e))
    for f in range(1, (n + 1) // 2):
        assert np.allclose(by_name[f"freq_{f}"], np.where(e == 0, 2 * np.cos(2 * np.pi * f * k / n), 0), atol=1e-12)
        rho_s = dict((r.name, r) for r in irreps)[f"freq_{f}"].matrices[n]
        assert torch.allclose(rho_s, torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64))


@pytest.mark.parametrize("run, spec", [("C113_MLP_seed1", "C113"), ("D59_MLP_seed1", "D59"),
                                       ("S5_MLP_seed1", "S5")])
def test_names_equal_the_papers(reference_dir, run, spec):
    paper = (reference_dir / "paper_models" / run / "irreps.txt").read_text().split()
    _, irreps = irreps_of(spec)
    assert [r.name for r in irreps] == paper
    key_reps = (reference_dir / "paper_models" / run / "key_reps.txt").read_text().split()
    assert set(key_reps) <= set(paper)


def test_product_names():
    _, irreps = irreps_of("C4xC6")
    names = [r.name for r in irreps]
    assert names[:4] == ["trivial", "trivial*sign", "trivial*freq_1", "trivial*freq_2"]
    assert "freq_1*sign" in names and "freq_1*freq_2_a" in names and "freq_1*freq_2_b" in names
    _, irreps = irreps_of("Q8xC3")
    kinds = {r.name: r.kind for r in irreps}
    assert kinds["4d_a*trivial"] == "quaternionic" and kinds["4d_a*freq_1"] == "complex"


def test_generic_names_are_ordered_by_dim_then_character():
    _, irreps = irreps_of("Q8")
    assert [r.name for r in irreps] == ["trivial", "1d_a", "1d_b", "1d_c", "4d_a"]
    assert [r.kind for r in irreps] == ["real"] * 4 + ["quaternionic"]
    chars = [tuple(np.round(r.character.numpy(), 6)) for r in irreps[:4]]
    assert chars == sorted(chars, reverse=True)


def test_kinds_and_dimension_count():
    for spec in ("Dic5", "A4", "C12", "Q8xC3"):
        G, irreps = irreps_of(spec)
        assert sum(r.dim ** 2 / KINDS[r.kind] for r in irreps) == pytest.approx(G.order)


# --- the Irrep value and Group.irreps() --------------------------------------------------------------------
def test_irrep_value_object():
    G = get_group("S5")
    a = G.irrep("standard")
    b = Irrep("S5", "standard", a.matrices.clone(), "real")
    assert repr(a) == "S5:standard(d=4)" and a == b and hash(a) == hash(b)
    assert a != G.irrep("sign") and a != Irrep("S4", "standard", get_group("S4").irrep("standard").matrices, "real")
    assert a != "S5:standard"
    assert len({a, b, G.irrep("sign")}) == 2
    assert a.matrices.dtype == torch.float64 and a.matrices.shape == (120, 4, 4)
    assert torch.allclose(a.character, torch.diagonal(a.matrices, dim1=1, dim2=2).sum(-1))
    assert (a.group, a.name, a.dim, a.kind) == ("S5", "standard", 4, "real")
    with pytest.raises(AttributeError):
        a.name = "other"


def test_irrep_rejects_bad_input():
    with pytest.raises(ValueError, match="kind"):
        Irrep("C2", "x", torch.ones(2, 1, 1), "weird")
    with pytest.raises(ValueError, match=r"\[n, d, d\]"):
        Irrep("C2", "x", torch.ones(2, 1, 2), "real")


def test_group_irreps_is_memoised_and_lookup_names_choices():
    G = get_group("D8")
    assert G.irreps() is G.irreps()
    with pytest.raises(KeyError, match="freq_1"):
        G.irrep("nope")


# --- `rep-theory irreps` ------------------------------------------------------------------------------------
def test_irreps_command_prints_classes_and_character_table(tmp_cache, capsys):
    from rep_theory.cli import main

    assert main(["irreps", "D8"]) == 0
    out = capsys.readouterr().out
    assert "group D8: order 16, 7 conjugacy classes, 7 real classes, 7 real irreps" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  ")}
    assert rows["freq_1"][:3] == ["2", "real", "2"] and "1.414" in rows["freq_1"] and "-1.414" in rows["freq_1"]
    assert rows["(size)"] == ["1", "2", "2", "2", "1", "4", "4"]


def test_irreps_command_json_is_a_character_table(tmp_cache, capsys):
    import json

    from rep_theory.cli import main

    assert main(["irreps", "A5", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["group"] == "A5" and table["order"] == 60
    assert [c["size"] for c in table["conjugacy_classes"]] == [1, 20, 15, 12, 12]
    assert [c["element_order"] for c in table["conjugacy_classes"]] == [1, 3, 2, 5, 5]
    assert table["conjugacy_classes"][3]["representative_label"] == "[1,2,3,4,0]"
    rows = {r["name"]: r for r in table["irreps"]}
    assert rows["a5_3d_a"]["character"][3] == pytest.approx((1 + math.sqrt(5)) / 2)
    # row orthogonality of the printed table: sum_c |c| chi_i(c) chi_j(c) = |G| kind_i delta_ij
    sizes = np.array([c["size"] for c in table["real_classes"]])
    chi = np.array([r["character"] for r in table["irreps"]])
    kinds = np.array([KINDS[r["kind"]] for r in table["irreps"]])
    assert np.allclose((chi * sizes) @ chi.T, 60 * np.diag(kinds))


def test_irreps_command_rejects_a_bad_spec(capsys):
    from rep_theory.cli import main

    assert main(["irreps", "S9"]) == 2
    assert "S9" in capsys.readouterr().err
