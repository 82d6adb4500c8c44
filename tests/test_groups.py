"""Groups as Cayley tables: conventions, values, specs, validation, conjugacy classes."""

import itertools
import pickle

import numpy as np
import pytest
import torch

from rep_theory.algebra.groups import Group, get_group

SPECS = ["C1", "C2", "C7", "C12", "D3", "D4", "D8", "S1", "S3", "S4", "S5", "A3", "A4", "A5", "Q8",
         "Dic3", "C4xC6", "Q8xC3", "S3xC2", "C2xC2xC3"]


def _is_group_table(t: np.ndarray) -> bool:
    n = len(t)
    ar = np.arange(n)
    latin = all(np.array_equal(np.sort(t[i]), ar) and np.array_equal(np.sort(t[:, i]), ar) for i in range(n))
    assoc = all(np.array_equal(t[t[a], :], t[a][t]) for a in range(n))  # (ab)c == a(bc)
    return latin and assoc and np.array_equal(t[0], ar) and np.array_equal(t[:, 0], ar)


# --- conventions ---------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", SPECS)
def test_tables_are_groups_with_identity_zero(spec):
    G = get_group(spec)
    t = G.table.numpy()
    assert G.table.dtype == torch.int64 and t.shape == (G.order, G.order)
    assert G.identity == 0
    assert _is_group_table(t)
    inv = G.inverses.numpy()
    assert (t[np.arange(G.order), inv] == 0).all() and (t[inv, np.arange(G.order)] == 0).all()


def test_cyclic_is_addition_mod_n():
    G = get_group("C12")
    a = np.arange(12)
    assert np.array_equal(G.table.numpy(), (a[:, None] + a[None, :]) % 12)
    assert G.name == "C12" and G.order == 12


@pytest.mark.parametrize("n", [3, 4, 7, 8])
def test_dihedral_index_is_r_power_k_times_s_power_e(n):
    G = get_group(f"D{n}")
    t, inv = G.table.numpy(), G.inverses.numpy()
    r, s = 1, n
    assert G.order == 2 * n
    power = 0
    for k in range(n):
        assert power == k                      # r^k is index k
        assert t[k, s] == k + n                # r^k s is index k + n
        power = t[power, r]
    assert power == 0                          # r^n = 1
    assert t[s, s] == 0                        # s^2 = 1
    assert t[t[s, r], s] == inv[r]             # s r s = r^-1


def test_dicyclic_relations():
    n = 3
    G = get_group(f"Dic{n}")
    t, inv = G.table.numpy(), G.inverses.numpy()
    a, x = 1, 2 * n
    assert G.order == 4 * n
    assert t[x, x] == n                        # x^2 = a^n
    assert t[t[x, a], inv[x]] == inv[a]        # x a x^-1 = a^-1
    Q = get_group("Q8")
    assert Q.order == 8 and Q.name == "Q8"
    assert np.array_equal(Q.table.numpy(), get_group("Dic2").table.numpy())


@pytest.mark.parametrize("spec", ["S3", "S4", "A4", "A5"])
def test_permutation_product_applies_left_factor_first(spec):
    G = get_group(spec)
    el = G.elements
    t = G.table.numpy()
    for a, b in itertools.product(range(G.order), repeat=2):
        assert np.array_equal(el[t[a, b]], el[b][el[a]])   # (a*b)[i] = b[a[i]]


@pytest.mark.parametrize("spec, n, even_only", [("S4", 4, False), ("S5", 5, False), ("A5", 5, True)])
def test_permutation_elements_are_lexicographic(spec, n, even_only):
    G = get_group(spec)
    perms = [p for p in itertools.permutations(range(n))
             if not even_only or sum(p[i] > p[j] for i in range(n) for j in range(i + 1, n)) % 2 == 0]
    assert [tuple(p) for p in G.elements.tolist()] == perms
    assert G.elements[0].tolist() == list(range(n))


def test_direct_product_index_and_componentwise_product():
    G, H = get_group("C4"), get_group("S3")
    P = get_group("C4xS3")
    assert P.order == 24 and P.name == "C4xS3"
    tg, th, tp = G.table.numpy(), H.table.numpy(), P.table.numpy()
    for g1, h1, g2, h2 in itertools.product(range(4), range(6), range(4), range(6)):
        assert tp[g1 * 6 + h1, g2 * 6 + h2] == tg[g1, g2] * 6 + th[h1, h2]


def test_from_permutations_matches_the_spec_group():
    G = Group.from_permutations([[1, 0, 2, 3], [1, 2, 3, 0]])
    S4 = get_group("S4")
    assert G.order == 24
    assert np.array_equal(G.elements, S4.elements)
    assert np.array_equal(G.table.numpy(), S4.table.numpy())
    assert G != S4  # a different name: not the spec group


# --- values ----------------------------------------------------------------------------------------
def test_equality_hash_and_identity_of_spec_groups():
    assert get_group("S5") == get_group("S5")
    assert get_group("S5") is get_group(" S5 ")
    assert get_group("S5") != get_group("S4")
    assert get_group("S5") != "S5"
    assert len({get_group("D8"), get_group("D8"), get_group("Q8")}) == 2
    assert hash(get_group("C4xC6")) == hash(get_group("C4xC6"))
    assert repr(get_group("D8")) == "Group('D8', order=16)"


@pytest.mark.parametrize("spec", SPECS)
def test_str_parses_back_and_pickle_round_trips(spec):
    G = get_group(spec)
    assert get_group(str(G)) == G
    H = pickle.loads(pickle.dumps(G))
    assert H == G and torch.equal(H.table, G.table)


