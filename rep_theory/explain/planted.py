"""Hand-built rho-set circuits: one-layer MLPs that compute the group product exactly as Wu et al.'s
idealised network does, so the per-neuron analyses can be checked against what was planted.

Wu, Jaburi, Drori and Gross, "Towards a Unified and Verified Understanding of Group-Operation
Networks" (ICLR 2025, arXiv 2410.07476)::

    f(z | x, y) = - sum_{b, b' in B} b^T rho(z) b' ReLU[b^T rho(x) a - a^T rho(y) b']

realised as a :class:`~rep_theory.training.models.OneLayerMLP` with ``embed = hidden = |B|^2`` and
``W = [I; I]``: neuron ``(b, b')`` has ``W_x[x] = b^T rho(x) a``, ``W_y[y] = -a^T rho(y) b'`` and
``W_U[., z] = -scale * b^T rho(z) b'``.

Why it is correct (our derivation): substituting ``u = rho(x)^T b`` and ``v = rho(y) b'`` (both run
over ``B`` as ``b, b'`` do, since ``rho(G)`` permutes ``B``) gives ``f(z | x, y) = F(x^-1 z y^-1)``
with ``F(g) = -sum_{u, v in B} u^T rho(g) v ReLU[a^T u - a^T v]``, so the logit of ``z`` depends only on
``g = x^-1 z y^-1``, which is the identity exactly for the right answer ``z = xy``.  ``F(e) > F(g)`` for
every ``g`` outside ``ker rho`` is not automatic: it fails when ``a`` is orthogonal to differences of
``B``'s vectors (e.g. ``a`` in ``B`` with a non-trivial stabiliser gives ties), and it cannot hold on
``ker rho``, so ``rho`` must be faithful for 100% accuracy.  :func:`planted_rhoset_state` therefore
draws ``a`` generically (a few seeded candidates, keeping the one with the largest margin) and checks
the margin; ``scale`` sets the smallest margin of the correct logit to ``margin``.
"""

from __future__ import annotations

import dataclasses

import torch

from rep_theory.algebra.groups import Group
from rep_theory.algebra.rhosets import RhoSet, rho_set
from rep_theory.training.models import OneLayerMLP

__all__ = ["PlantedCircuit", "planted_rhoset_state", "planted_rhoset_mlp", "circuit_functions", "circuit_logits",
           "circuit_margin"]


