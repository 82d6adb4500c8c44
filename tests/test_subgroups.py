"""Subgroups and coset concentration (rep_theory.algebra.subgroups) against independent facts: known
subgroup counts, brute force over all subsets of small groups, Lagrange, closure, orbit-stabiliser
for conjugacy classes, and the irrep content of centred subgroup indicators."""

import itertools
import time

import numpy as np
import pytest
import torch

from rep_theory.algebra import subgroups as sg
from rep_theory.algebra.fourier import fourier_power
from rep_theory.algebra.groups import Group, get_group

# (number of subgroups, number of conjugacy classes): standard tables (e.g. GAP's SmallGroups data)
KNOWN = {"S3": (6, 4), "S4": (30, 11), "A4": (10, 5), "A5": (59, 9), "S5": (156, 19), "D4": (10, 8),
         "Q8": (6, 6), "C12": (6, 6), "A6": (501, 22), "S6": (1455, 56)}


@pytest.fixture(autouse=True)
def _fresh(tmp_cache):
    """Every test starts from an empty cache folder and an empty in-memory memo."""
    sg._MEMO.clear()
    yield
    sg._MEMO.clear()


@pytest.mark.parametrize("spec", list(KNOWN))
def test_subgroup_counts(spec):
    G = get_group(spec)
    t0 = time.perf_counter()
    subs = sg.subgroups(G, use_cache=False)
    elapsed = time.perf_counter() - t0
    classes = sg.subgroup_classes(G, use_cache=False)
    assert (len(subs), len(classes)) == KNOWN[spec]
    assert elapsed < 20, f"{spec}: {elapsed:.1f} s"


@pytest.mark.parametrize("spec", ["S3", "D4", "Q8", "C12", "C2xC2xC2", "Dic3"])
def test_matches_brute_force_over_all_subsets(spec):
    G = get_group(spec)
    n = G.order
    table = G.table.numpy()
    brute = set()
    for bits in itertools.product((0, 1), repeat=n - 1):
        e = np.array([0] + [g + 1 for g in range(n - 1) if bits[g]])
        if np.isin(table[np.ix_(e, e)], e).all():   # a finite non-empty subset closed under products
            brute.add(tuple(e.tolist()))
    assert {H.elements for H in sg.subgroups(G)} == brute


@pytest.mark.parametrize("spec", ["S4", "A5", "C4xC6", "D6"])
def test_lagrange_closure_and_classes(spec):
    G = get_group(spec)
    n = G.order
    table, inv = G.table.numpy(), G.inverses.numpy()
    subs = sg.subgroups(G)
    classes = sg.subgroup_classes(G)
    assert len({H.elements for H in subs}) == len(subs)
    assert sum(c.size for c in classes) == len(subs)
    for H in subs:
        e = np.array(H.elements)
        assert n % H.order == 0
        assert e[0] == 0 and list(e) == sorted(e)
        assert np.isin(table[np.ix_(e, e)], e).all() and np.isin(inv[e], e).all()
        assert H.indices.tolist() == list(H.elements)
    for c in classes:
        rep = np.array(c.representative.elements)
        conjugates = {tuple(sorted(table[table[inv[x], rep], x].tolist())) for x in range(n)}
        assert conjugates == {subs[i].elements for i in c.members}
        normaliser = sum(set(table[table[inv[x], rep], x].tolist()) == set(rep.tolist()) for x in range(n))
        assert c.size == n // normaliser                    # orbit-stabiliser
        assert c.normal == (c.size == 1)
        assert all(subs[i].class_index == c.index and subs[i].order == c.order for i in c.members)
    assert [c.order for c in classes] == sorted(c.order for c in classes)


def test_identification():
    names = lambda spec: sorted(c.name for c in sg.subgroup_classes(spec))  # noqa: E731
    assert names("S4") == sorted(["1", "C2", "C2", "C3", "V4", "V4", "C4", "S3", "D4", "A4", "S4"])
    assert names("Q8") == sorted(["1", "C2", "C4", "C4", "C4", "Q8"])
    assert names("S5") == sorted(["1", "C2", "C2", "C3", "V4", "V4", "C4", "C5", "S3", "S3", "C6", "D4",
                                  "D5", "S3xS2", "A4", "F20", "S4", "A5", "S5"])
    assert sg.subgroup_classes("C4xC6")[-1].name == "C2xC12"
    assert sg.subgroup_classes("Dic3")[-1].name == "Dic3"
    assert sg.subgroup_classes("D7")[-1].name == "D7"


def test_format_subgroup_classes():
    text = sg.format_subgroup_classes("S4")
    assert "30 subgroups in 11 conjugacy classes" in text
    assert len(text.splitlines()) == 3 + 11
    assert any(line.split()[1:4] == ["12", "1", "A4"] and line.split()[-1] == "yes" for line in text.splitlines())


