"""rho-sets (rep_theory.algebra.rhosets): smallest orbit sizes of irreps of S4, S5, A5 (known values:
|G| / largest subgroup with a fixed vector), fixed dimensions against null spaces, orbit-stabiliser."""

import numpy as np
import pytest
import torch

from rep_theory.algebra import rhosets as rs
from rep_theory.algebra import subgroups as sg
from rep_theory.algebra.groups import get_group

MIN_SIZES = {
    "S5": {"trivial": 1, "sign": 2, "standard": 5, "standard_sign": 10, "s5_5d_a": 6, "s5_5d_b": 10, "s5_6d": 20},
    "S4": {"trivial": 1, "sign": 2, "standard": 4, "standard_sign": 6, "s4_2_2": 3},
    "A5": {"trivial": 1, "standard": 5, "a5_5d_a": 6, "a5_3d_a": 12, "a5_3d_b": 12},
}


@pytest.fixture(autouse=True)
def _cache(tmp_cache):
    yield


@pytest.mark.parametrize("spec", list(MIN_SIZES))
def test_min_rho_set_sizes(spec):
    G = get_group(spec)
    assert [r.name for r in G.irreps()] == list(MIN_SIZES[spec])   # the names the table refers to
    assert {r.name: rs.min_rho_set_size(G, r.name) for r in G.irreps()} == MIN_SIZES[spec]
    assert G.irrep("s4_2_2" if spec == "S4" else "standard").dim in (2, 4)


def _null_space_dim(G, rho, elements):
    """dim of {v : rho(h) v = v for all h}: the null space of the stacked rho(h) - I."""
    m = torch.cat([rho.matrices[h] - torch.eye(rho.dim, dtype=torch.float64) for h in elements]).numpy()
    s = np.linalg.svd(m, compute_uv=False)
    return int(rho.dim - (s > 1e-9).sum())


@pytest.mark.parametrize("spec", ["S4", "A5", "Q8", "C4xC6"])
def test_fixed_dimension_is_the_null_space_dimension(spec):
    G = get_group(spec)
    for c in sg.subgroup_classes(G):
        H = c.representative
        for r in G.irreps():
            k = rs.fixed_dimension(G, r, H)
            assert k == _null_space_dim(G, r, H.elements), (c.name, r.name)
            basis = rs.fixed_space(G, r, H)
            assert basis.shape == (r.dim, k)
            if k:
                torch.testing.assert_close(r.matrices[H.indices] @ basis, basis.expand(H.order, -1, -1),
                                           atol=1e-10, rtol=0)
                if r.kind != "real":                       # complex / quaternionic: fixed spaces come in 2s / 4s
                    assert k % {"complex": 2, "quaternionic": 4}[r.kind] == 0


def _count_distinct(vectors, atol=1e-8):
    distinct = []
    for v in vectors:
        if not any(float((v - w).abs().max()) <= atol for w in distinct):
            distinct.append(v)
    return len(distinct)


@pytest.mark.parametrize("spec", ["S4", "S5", "A5", "D5", "C4xC6"])
def test_orbit_stabiliser(spec):
    G = get_group(spec)
    gen = torch.Generator().manual_seed(0)
    for r in G.irreps():
        for b in (None, torch.randn(r.dim, generator=gen, dtype=torch.float64)):
            orbit = rs.rho_set(G, r, b)
            images = r.matrices @ orbit.b
            assert orbit.size == _count_distinct(images)                        # brute-force distinct images
            assert orbit.size * orbit.stabilizer.order == G.order
            torch.testing.assert_close(orbit.vectors[orbit.labels], images, atol=1e-10, rtol=0)
            fixed = r.matrices[orbit.stabilizer.indices] @ orbit.b
            torch.testing.assert_close(fixed, orbit.b.expand_as(fixed), atol=1e-8, rtol=0)
            assert orbit.size >= rs.min_rho_set_size(G, r)
            if b is None:
                assert orbit.size == rs.min_rho_set_size(G, r)


def test_s5_smallest_rho_sets_are_fixed_by_the_expected_subgroups():
    best = {r: [c.name for c in rs.min_rho_set_subgroups("S5", r)] for r in MIN_SIZES["S5"]}
    assert best["standard"] == ["S4"] and best["sign"] == ["A5"] and best["s5_5d_a"] == ["F20"]
    assert rs.rho_set("S5", "s5_5d_a").stabilizer.name == "F20"


def test_errors_and_table():
    G = get_group("S4")
    with pytest.raises(KeyError, match="no irrep named 'nope'"):
        rs.min_rho_set_size(G, "nope")
    three_cycle = int(torch.nonzero(G.element_orders() == 3)[0])
    with pytest.raises(ValueError, match=rf"not a subgroup of S4: {three_cycle} \* {three_cycle} = \d+ is not in H"):
        rs.fixed_dimension(G, "standard", [0, three_cycle])
    with pytest.raises(ValueError, match=r"shape \[3\]"):
        rs.rho_set(G, "standard", torch.zeros(3))
    text = rs.format_rho_set_table(G)
    rows = text.splitlines()[3:]
    assert [row.split()[0] for row in rows] == list(MIN_SIZES["S4"])
    assert [int(row.split()[3]) for row in rows] == list(MIN_SIZES["S4"].values())