def test_pickle_of_a_table_group_keeps_its_table():
    table = get_group("D4").table.numpy()
    G = Group.from_table(table)
    H = pickle.loads(pickle.dumps(G))
    assert H == G and torch.equal(H.table, G.table)
    assert G.name.startswith("Table8_")
    assert Group.from_table(table, name="mine").name == "mine"


# --- specs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, bad", [("S0", "S0"), ("D2", "D2"), ("X5", "X5"), ("S9", "S9"), ("", "empty"),
                                       ("C4x", "empty"), ("C-3", "C-3"), ("A2", "A2")])
def test_bad_specs_say_what_is_accepted(spec, bad):
    with pytest.raises(ValueError) as info:
        get_group(spec)
    message = str(info.value)
    assert bad in message
    assert "accepted" in message and "C<n>" in message and "S<n>" in message


def test_non_string_spec_is_a_type_error():
    with pytest.raises(TypeError, match="spec string"):
        get_group(5)


# --- from_table validation -------------------------------------------------------------------------
_LOOP5 = np.array([[0, 1, 2, 3, 4],
                   [1, 0, 3, 4, 2],
                   [2, 4, 0, 1, 3],
                   [3, 2, 4, 0, 1],
                   [4, 3, 1, 2, 0]])
"""A Latin square with identity 0 that is not a group (the smallest non-associative loop)."""


def test_loop5_is_a_latin_square_with_identity():
    ar = np.arange(5)
    assert all(np.array_equal(np.sort(_LOOP5[i]), ar) and np.array_equal(np.sort(_LOOP5[:, i]), ar)
               for i in range(5))
    assert not _is_group_table(_LOOP5)


@pytest.mark.parametrize("table, message", [
    (np.zeros((2, 3), dtype=int), "square"),
    (np.zeros((0, 0), dtype=int), "non-empty"),
    (np.array([[0, 1], [1, 2]]), r"table\[1, 1\] = 2 is out of range"),
    (np.array([[1, 0], [0, 1]]), "identity"),
    (np.array([[0, 1, 2], [1, 1, 0], [2, 0, 1]]), "row 1 of the table repeats element 1"),
    (_LOOP5, "not associative"),
])
def test_from_table_names_the_first_violation(table, message):
    with pytest.raises(ValueError, match=message):
        Group.from_table(table)


def test_from_table_accepts_a_relabelled_group():
    G = get_group("D4")
    perm = np.array([0, 3, 1, 7, 2, 6, 5, 4])        # fixes 0; new label of old element i is perm[i]
    inv = np.argsort(perm)
    t = perm[G.table.numpy()[np.ix_(inv, inv)]]
    H = Group.from_table(t)
    assert H.order == 8 and len(H.conjugacy_classes()) == 5


# --- conjugacy classes -----------------------------------------------------------------------------
@pytest.mark.parametrize("spec, n_classes, n_real", [("S5", 7, 7), ("A5", 5, 5), ("D8", 7, 7), ("Q8", 5, 5),
                                                    ("C5", 5, 3), ("A4", 4, 3), ("S6", 11, 11), ("C1", 1, 1)])
def test_conjugacy_class_counts(spec, n_classes, n_real):
    G = get_group(spec)
    classes = G.conjugacy_classes()
    assert len(classes) == n_classes
    assert len(G.real_classes()) == n_real
    assert classes[0] == [0]
    assert sorted(g for c in classes for g in c) == list(range(G.order))
    t, inv = G.table.numpy(), G.inverses.numpy()
    for c in classes:
        conj = {int(t[t[h, c[0]], inv[h]]) for h in range(G.order)}
        assert conj == set(c)


def test_element_orders():
    assert get_group("C12").element_orders().tolist() == [12 // np.gcd(k, 12) for k in range(12)]
    orders = get_group("S4").element_orders()
    assert sorted(set(orders.tolist())) == [1, 2, 3, 4]


# --- identity by content, not name -----------------------------------------------------------------
def test_groups_with_one_name_but_different_tables_are_different():
    """``Group.from_table(t, name="D4")`` with another table is not D4, and nothing derived from D4
    (irreps, metric bases) is served for it."""
    from rep_theory.analysis.bases import IrrepBases

    d4 = get_group("D4")
    c8 = get_group("C8")
    impostor = Group.from_table(c8.table, name="D4")
    assert impostor != d4 and impostor.digest != d4.digest
    assert not impostor.is_spec_group() and d4.is_spec_group()
    assert Group.from_table(d4.table, name="D4") == d4  # same name and table: equal
    assert [r.dim for r in impostor.irreps()] != [r.dim for r in d4.irreps()]  # C8's irreps, not D4's
    assert IrrepBases.for_group(impostor) is not IrrepBases.for_group(d4)
    assert IrrepBases.for_group(impostor).names == tuple(r.name for r in impostor.irreps())


def test_specs_are_parsed_without_building_groups():
    from rep_theory.algebra.groups import canonical_spec, parse_spec, spec_order, _get_group_cached

    before = _get_group_cached.cache_info().misses
    assert spec_order("S7") == 5040 and spec_order("C4xD5xQ8") == 4 * 10 * 8 and spec_order("A6") == 360
    assert canonical_spec(" C04xDic3 ") == "C4xDic3"
    assert parse_spec("Q8xS3") == [("Q8", None), ("S", 3)]
    assert _get_group_cached.cache_info().misses == before
    with pytest.raises(ValueError, match="S9"):
        spec_order("S9")
