"""Real irreducible representations of finite groups (layer 2).

Every irrep is a small immutable value, :class:`Irrep`, keyed by ``(group name, irrep name)``, with
orthogonal float64 matrices ``[n, d, d]`` satisfying ``matrices[a] @ matrices[b] == matrices[table[a, b]]``.

``kind`` is the Frobenius-Schur type of the real irrep: ``"real"`` (absolutely irreducible; its
character has norm 1), ``"complex"`` (the realification of a pair of complex-conjugate irreps; norm
2) or ``"quaternionic"`` (norm 4).  Over all irreps, ``sum(dim**2 / {1, 2, 4}[kind]) == |G|``.

Naming (the paper's exact names wherever it named one):

========  ===================================================================================
family    names, in order
========  ===================================================================================
C<n>      ``trivial``, ``sign`` (n even: k -> (-1)^k), ``freq_f`` for 1 <= f < n/2: rotation by
          2 pi f k / n (kind ``complex``)
D<n>      ``trivial``, ``sign`` (s -> -1), for even n ``sign_r`` (r -> -1, s -> 1) and ``sign_rs``
          (r -> -1, s -> -1), then ``freq_f`` for 1 <= f < n/2: r^k s^e -> R(2 pi f k/n) diag(1,-1)^e
========  ===================================================================================
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from rep_theory.groups import Group

__all__ = ["Irrep", "group_irreps", "cyclic_irreps", "dihedral_irreps", "KINDS"]

KINDS = {"real": 1, "complex": 2, "quaternionic": 4}
"""Frobenius-Schur type -> squared norm of the real character (= dim of the commutant)."""


class Irrep:
    """A real irreducible representation: a value keyed by ``(group, name)``.

    Attributes
    ----------
    group : str            the group's name (spec)
    name : str             e.g. ``"standard"``, ``"freq_7"``
    dim : int              ``d``
    kind : str             ``"real" | "complex" | "quaternionic"``
    matrices : torch.float64 ``[n, d, d]``   orthogonal, ``rho(a) @ rho(b) == rho(ab)``
    character : torch.float64 ``[n]``        trace of each matrix
    """

    __slots__ = ("_group", "_name", "_kind", "_matrices", "_character")

    def __init__(self, group: str | Group, name: str, matrices, kind: str):
        if kind not in KINDS:
            raise ValueError(f"irrep kind must be one of {sorted(KINDS)}, got {kind!r}")
        m = torch.as_tensor(matrices, dtype=torch.float64)
        if m.ndim != 3 or m.shape[1] != m.shape[2]:
            raise ValueError(f"irrep matrices must have shape [n, d, d], got {tuple(m.shape)}")
        self._group = str(group)
        self._name = str(name)
        self._kind = kind
        self._matrices = m.contiguous()
        self._character = torch.diagonal(m, dim1=1, dim2=2).sum(-1)

    group = property(lambda self: self._group)
    name = property(lambda self: self._name)
    kind = property(lambda self: self._kind)
    matrices = property(lambda self: self._matrices)
    character = property(lambda self: self._character)
    dim = property(lambda self: int(self._matrices.shape[1]))

    def __repr__(self) -> str:
        return f"{self._group}:{self._name}(d={self.dim})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Irrep) and (other._group, other._name) == (self._group, self._name)

    def __hash__(self) -> int:
        return hash(("Irrep", self._group, self._name))


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


_CLOSED_FORMS = {
    "C": cyclic_irreps,
    "D": dihedral_irreps,
}


def group_irreps(G: Group) -> list[Irrep]:
    """Every real irrep of ``G``, trivial first, in the documented deterministic order."""
    m = re.fullmatch(r"(C|D)(\d+)", G.name)
    if m:
        return _CLOSED_FORMS[m.group(1)](G, int(m.group(2)))
    raise NotImplementedError(f"irreps of {G.name} are not implemented yet")
