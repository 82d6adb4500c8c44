"""Closed forms and Young's orthogonal form: the irreps of C_n, D_n, S_n, A_n and direct products.

See :mod:`rep_theory.algebra.irreps` for the naming and order rules these functions follow.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from rep_theory.algebra.groups import Group
from rep_theory.algebra.irreps.decompose import irreducible_parts
from rep_theory.algebra.irreps.irrep import Irrep

__all__ = ["cyclic_irreps", "dihedral_irreps", "symmetric_irreps", "alternating_irreps", "product_irreps",
           "partitions", "conjugate_partition", "young_generators", "PAPER_IRREP_NAMES"]

PAPER_IRREP_NAMES: dict[str, dict[tuple[int, ...], str]] = {
    "S5": {(2, 2, 1): "s5_5d_a", (3, 2): "s5_5d_b", (3, 1, 1): "s5_6d"},
    "S6": {(3, 3): "s6_5d_a", (2, 2, 2): "s6_5d_b"},
    "A5": {(3, 2): "a5_5d_a", (3, 1, 1): "a5_3d"},  # (3,1,1) splits: a5_3d_a, a5_3d_b
}
"""The one table of the paper's irrep names that do not follow the generic rules: group spec ->
``{partition: name}``, in the order the irreps are listed (after trivial, sign, standard and
standard_sign).  A split self-conjugate partition's name gets ``_a`` / ``_b``."""


