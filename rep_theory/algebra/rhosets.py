"""rho-sets: orbits ``{rho(g) b : g in G}`` of a vector under an irrep, and their smallest size.

Wu, Jaburi, Drori and Gross, "Towards a Unified and Verified Understanding of Group-Operation
Networks", ICLR 2025 (arXiv 2410.07476), describe the neurons of networks trained on group
composition through *rho-sets*: a neuron's weights are ``rho(g) b`` for ``g`` running over the
group, so they form the orbit of ``b``.  The orbit of ``b`` has ``|G| / |Stab(b)|`` elements
(orbit-stabiliser), and ``b`` is fixed by ``Stab(b)``; conversely a vector fixed by a subgroup ``H``
has an orbit of at most ``|G| / |H|`` elements.  Hence the smallest rho-set::

    min_rho_set_size(rho) = |G| / max{|H| : H <= G, V_rho^H != 0},   dim V^H = (1/|H|) sum_{h in H} chi(h)

(the dimension of the fixed space is the multiplicity of the trivial irrep in the restriction to ``H``).
Fixed dimensions are real dimensions, so for an irrep of complex or quaternionic kind they are even
or multiples of four.  Subgroups come from :mod:`rep_theory.algebra.subgroups`; only one
subgroup per conjugacy class is needed, since conjugate subgroups have fixed spaces of equal dimension.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch

from rep_theory.algebra.groups import Group, get_group

# Absolute import: the folder has no __init__.py yet, and tools that import this file by path
# (pytest --doctest-modules) would not know a parent package for a relative import.
from rep_theory.algebra import subgroups as _sg

__all__ = ["RhoSet", "fixed_dimension", "fixed_space", "min_rho_set_size", "min_rho_set_subgroups", "rho_set",
           "format_rho_set_table"]


def _irrep(G: Group, rho):
    """The irrep ``rho`` (an :class:`~rep_theory.algebra.irreps.Irrep` of ``G`` or its name)."""
    if isinstance(rho, str):
        return G.irrep(rho)  # KeyError lists the names
    if getattr(rho, "group", None) != G.name or not hasattr(rho, "matrices"):
        raise ValueError(f"rho must be an irrep of {G.name} or its name, got {rho!r}")
    return rho


def _elements(G: Group, H) -> np.ndarray:
    e = np.asarray(H.elements if isinstance(H, _sg.Subgroup) else torch.as_tensor(H).cpu().numpy(),
                   dtype=np.int64).reshape(-1)
    if e.size == 0 or e.min() < 0 or e.max() >= G.order:
        raise ValueError(f"H must hold element indices in [0, {G.order}) of {G.name}, got {e.tolist()[:12]}")
    e = np.unique(e)
    products = G.table.numpy()[np.ix_(e, e)]
    outside = ~np.isin(products, e)
    if outside.any():
        i, j = np.argwhere(outside)[0]
        raise ValueError(f"H = {e.tolist()[:12]}{'...' if e.size > 12 else ''} is not a subgroup of {G.name}: "
                         f"{e[i]} * {e[j]} = {products[i, j]} is not in H")
    return e


def fixed_dimension(G: Group | str, rho, H) -> int:
    """``dim V_rho^H = (1/|H|) sum_{h in H} chi_rho(h)``: the (real) dimension of the ``H``-fixed vectors.

    ``rho``: an irrep of ``G`` or its name; ``H``: a :class:`~rep_theory.algebra.subgroups.Subgroup`
    or a sequence of element indices forming a subgroup (a ``ValueError`` names a product outside it).
    """
    G = get_group(G)
    r = _irrep(G, rho)
    e = _elements(G, H)
    value = float(r.character[torch.from_numpy(e)].sum()) / len(e)
    k = round(value)
    if abs(value - k) > 1e-6:
        raise ValueError(f"the character of {r.name} averages to {value:.6f} over H (|H| = {len(e)}), "
                         f"not an integer: H is not a subgroup of {G.name}")
    return int(k)


def fixed_space(G: Group | str, rho, H) -> torch.Tensor:
    """``[d, k]`` orthonormal basis of ``V_rho^H`` (``k = fixed_dimension``), float64.

    The average ``P = (1/|H|) sum_h rho(h)`` is the orthogonal projector onto the fixed vectors
    (``rho`` is orthogonal), so its eigenvectors of eigenvalue 1 are a basis.
    """
    G = get_group(G)
    r = _irrep(G, rho)
    e = _elements(G, H)
    P = r.matrices[torch.from_numpy(e)].mean(0)
    P = (P + P.T) / 2
    w, v = torch.linalg.eigh(P)
    return v[:, w > 0.5].flip(1)


def min_rho_set_subgroups(G: Group | str, rho) -> list:
    """The conjugacy classes of subgroups (:class:`~rep_theory.algebra.subgroups.SubgroupClass`)
    of the largest order among those with a non-zero fixed vector in ``rho``."""
    G = get_group(G)
    r = _irrep(G, rho)
    classes = sorted(_sg.subgroup_classes(G), key=lambda c: -c.order)
    best: list = []
    for c in classes:
        if best and c.order < best[0].order:
            break
        if fixed_dimension(G, r, c.representative) > 0:
            best.append(c)
    return best  # never empty: the trivial subgroup fixes everything


def min_rho_set_size(G: Group | str, rho) -> int:
    """``|G| / max{|H| : V_rho^H != 0}``: the smallest orbit ``{rho(g) b}`` of a non-zero vector ``b``."""
    G = get_group(G)
    return G.order // min_rho_set_subgroups(G, rho)[0].order


@dataclasses.dataclass(frozen=True, eq=False)
class RhoSet:
    """The orbit of ``b`` under ``rho``.

    Attributes
    ----------
    irrep : str
    b : float64 ``[d]``               the starting vector
    vectors : float64 ``[size, d]``   the distinct ``rho(g) b``, in order of first appearance over ``g``
    labels : long ``[n]``             ``rho(g) b == vectors[labels[g]]``; constant on the left cosets ``g Stab``
    stabilizer : Subgroup             ``{g : rho(g) b = b}``, with its class and identification
    """

    irrep: str
    b: torch.Tensor
    vectors: torch.Tensor
    labels: torch.Tensor
    stabilizer: "_sg.Subgroup"

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])


def rho_set(G: Group | str, rho, b=None, *, atol: float = 1e-8) -> RhoSet:
    """The rho-set ``{rho(g) b : g in G}`` of ``b``, deduplicated with tolerance ``atol``, and its stabiliser.

    ``b`` ``[d]``: default, a unit vector fixed by a largest subgroup with a fixed vector, so the
    result is a smallest rho-set (``size == min_rho_set_size``).  Two images count as equal when they
    differ by at most ``atol`` (max-norm); a ``ValueError`` reports a tolerance so loose that the
    near-stabiliser is not a subgroup.
    """
    if not atol >= 0:
        raise ValueError(f"atol must be >= 0, got {atol}")
    G = get_group(G)
    r = _irrep(G, rho)
    if b is None:
        b = fixed_space(G, r, min_rho_set_subgroups(G, r)[0].representative)[:, 0]
    b = torch.as_tensor(b).to(torch.float64)
    if b.shape != (r.dim,) or not bool(b.abs().max() > atol):
        raise ValueError(f"b must be a non-zero vector of shape [{r.dim}] for {r.name}, got shape "
                         f"{tuple(b.shape)} and max |b| = {float(b.abs().max()) if b.numel() else 0.0:g}")
    images = r.matrices @ b                                                 # [n, d]: rho(g) b
    stab = tuple(np.flatnonzero(((images - b).abs().max(1).values <= atol).numpy()).tolist())
    table = G.table.numpy()
    e = np.asarray(stab)
    if not np.isin(table[np.ix_(e, e)], e).all():
        raise ValueError(f"with atol={atol:g} the elements fixing b are not closed under the product; use a smaller atol")
    by_elements = {H.elements: H for H in _sg.subgroups(G)}
    stabilizer = by_elements[stab]
    # rho(g) b = rho(g') b  iff  g^-1 g' fixes b  iff  g' in g Stab: one vector per left coset
    cosets = _sg.coset_labels(G, stab, side="left")
    # the labels are each coset's smallest element, so sorted labels follow first appearance
    firsts, labels = np.unique(cosets.numpy(), return_inverse=True)
    vectors = images[torch.from_numpy(firsts)]
    spread = float((images - vectors[torch.from_numpy(labels)]).abs().max())
    if spread > max(atol, 1e-9) * 10:
        raise ValueError(f"images in one coset of the stabiliser differ by {spread:.3g} > atol={atol:g}")
    return RhoSet(r.name, b, vectors, torch.from_numpy(labels.astype(np.int64)), stabilizer)


def format_rho_set_table(G: Group | str, irreps: Sequence | None = None) -> str:
    """Plain-text table: irrep, dim, kind, smallest rho-set size and the subgroup(s) attaining it
    (type, order and number of conjugates; several conjugacy classes are joined by ``" | "``)."""
    G = get_group(G)
    irreps = G.irreps() if irreps is None else [_irrep(G, r) for r in irreps]
    rows = []
    for r in irreps:
        best = min_rho_set_subgroups(G, r)
        where = " | ".join(f"{c.name}{'' if c.name.startswith('order') else f' (order {c.order})'}, "
                           f"{c.size} conjugate{'s' if c.size > 1 else ''}" for c in best)
        rows.append((r.name, str(r.dim), r.kind, str(G.order // best[0].order), where))
    heads = ("irrep", "dim", "kind", "min size", "fixing subgroup (largest with a fixed vector)")
    widths = [max(len(h), *(len(row[j]) for row in rows)) for j, h in enumerate(heads[:-1])]
    fmt = lambda row: "  ".join(  # noqa: E731
        [f"{row[0]:<{widths[0]}}", f"{row[1]:>{widths[1]}}", f"{row[2]:<{widths[2]}}", f"{row[3]:>{widths[3]}}", row[4]])
    lines = [f"group {G.name}: smallest rho-sets |G| / max|H| over subgroups H with a fixed vector", "", fmt(heads)]
    lines += [fmt(row) for row in rows]
    return "\n".join(lines)