def test_disk_cache_round_trip_and_corruption(tmp_cache, monkeypatch):
    G = get_group("S4")
    first = sg.subgroups(G)
    files = list(tmp_cache.glob("subgroups_v*.npz"))
    assert len(files) == 1 and files[0].stat().st_size < 10_000
    assert not list(tmp_cache.glob("*.tmp"))
    sg._MEMO.clear()
    enumerate_ = sg._enumerate
    with monkeypatch.context() as m:
        m.setattr(sg, "_enumerate", lambda *args: pytest.fail("recomputed although the cache file is valid"))
        assert sg.subgroups(G) == first                  # served from the file
    assert sg._enumerate is enumerate_
    sg._MEMO.clear()
    files[0].write_bytes(b"not an npz file")
    with pytest.warns(UserWarning, match="ignoring the subgroup cache file"):
        assert sg.subgroups(G) == first                  # recomputed, never trusted
    sg._MEMO.clear()
    # the key is the Cayley table, not the name
    same = Group.from_table(G.table, name="another_name")
    assert [H.elements for H in sg.subgroups(same)] == [H.elements for H in first]


def _indicator(G, H):
    f = torch.zeros(G.order, dtype=torch.float64)
    f[list(H.elements)] = 1.0
    return f - f.mean()


def test_centred_indicators_of_s5_subgroups_live_in_one_irrep():
    G = get_group("S5")
    reps = {c.name: c.representative for c in sg.subgroup_classes(G)}
    for name, irrep in (("S4", "standard"), ("A5", "sign"), ("F20", "s5_5d_a")):
        power = fourier_power(G, _indicator(G, reps[name]))
        assert float(power[irrep]) == pytest.approx(1.0, abs=1e-12), (name, irrep)
    assert G.irrep("s5_5d_a").dim == 5
    assert float(fourier_power(G, _indicator(G, reps["S3xS2"]))["standard"]) < 0.99


def _brute_concentration(G, f, H, side):
    table = G.table.numpy()
    e = list(H.elements)
    proj = torch.stack([f[[table[g, h] if side == "left" else table[h, g] for h in e]].mean() for g in range(G.order)])
    fc, pc = f - f.mean(), proj - f.mean()
    return float(pc.pow(2).sum() / fc.pow(2).sum())


def test_coset_concentration_definition_and_sides():
    G = get_group("S4")
    subs = sg.subgroups(G)
    f = torch.randn(G.order, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for side in ("left", "right"):
        conc = sg.coset_concentration(G, f, side=side)
        assert conc.shape == (len(subs), 2)
        for k, H in enumerate(subs):
            assert float(conc[k, 0]) == pytest.approx(_brute_concentration(G, f[:, 0], H, side), abs=1e-12)
        assert float(conc[0, 0]) == pytest.approx(1.0) and float(conc[-1, 0]) == pytest.approx(0.0, abs=1e-12)
        for k, K in enumerate(subs):                      # smaller subgroup, finer cosets, more energy
            for j, H in enumerate(subs):
                if set(K.elements) < set(H.elements):
                    assert float(conc[k, 0]) >= float(conc[j, 0]) - 1e-12
    # f constant on left cosets gH  <=>  f o inverse constant on right cosets Hg
    H = next(h for h in subs if h.order == 3)              # a non-normal subgroup
    labels = sg.coset_labels(G, H, side="left")
    f = torch.randn(G.order, dtype=torch.float64, generator=torch.Generator().manual_seed(1))[labels]
    k = subs.index(H)
    assert float(sg.coset_concentration(G, f, side="left")[k]) == pytest.approx(1.0)
    assert float(sg.coset_concentration(G, f, side="right")[k]) < 0.99
    assert float(sg.coset_concentration(G, f[G.inverses], side="right")[k]) == pytest.approx(1.0)
    # gH as sets: g * h for h in H
    table = G.table.numpy()
    g = 5
    assert set(np.flatnonzero(labels.numpy() == labels[g].item())) == {int(table[g, h]) for h in H.elements}
    with pytest.raises(ValueError, match="side must be 'left'"):
        sg.coset_concentration(G, f, side="up")


def test_best_cosets_finds_the_planted_subgroup():
    G = get_group("S5")
    subs = sg.subgroups(G)
    f20 = next(H for H in subs if H.name == "F20")        # maximal in S5: nothing larger but S5 contains it
    labels = sg.coset_labels(G, f20, side="left")
    values = torch.randn(G.order, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    planted = values[labels]
    f = torch.stack([planted, planted[G.inverses], values], 1)
    left = sg.best_cosets(G, f, side="left", threshold=0.999)
    assert left.subgroups[int(left.index[0])] == f20 and int(left.order[0]) == 20
    assert float(left.fraction[0]) == pytest.approx(1.0)
    right = sg.best_cosets(G, f, side="right", threshold=0.999)
    assert right.subgroups[int(right.index[1])] == f20
    assert int(left.index[2]) == -1 and int(left.order[2]) == 0 and torch.isnan(left.fraction[2])


def test_point_stabiliser_cosets_in_sn():
    """With a * b = "a first, then b" (i -> b[a[i]]), left cosets of Stab(k) fix the preimage of k,
    right cosets fix the image of k (the convention the module docstring states)."""
    G = get_group("S4")
    E = G.elements
    k = 2
    H = [g for g in range(G.order) if E[g][k] == k]
    preimage = np.array([list(E[g]).index(k) for g in range(G.order)])
    for side, key in (("left", preimage), ("right", E[:, k])):
        labels = sg.coset_labels(G, H, side=side).numpy()
        assert ((labels[:, None] == labels[None, :]) == (key[:, None] == key[None, :])).all(), side