@dataclasses.dataclass(frozen=True, eq=False)
class PlantedCircuit:
    """What was planted: the irrep, ``a`` ``[d]``, the rho-set (``B = rhoset.vectors [|B|, d]``), the
    neuron order (neuron ``k = i * |B| + i'`` is the pair ``(B[i], B[i'])``), the logit scale and margin."""

    irrep: str
    a: torch.Tensor
    rhoset: RhoSet
    scale: float
    margin: float

    @property
    def pairs(self) -> torch.Tensor:
        """``[|B|^2, 2]`` LongTensor: the ``(i, i')`` of each neuron."""
        m = self.rhoset.size
        k = torch.arange(m * m)
        return torch.stack([k // m, k % m], dim=1)


def circuit_functions(G: Group, rho, B: torch.Tensor, a: torch.Tensor):
    """``(left [n, m^2], right [n, m^2], unembed [n, m^2])`` of the circuit with unit scale, float64.

    ``B [m, d]`` the rho-set, ``a [d]``; neuron ``i * m + i'`` is the pair ``(B[i], B[i'])``:
    ``left[x] = b^T rho(x) a``, ``right[y] = -a^T rho(y) b'``, ``unembed[z] = -b^T rho(z) b'``.
    """
    R = rho.matrices.to(torch.float64)
    m = B.shape[0]
    left = torch.einsum("ui,xij,j->xu", B, R, a)                             # b^T rho(x) a       [x, b]
    right = -torch.einsum("j,yji,vi->yv", a, R, B)                           # -a^T rho(y) b'     [y, b']
    unembed = -torch.einsum("ui,zij,vj->zuv", B, R, B)                       # -b^T rho(z) b'     [z, b, b']
    n = G.order
    return (left[:, :, None].expand(n, m, m).reshape(n, m * m),
            right[:, None, :].expand(n, m, m).reshape(n, m * m),
            unembed.reshape(n, m * m))


def circuit_logits(left: torch.Tensor, right: torch.Tensor, unembed: torch.Tensor) -> torch.Tensor:
    """``[n*n, n]``: ``relu(left[x] + right[y]) @ unembed.T`` on all pairs, row-major ``x*n + y``."""
    n = left.shape[0]
    pre = (left[:, None, :] + right[None, :, :]).reshape(n * n, -1)
    return torch.relu(pre) @ unembed.T


def circuit_margin(G: Group, logits: torch.Tensor) -> float:
    """The smallest (correct logit - best wrong logit) over all pairs; positive iff 100% accuracy."""
    target = G.table.reshape(-1)
    k = torch.arange(logits.shape[0])
    correct = logits[k, target]
    wrong = logits.clone()
    wrong[k, target] = -torch.inf
    return float((correct - wrong.max(1).values).min())


def planted_rhoset_state(G: Group, irrep: str, *, b: torch.Tensor | None = None, a: torch.Tensor | None = None,
                         margin: float = 12.0, candidates: int = 16, seed: int = 0
                         ) -> tuple[dict[str, torch.Tensor], PlantedCircuit]:
    """OneLayerMLP state dict (float32) of Wu et al.'s idealised circuit in ``irrep``, and what was planted.

    ``b``: a vector whose orbit is ``B`` (default: a smallest rho-set, :func:`~rep_theory.algebra.rhosets.rho_set`);
    ``a``: default the best of ``candidates`` Gaussian draws (``torch.Generator`` seeded with ``seed``).
    Raises ``ValueError`` when the circuit does not answer every pair correctly (unfaithful ``irrep``,
    or a degenerate ``a``).
    """
    if not isinstance(G, Group):
        raise TypeError(f"G must be a Group, got {type(G).__name__}")
    rho = G.irrep(irrep)
    rs = rho_set(G, rho, b)
    B = rs.vectors.to(torch.float64)
    if a is None:
        gen = torch.Generator().manual_seed(seed)
        draws = [torch.randn(rho.dim, generator=gen, dtype=torch.float64) for _ in range(candidates)]
        draws = [x / x.norm() for x in draws]
        a = max(draws, key=lambda x: circuit_margin(G, circuit_logits(*circuit_functions(G, rho, B, x))))
    a = torch.as_tensor(a, dtype=torch.float64)
    if a.shape != (rho.dim,):
        raise ValueError(f"a must have shape [{rho.dim}] for {irrep} of {G.name}, got {tuple(a.shape)}")
    left, right, unembed = circuit_functions(G, rho, B, a)
    raw = circuit_margin(G, circuit_logits(left, right, unembed))
    if not raw > 1e-9:
        raise ValueError(f"the rho-set circuit of {irrep} on {G.name} (|B| = {rs.size}) does not separate the "
                         f"correct answer (margin {raw:.3g}); expected a faithful irrep and a generic a")
    scale = margin / raw
    width = left.shape[1]
    eye = torch.eye(width, dtype=torch.float64)
    state = {"W_x": left.float(), "W_y": right.float(), "W": torch.cat([eye, eye]).float(),
             "W_U": (scale * unembed).T.contiguous().float()}
    return state, PlantedCircuit(irrep, a, rs, scale, margin)


def planted_rhoset_mlp(G: Group, irrep: str, **kwargs) -> tuple[OneLayerMLP, PlantedCircuit]:
    """:func:`planted_rhoset_state` loaded into a :class:`OneLayerMLP` (``embed = hidden = |B|^2``)."""
    state, circuit = planted_rhoset_state(G, irrep, **kwargs)
    width = state["W_U"].shape[0]
    model = OneLayerMLP(G.order, embed_dim=width, hidden_dim=width)
    model.load_state_dict(state)
    return model.eval(), circuit
