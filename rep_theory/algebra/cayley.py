"""Algorithms on Cayley tables: validation, generating sets, conjugacy classes, permutation products.

Pure numpy functions of an ``[n, n]`` table (``table[a, b]`` = index of ``a * b``, identity 0); the
:class:`rep_theory.algebra.groups.Group` value object is built on them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["validate_table", "generating_set", "conjugacy_classes", "permutation_table", "parity"]


def validate_table(table: np.ndarray) -> None:
    """Raise ValueError naming the first way ``table`` fails to be a group table with identity 0."""
    if table.ndim != 2 or table.shape[0] != table.shape[1] or table.shape[0] == 0:
        raise ValueError(f"a group table must be a non-empty square [n, n] array, got shape {tuple(table.shape)}")
    if not np.issubdtype(table.dtype, np.integer):
        if not np.all(np.mod(table, 1) == 0):
            raise ValueError(f"a group table must hold integers, got dtype {table.dtype}")
    t = table.astype(np.int64)
    n = t.shape[0]
    bad = np.argwhere((t < 0) | (t >= n))
    if len(bad):
        a, b = bad[0]
        raise ValueError(f"table[{a}, {b}] = {t[a, b]} is out of range: entries must lie in [0, {n})")
    arange = np.arange(n)
    if not np.array_equal(t[0], arange) or not np.array_equal(t[:, 0], arange):
        row_bad = np.nonzero(t[0] != arange)[0]
        if len(row_bad):
            b = row_bad[0]
            raise ValueError(f"element 0 must be the identity, but table[0, {b}] = {t[0, b]} (expected {b})")
        a = np.nonzero(t[:, 0] != arange)[0][0]
        raise ValueError(f"element 0 must be the identity, but table[{a}, 0] = {t[a, 0]} (expected {a})")
    for axis, what in ((1, "row"), (0, "column")):
        sorted_lines = np.sort(t, axis=axis)
        ok = (sorted_lines == (arange[None, :] if axis == 1 else arange[:, None])).all(axis=axis)
        if not ok.all():
            k = int(np.nonzero(~ok)[0][0])
            line = t[k] if axis == 1 else t[:, k]
            counts = np.bincount(line, minlength=n)
            dup = int(np.nonzero(counts > 1)[0][0])
            raise ValueError(f"{what} {k} of the table repeats element {dup}, so element {k} has no "
                             f"{'right' if axis == 1 else 'left'} inverse (every row and column must be a permutation)")
    # Light's test: (x y) g = x (y g) for all x, y and every g of a generating set implies associativity.
    for g in generating_set(t):
        lhs = t[t, g]            # [x, y] -> (x y) g
        rhs = t[:, t[:, g]]      # [x, y] -> x (y g)
        bad = np.argwhere(lhs != rhs)
        if len(bad):
            x, y = bad[0]
            raise ValueError(f"the table is not associative: (a*b)*c != a*(b*c) for a={x}, b={y}, c={g} "
                             f"({lhs[x, y]} != {rhs[x, y]})")


def generating_set(table: np.ndarray, candidates: Sequence[int] | None = None) -> list[int]:
    """A greedy generating set of the group with Cayley table ``table`` (``[n, n]``).

    Each new generator is the first of ``candidates`` (default: every element in index order) not
    yet generated, where "generated" means reached from the identity by right-multiplying with
    generators (what Light's associativity test needs).  Passing the elements by decreasing order
    gives small sets (2 or 3 elements for S_n), which the irrep checker wants.
    """
    n = table.shape[0]
    in_sub = np.zeros(n, dtype=bool)
    in_sub[0] = True
    gens: list[int] = []
    for g in (range(n) if candidates is None else candidates):
        if in_sub.all():
            break
        if in_sub[g]:
            continue
        gens.append(int(g))
        frontier = np.nonzero(in_sub)[0]
        while len(frontier):
            products = np.unique(table[np.ix_(frontier, gens)])
            frontier = products[~in_sub[products]]
            in_sub[frontier] = True
    return gens


def conjugacy_classes(table: np.ndarray, inverses: np.ndarray) -> list[list[int]]:
    n = table.shape[0]
    assigned = np.full(n, -1, dtype=np.int64)
    classes: list[list[int]] = []
    for g in range(n):
        if assigned[g] >= 0:
            continue
        conj = np.unique(table[table[:, g], inverses])  # h g h^-1 over all h
        assigned[conj] = len(classes)
        classes.append(conj.tolist())
    return classes


def permutation_table(elements: np.ndarray) -> np.ndarray:
    """Cayley table of permutations in array form, ``a * b = i -> b[a[i]]``, elements sorted lexicographically."""
    n_el, degree = elements.shape
    base = degree ** np.arange(degree - 1, -1, -1, dtype=np.int64)
    codes = elements @ base  # lexicographic order == increasing code
    order = np.argsort(codes)
    if not np.array_equal(order, np.arange(n_el)):
        raise ValueError("permutation elements must be sorted lexicographically")
    table = np.empty((n_el, n_el), dtype=np.int64)
    for a in range(n_el):
        prods = elements[:, elements[a]]  # row b: i -> b[a[i]]
        table[a] = np.searchsorted(codes, prods @ base)
    return table


def parity(perm: np.ndarray) -> int:
    seen = np.zeros(len(perm), dtype=bool)
    transpositions = 0
    for i in range(len(perm)):
        length = 0
        j = i
        while not seen[j]:
            seen[j] = True
            j = perm[j]
            length += 1
        if length:
            transpositions += length - 1
    return transpositions % 2
