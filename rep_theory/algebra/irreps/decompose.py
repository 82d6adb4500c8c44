"""Splitting a real representation into irreducibles, and the generic route for any group.

* :func:`distinct_components`: the eigenspaces of a generic element of the commutant (the group
  average of ``rho(g) A rho(g)^T`` for a random symmetric ``A``) are irreducible.
* :func:`regular_irreps`: every real irrep of any finite group, from the eigenspaces of a random
  symmetric element of the right-regular group algebra (see the package docstring).

Random numbers come from fixed seeds, so names and order are stable.
"""

from __future__ import annotations

import logging
import string

import numpy as np

from rep_theory.algebra.groups import Group
from rep_theory.algebra.irreps.irrep import FS_INDICATORS, KINDS, Irrep, kind_of, squares

__all__ = ["irreducible_parts", "distinct_components", "regular_irreps", "letters", "tie_break_key"]

logger = logging.getLogger(__name__)

_SEEDS = (0, 1, 2)    # fixed seeds of the numerical splittings, tried in turn


def irreducible_parts(G: Group, name: str, mats: np.ndarray) -> list[Irrep]:
    """``mats`` as one irrep called ``name`` if it is irreducible over R, else its distinct
    components called ``name_a``, ``name_b``, ... (in :func:`distinct_components` order)."""
    parts = distinct_components(mats, squares(G))
    if len(parts) == 1:
        return [Irrep(G, name, parts[0][0], parts[0][1])]
    return [Irrep(G, f"{name}_{letters(j)}", m, kind) for j, (m, kind) in enumerate(parts)]

def _cluster(values: np.ndarray, tol: float) -> list[np.ndarray]:
    """Indices of sorted ``values`` grouped where consecutive gaps are below ``tol``."""
    breaks = np.nonzero(np.diff(values) > tol)[0] + 1
    return np.split(np.arange(len(values)), breaks)

def tie_break_key(character: np.ndarray) -> tuple:
    """Sort key putting the larger character first at the first element where two differ."""
    return tuple(-np.round(character, 6))


def distinct_components(mats: np.ndarray, squares: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """Split the real orthogonal representation ``mats`` (``[n, D, D]``) into irreducibles
    (``squares[g]`` is the index of ``g*g``).

    Returns one ``(matrices [n, d, d], kind)`` per distinct irreducible constituent, ordered by the
    ``_a``/``_b`` tie-break.  The group average ``C = mean_g rho(g) A rho(g)^T`` of a random
    symmetric ``A`` lies in the commutant; its eigenspaces are irreducible (for generic ``A``).
    """
    n, D, _ = mats.shape
    for seed in _SEEDS:
        rng = np.random.default_rng(seed)
        a = rng.standard_normal((D, D))
        a = a + a.T
        avg = np.einsum("gij,jk,glk->il", mats, a, mats, optimize=True) / n
        w, v = np.linalg.eigh((avg + avg.T) / 2)
        found: dict[tuple, tuple[np.ndarray, str]] = {}
        ok = True
        for idx in _cluster(w, 1e-7 * max(1.0, float(np.abs(w).max()))):
            u = v[:, idx]
            sub = np.einsum("ai,gab,bj->gij", u, mats, u, optimize=True)
            chi = np.trace(sub, axis1=1, axis2=2)
            try:
                kind = kind_of(chi, squares)
            except ValueError:
                ok = False
                break
            found.setdefault(tie_break_key(chi), (sub, kind))
        if ok:
            return [found[key] for key in sorted(found)]
        logger.debug("splitting with seed %d found a reducible eigenspace; trying the next seed", seed)
    raise RuntimeError(f"could not split a {D}-dimensional representation of a group of order {n} "
                       f"into irreducibles with seeds {_SEEDS}")


def letters(j: int) -> str:
    """0 -> 'a', 25 -> 'z', 26 -> 'aa', ... (spreadsheet columns, lower case)."""
    out = ""
    j += 1
    while j:
        j, r = divmod(j - 1, 26)
        out = string.ascii_lowercase[r] + out
    return out


# --- the generic route: the regular representation --------------------------------------------------
def regular_irreps(G: Group) -> list[Irrep]:
    """Every real irrep of any finite group, from eigenspaces of a random symmetric element of the
    right-regular group algebra (see the module docstring).  Named ``trivial``, ``1d_a``, ...

    Costs one ``[n, n]`` symmetric eigendecomposition.
    """
    table, inv = G.table.numpy(), G.inverses.numpy()
    n = G.order
    real_classes = G.real_classes()
    reps = np.array([cls[0] for cls in real_classes])
    sizes = np.array([len(cls) for cls in real_classes], dtype=np.float64)
    class_of = np.empty(n, dtype=np.int64)
    for j, cls in enumerate(real_classes):
        class_of[cls] = j
    square_class = class_of[squares(G)[reps]]  # real class of rep^2, for the Frobenius-Schur indicator
    for seed in _SEEDS:
        rng = np.random.default_rng(seed)
        c = rng.standard_normal(n)
        c = (c + c[inv]) / 2  # c[h] = c[h^-1] makes M symmetric
        m = c[table[inv]].T   # M[x, y] = c[table[inv[y], x]]: right multiplication by sum_h c[h] h
        w, v = np.linalg.eigh(m)
        found: dict[tuple, tuple[np.ndarray, str]] = {}
        ok = True
        for idx in _cluster(w, 1e-7 * max(1.0, float(np.abs(w).max()))):
            u = v[:, idx]
            # chi(g) = trace(U^T L(g) U) = sum_x <U[g x], U[x]>, on one element per real class
            chi_cls = np.einsum("cxi,xi->c", u[table[reps]], u)
            norm = float(np.sum(sizes * chi_cls ** 2) / n)
            indicator = float(np.sum(sizes * chi_cls[square_class]) / n)
            kind = next((k for k in KINDS if abs(norm - KINDS[k]) < 1e-6
                         and abs(indicator - FS_INDICATORS[k]) < 1e-6), None)
            if kind is None:  # two constituents share an eigenvalue: try another random element
                ok = False
                break
            found.setdefault(tuple(np.round(chi_cls, 6)), (u, kind))
        if ok and len(found) == len(real_classes):
            break
        logger.debug("regular decomposition of %s with seed %d failed; trying the next seed", G.name, seed)
    else:
        raise RuntimeError(f"could not decompose the regular representation of {G.name} with seeds {_SEEDS}")

    irreps = []
    for u, kind in found.values():
        d = u.shape[1]
        mats = np.empty((n, d, d))
        chunk = max(1, 2 ** 24 // max(1, n * d))
        for start in range(0, n, chunk):
            g = np.arange(start, min(n, start + chunk))
            mats[g] = np.einsum("gxi,xj->gij", u[table[g]], u)  # (U^T L(g) U)_ij, L(g) e_x = e_{g x}
        irreps.append((d, tie_break_key(np.trace(mats, axis1=1, axis2=2)), mats, kind))
    irreps.sort(key=lambda item: (item[0], item[1]))
    out, counters = [], {}
    for d, _, mats, kind in irreps:
        if not out:
            name = "trivial"
        else:
            j = counters.get(d, 0)
            counters[d] = j + 1
            name = f"{d}d_{letters(j)}"
        out.append(Irrep(G, name, mats, kind))
    return out
