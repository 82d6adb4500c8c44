"""The irrep checker and character tables.

:func:`verify_irreps` proves that a list of matrices is the complete list of real irreps of a group
(homomorphism, orthogonality, irreducibility through the character norm and Frobenius-Schur
indicator, pairwise non-isomorphism, completeness).
"""

from __future__ import annotations

import numpy as np

from rep_theory.algebra.cayley import generating_set
from rep_theory.algebra.groups import Group
from rep_theory.algebra.irreps.irrep import FS_INDICATORS, KINDS, Irrep

__all__ = ["verify_irreps", "character_table", "format_character_table"]

_ATOL = 1e-9          # homomorphism / orthogonality tolerance of the checker


def _small_generating_set(G: Group) -> list[int]:
    """A generating set, greedily preferring elements of high order (2 or 3 elements for S_n)."""
    orders = G.element_orders().numpy()
    return generating_set(G.table.numpy(), candidates=np.lexsort((np.arange(G.order), -orders)))


def verify_irreps(G: Group, irreps: list[Irrep], *, atol: float = _ATOL) -> None:
    """Prove that ``irreps`` is the complete list of real irreps of ``G``; ``ValueError`` otherwise.

    Checks: ``irreps[0]`` is ``trivial``; names are unique and every irrep belongs to ``G``; each
    matrix is orthogonal and ``rho(0) = I``; ``rho`` is a homomorphism (every pair for small groups,
    else ``rho(g s) = rho(g) rho(s)`` for all ``g`` and a generating set, which implies every pair);
    each character's squared norm and Frobenius-Schur indicator match its kind (so each irrep is
    irreducible); characters are pairwise orthogonal (so no two are isomorphic); there is one irrep
    per real class; and ``sum(dim**2 / {1, 2, 4}[kind]) == |G|``.
    """
    n = G.order
    table = G.table.numpy()
    if not irreps:
        raise ValueError(f"{G.name}: no irreps given")
    names = [rho.name for rho in irreps]
    if names[0] != "trivial":
        raise ValueError(f"{G.name}: the first irrep must be 'trivial', got {names[0]!r}")
    dupes = sorted({x for x in names if names.count(x) > 1})
    if dupes:
        raise ValueError(f"{G.name}: irrep names must be unique, repeated: {dupes}")
    trivial = irreps[0].matrices
    if trivial.shape != (n, 1, 1) or float((trivial - 1).abs().max()) > atol:
        raise ValueError(f"{irreps[0]!r}: the trivial irrep must map every element to [[1]]")
    gens = _small_generating_set(G)
    chars = []
    for rho in irreps:
        if rho.group != G.name:
            raise ValueError(f"irrep {rho!r} belongs to group {rho.group!r}, not {G.name!r}")
        m = rho.matrices.numpy()
        d = rho.dim
        if m.shape != (n, d, d):
            raise ValueError(f"{rho!r}: matrices have shape {m.shape}, expected {(n, d, d)}")
        if not np.all(np.isfinite(m)):
            raise ValueError(f"{rho!r}: matrices hold non-finite values")
        eye = np.eye(d)
        err = np.abs(m[0] - eye).max()
        if err > atol:
            raise ValueError(f"{rho!r}: rho(identity) differs from I by {err:.3g} (tolerance {atol:g})")
        err = np.abs(m @ m.transpose(0, 2, 1) - eye).max()
        if err > atol:
            raise ValueError(f"{rho!r}: matrices are not orthogonal, max|rho rho^T - I| = {err:.3g} "
                             f"(tolerance {atol:g})")
        if n <= 256 and n * n * d ** 3 <= 5e7:  # every pair
            err = max(np.abs(m[a] @ m - m[table[a]]).max() for a in range(n))
            what = "all pairs"
        else:
            err = max(np.abs(m @ m[s] - m[table[:, s]]).max() for s in gens)
            what = f"generators {gens}"
        if err > atol:
            raise ValueError(f"{rho!r}: not a homomorphism, max|rho(a) rho(b) - rho(ab)| = {err:.3g} over "
                             f"{what} (tolerance {atol:g})")
        chi = np.trace(m, axis1=1, axis2=2)
        norm = float(np.mean(chi ** 2))
        fs = float(np.mean(chi[table[np.arange(n), np.arange(n)]]))
        if abs(norm - KINDS[rho.kind]) > 1e-6 or abs(fs - FS_INDICATORS[rho.kind]) > 1e-6:
            raise ValueError(f"{rho!r} of kind {rho.kind!r}: character norm {norm:.6f} and Frobenius-Schur "
                             f"indicator {fs:.6f}, expected {KINDS[rho.kind]} and {FS_INDICATORS[rho.kind]} "
                             f"(otherwise it is reducible or of another kind)")
        chars.append(chi)
    x = np.stack(chars)
    gram = x @ x.T / n
    np.fill_diagonal(gram, 0.0)
    i, j = np.unravel_index(np.abs(gram).argmax(), gram.shape)
    if abs(gram[i, j]) > 1e-6:
        raise ValueError(f"{irreps[i]!r} and {irreps[j]!r}: characters are not orthogonal "
                         f"(<chi, chi'> = {gram[i, j]:.6f}); they share a constituent")
    n_classes = len(G.real_classes())
    if len(irreps) != n_classes:
        raise ValueError(f"{G.name}: {len(irreps)} irreps given, but the group has {n_classes} real classes "
                         f"(one real irrep each)")
    total = sum(rho.dim ** 2 / KINDS[rho.kind] for rho in irreps)
    if abs(total - n) > 1e-6:
        raise ValueError(f"{G.name}: sum(dim^2 / kind) = {total:g}, expected |G| = {n}")