# --- closed forms: cyclic and dihedral ------------------------------------------------------------
def _rotation(theta: np.ndarray) -> np.ndarray:
    """``[..., 2, 2]`` rotation matrices by ``theta``."""
    c, s = np.cos(theta), np.sin(theta)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def cyclic_irreps(G: Group, n: int) -> list[Irrep]:
    """Closed forms for ``C<n>`` (element k is k)."""
    k = np.arange(n)
    out = [Irrep(G, "trivial", np.ones((n, 1, 1)), "real")]
    if n % 2 == 0:
        out.append(Irrep(G, "sign", ((-1.0) ** k)[:, None, None], "real"))
    for f in range(1, (n + 1) // 2):
        out.append(Irrep(G, f"freq_{f}", _rotation(2 * math.pi * f * k / n), "complex"))
    return out


def dihedral_irreps(G: Group, n: int) -> list[Irrep]:
    """Closed forms for ``D<n>`` (index ``k + e*n`` is ``r^k s^e``)."""
    idx = np.arange(2 * n)
    k, e = idx % n, idx // n
    one = lambda values: np.asarray(values, dtype=np.float64)[:, None, None]  # noqa: E731
    out = [Irrep(G, "trivial", one(np.ones(2 * n)), "real"),
           Irrep(G, "sign", one((-1.0) ** e), "real")]
    if n % 2 == 0:
        out.append(Irrep(G, "sign_r", one((-1.0) ** k), "real"))
        out.append(Irrep(G, "sign_rs", one((-1.0) ** (k + e)), "real"))
    flip = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, -1.0]]])[e]
    for f in range(1, (n + 1) // 2):
        out.append(Irrep(G, f"freq_{f}", _rotation(2 * math.pi * f * k / n) @ flip, "real"))
    return out


# --- partitions and Young's orthogonal form -------------------------------------------------------
def partitions(n: int) -> list[tuple[int, ...]]:
    """All partitions of ``n`` in descending lexicographic order: ``(n,), (n-1, 1), ..., (1,)*n``."""
    def rec(m: int, largest: int):
        if m == 0:
            yield ()
            return
        for k in range(min(m, largest), 0, -1):
            for rest in rec(m - k, k):
                yield (k,) + rest
    return list(rec(n, n))


def conjugate_partition(lam: tuple[int, ...]) -> tuple[int, ...]:
    """The transposed Young diagram: ``(3, 1, 1) -> (3, 1, 1)``, ``(3, 2) -> (2, 2, 1)``."""
    return tuple(sum(1 for part in lam if part > j) for j in range(lam[0])) if lam else ()


def _standard_tableaux(lam: tuple[int, ...]) -> list[tuple[tuple[int, int], ...]]:
    """Standard Young tableaux of shape ``lam``, each as the (row, column) of entries ``0..n-1``.

    Deterministic order: depth-first, placing each next entry in the lowest-numbered row first.
    """
    n = sum(lam)
    out: list[tuple[tuple[int, int], ...]] = []
    rows = [0] * len(lam)
    pos: list[tuple[int, int]] = []

    def place(k: int) -> None:
        if k == n:
            out.append(tuple(pos))
            return
        for r in range(len(lam)):
            if rows[r] < lam[r] and (r == 0 or rows[r - 1] > rows[r]):
                pos.append((r, rows[r]))
                rows[r] += 1
                place(k + 1)
                rows[r] -= 1
                pos.pop()

    place(0)
    return out


def young_generators(lam: tuple[int, ...]) -> np.ndarray:
    """Young's orthogonal form of the partition ``lam``: ``[n-1, d, d]`` matrices of ``s_i = (i, i+1)``.

    Basis: standard Young tableaux.  With ``a`` = content(i+1) - content(i) (content = column - row):
    ``s_i T = T`` if i, i+1 share a row, ``-T`` if they share a column, otherwise
    ``s_i T = T / a + sqrt(1 - 1/a^2) T'`` where ``T'`` swaps i and i+1.  Each matrix is a symmetric
    orthogonal involution, and together they satisfy the Coxeter relations of ``S_n``.
    """
    lam = tuple(int(p) for p in lam)
    if any(p <= 0 for p in lam) or list(lam) != sorted(lam, reverse=True):
        raise ValueError(f"a partition is a non-increasing tuple of positive integers, got {lam}")
    n = sum(lam)
    tableaux = _standard_tableaux(lam)
    index = {t: j for j, t in enumerate(tableaux)}
    d = len(tableaux)
    gens = np.zeros((max(n - 1, 0), d, d))
    for i in range(n - 1):
        for j, t in enumerate(tableaux):
            (r1, c1), (r2, c2) = t[i], t[i + 1]
            if r1 == r2:
                gens[i, j, j] = 1.0
            elif c1 == c2:
                gens[i, j, j] = -1.0
            else:
                a = (c2 - r2) - (c1 - r1)
                swapped = list(t)
                swapped[i], swapped[i + 1] = t[i + 1], t[i]
                gens[i, j, j] = 1.0 / a
                gens[i, index[tuple(swapped)], j] = math.sqrt(1.0 - 1.0 / a ** 2)
    return gens


# --- extending generator matrices to a homomorphism -----------------------------------------------
def _bfs_plan(table: np.ndarray, gens: list[int]) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """A breadth-first spanning tree of the right Cayley graph: steps ``(targets, sources, k)`` with
    ``targets = sources * gens[k]``; applying the steps in order reaches every element once."""
    n = table.shape[0]
    done = np.zeros(n, dtype=bool)
    done[0] = True
    frontier = np.array([0], dtype=np.int64)
    plan = []
    while frontier.size:
        reached = []
        for k, s in enumerate(gens):
            targets = table[frontier, s]
            keep = ~done[targets]
            targets, first = np.unique(targets[keep], return_index=True)
            if targets.size:
                plan.append((targets, frontier[keep][first], k))
                done[targets] = True
                reached.append(targets)
        frontier = np.concatenate(reached) if reached else np.zeros(0, dtype=np.int64)
    if not done.all():
        raise ValueError(f"the generators {gens} reach {int(done.sum())} of {n} elements, not all")
    return plan


def _apply_plan(plan, n: int, gen_mats: np.ndarray) -> np.ndarray:
    """``[n, d, d]`` matrices with ``rho(0) = I`` and ``rho(g s_k) = rho(g) gen_mats[k]`` along ``plan``."""
    d = gen_mats.shape[-1] if len(gen_mats) else 1
    out = np.empty((n, d, d))
    out[0] = np.eye(d)
    for targets, sources, k in plan:
        out[targets] = out[sources] @ gen_mats[k]
    return out


def _permutation_indices(G: Group, perms: np.ndarray) -> np.ndarray:
    """Element indices of the array forms ``perms`` (``[m, degree]``) in the permutation group ``G``."""
    elements = G.elements
    degree = elements.shape[1]
    base = degree ** np.arange(degree - 1, -1, -1, dtype=np.int64)
    codes = elements @ base
    perms = np.asarray(perms, dtype=np.int64).reshape(-1, degree)
    idx = np.searchsorted(codes, perms @ base)
    idx = np.minimum(idx, len(codes) - 1)
    if not np.array_equal(elements[idx], perms):
        raise ValueError(f"some of the permutations {perms.tolist()} are not elements of {G.name}")
    return idx


def _adjacent_transposition(n: int, i: int) -> np.ndarray:
    p = np.arange(n)
    p[i], p[i + 1] = i + 1, i
    return p


# --- the symmetric and alternating groups ---------------------------------------------------------
def _symmetric_plan(n: int) -> list[tuple[tuple[int, ...], str]]:
    """``(partition, name)`` of every irrep of ``S<n>``, in the documented order."""
    special: dict[tuple[int, ...], str] = {(n,): "trivial"}
    if n >= 2:
        special[(1,) * n] = "sign"
    if n >= 3:
        special[(n - 1, 1)] = "standard"
    if n >= 4:
        special[(2,) + (1,) * (n - 2)] = "standard_sign"
    special.update(PAPER_IRREP_NAMES.get(f"S{n}", {}))
    rest = [(lam, f"s{n}_" + "_".join(map(str, lam))) for lam in partitions(n) if lam not in special]
    return list(special.items()) + rest


def symmetric_irreps(G: Group, n: int) -> list[Irrep]:
    """Young's orthogonal form for every partition of ``n`` (``G`` is ``S<n>``)."""
    table = G.table.numpy()
    gens = _permutation_indices(G, np.array([_adjacent_transposition(n, i) for i in range(n - 1)])
                                ).tolist() if n > 1 else []
    plan = _bfs_plan(table, gens)
    out = []
    for lam, name in _symmetric_plan(n):
        out.append(Irrep(G, name, _apply_plan(plan, G.order, young_generators(lam)), "real"))
    return out


def _alternating_plan(n: int) -> list[tuple[tuple[int, ...], str]]:
    """``(partition, base name)`` of the restrictions kept for ``A<n>``, in the documented order."""
    special: dict[tuple[int, ...], str] = {(n,): "trivial"}
    if n >= 4:
        special[(n - 1, 1)] = "standard"
    special.update(PAPER_IRREP_NAMES.get(f"A{n}", {}))
    rest = [(lam, f"a{n}_" + "_".join(map(str, lam))) for lam in partitions(n)
            if lam not in special and lam >= conjugate_partition(lam)]
    return list(special.items()) + rest


def alternating_irreps(G: Group, n: int) -> list[Irrep]:
    """Restrictions of ``S<n>``'s Young forms to ``A<n>``, self-conjugate ones split (``G`` is ``A<n>``)."""
    table = G.table.numpy()
    s = [_adjacent_transposition(n, i) for i in range(n - 1)]
    # s_0 * s_i: apply s_0 first, then s_i (the package's product); these generate A_n.
    products = np.array([s[i][s[0]] for i in range(1, n - 1)])
    gens = _permutation_indices(G, products).tolist()
    plan = _bfs_plan(table, gens)
    out = []
    for lam, name in _alternating_plan(n):
        y = young_generators(lam)
        mats = _apply_plan(plan, G.order, np.stack([y[0] @ y[i] for i in range(1, n - 1)]))
        if lam != conjugate_partition(lam):
            out.append(Irrep(G, name, mats, "real"))
            continue
        out.extend(irreducible_parts(G, name, mats))
    return out


# --- direct products --------------------------------------------------------------------------------
def product_irreps(G: Group, factor_irreps: list[list[Irrep]]) -> list[Irrep]:
    """Irreps of ``G = H1 x H2 x ...`` (index ``(g1 * n2 + g2) * n3 + ...``) from each factor's irreps."""
    out = []
    for combo in itertools.product(*factor_irreps):
        mats = combo[0].matrices.numpy()
        for rho in combo[1:]:
            m2 = rho.matrices.numpy()
            mats = np.einsum("gij,hkl->ghikjl", mats, m2).reshape(
                mats.shape[0] * m2.shape[0], mats.shape[1] * m2.shape[1], mats.shape[1] * m2.shape[1])
        if all(rho.name == "trivial" for rho in combo):
            base = "trivial"
        else:
            base = "*".join(rho.name for rho in combo)
        non_real = [rho.kind for rho in combo if rho.kind != "real"]
        if len(non_real) <= 1:  # real (x) anything is irreducible of the other's kind
            out.append(Irrep(G, base, mats, non_real[0] if non_real else "real"))
            continue
        out.extend(irreducible_parts(G, base, mats))
    return out