# --- character tables ---------------------------------------------------------------------------------
def _element_label(G: Group, g: int) -> str:
    if G.elements is not None:
        return "[" + ",".join(map(str, G.elements[g].tolist())) + "]"
    return str(g)


def character_table(G: Group, irreps: list[Irrep] | None = None) -> dict:
    """The group's conjugacy classes and its real character table, as JSON-ready data.

    Returns ``{"group", "order", "conjugacy_classes": [{"size", "element_order", "representative",
    "representative_label"}], "real_classes": [... same, plus "conjugacy_classes": [class indices]],
    "irreps": [{"name", "dim", "kind", "character": [value on each real class]}]}``.
    """
    irreps = G.irreps() if irreps is None else irreps
    orders = G.element_orders().numpy()
    classes = G.conjugacy_classes()
    owner = {g: i for i, cls in enumerate(classes) for g in cls}

    def describe(cls):
        rep = int(cls[0])
        return {"size": len(cls), "element_order": int(orders[rep]), "representative": rep,
                "representative_label": _element_label(G, rep)}

    real = [dict(describe(cls), conjugacy_classes=sorted({owner[g] for g in cls})) for cls in G.real_classes()]
    reps = [r["representative"] for r in real]
    rows = [{"name": rho.name, "dim": rho.dim, "kind": rho.kind,
             "character": [float(v) for v in rho.character[reps].tolist()]} for rho in irreps]
    return {"group": G.name, "order": G.order, "conjugacy_classes": [describe(c) for c in classes],
            "real_classes": real, "irreps": rows}


def _fmt(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_character_table(table: dict) -> str:
    """Plain-text rendering of :func:`character_table`'s result (values rounded to 3 decimals)."""
    lines = [f"group {table['group']}: order {table['order']}, {len(table['conjugacy_classes'])} conjugacy "
             f"classes, {len(table['real_classes'])} real classes, {len(table['irreps'])} real irreps", "",
             "conjugacy classes:", f"  {'#':>3}  {'size':>6}  {'order':>5}  representative"]
    for i, cls in enumerate(table["conjugacy_classes"]):
        lines.append(f"  {i:>3}  {cls['size']:>6}  {cls['element_order']:>5}  "
                     f"{cls['representative_label']}")
    lines += ["", "real character table (columns: real classes; size / element order / conjugacy classes):"]
    heads = [f"R{j}" for j in range(len(table["real_classes"]))]
    cells = [[_fmt(v) for v in row["character"]] for row in table["irreps"]]
    sub = [[str(c["size"]) for c in table["real_classes"]],
           [str(c["element_order"]) for c in table["real_classes"]],
           ["+".join(map(str, c["conjugacy_classes"])) for c in table["real_classes"]]]
    widths = [max(len(x) for x in [h] + [r[j] for r in cells + sub]) for j, h in enumerate(heads)]
    name_w = max([len("(classes)")] + [len(r["name"]) for r in table["irreps"]])
    kind_w = len("quaternionic")

    def row(label, dim, kind, values):
        return (f"  {label:<{name_w}}  {dim:>3}  {kind:<{kind_w}}  "
                + "  ".join(f"{v:>{w}}" for v, w in zip(values, widths)))

    lines.append(row("irrep", "dim", "kind", heads))
    lines.append(row("(size)", "", "", sub[0]))
    lines.append(row("(order)", "", "", sub[1]))
    lines.append(row("(classes)", "", "", sub[2]))
    for r, values in zip(table["irreps"], cells):
        lines.append(row(r["name"], str(r["dim"]), r["kind"], values))
    return "\n".join(lines)
