"""LIB on hand-computable cases: a linear layer (an SVD), and its edges against autograd."""

from __future__ import annotations

import pytest
import torch

from rep_theory.lenses.lib import lib_basis, lib_edges


def _whitened(N: int, d: int, seed: int) -> torch.Tensor:
    """``[N, d]`` with ``E[f f^T] = I`` exactly (orthonormal columns scaled by sqrt(N))."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(N, d, generator=g, dtype=torch.float64))
    return q * N ** 0.5


def test_linear_whitened_layer_gives_the_svd_of_the_readout():
    """E[f f^T] = I and a linear next layer y = f W read in the identity basis: M_f = W W^T, so the
    LIB basis is C = V S (left singular vectors scaled by the singular values) and Lambda = S^2."""
    g = torch.Generator().manual_seed(0)
    f = _whitened(200, 5, 1)
    W = torch.randn(5, 3, generator=g, dtype=torch.float64)
    lib = lib_basis(f, W @ W.T)
    V, S, _ = torch.linalg.svd(W, full_matrices=False)
    assert lib.C.shape == (5, 3)                              # the 2 directions W does not read are truncated
    torch.testing.assert_close(lib.lambdas, S ** 2)
    torch.testing.assert_close(lib.C.abs(), (V * S).abs())    # equal up to each column's sign
    # the functions are uncorrelated with variances Lambda
    torch.testing.assert_close(lib.fhat.T @ lib.fhat / 200, torch.diag(S ** 2), atol=1e-9, rtol=1e-9)


def test_non_white_input_general_properties():
    g = torch.Generator().manual_seed(3)
    A = torch.randn(6, 6, generator=g, dtype=torch.float64)
    f = torch.randn(500, 6, generator=g, dtype=torch.float64) @ A           # correlated inputs
    M_f = (lambda B: B @ B.T)(torch.randn(6, 4, generator=g, dtype=torch.float64))
    lib = lib_basis(f, M_f)
    gram = f.T @ f / 500
    # Lambda are the eigenvalues of G^1/2 M_f G^1/2, and E[fhat fhat^T] = diag(Lambda)
    evals, evecs = torch.linalg.eigh(gram)
    root = evecs @ torch.diag(evals.sqrt()) @ evecs.T
    expected = torch.linalg.eigvalsh(root @ M_f @ root).flip(0)[:4]
    torch.testing.assert_close(lib.lambdas[:4], expected)
    torch.testing.assert_close(lib.fhat.T @ lib.fhat / 500, torch.diag(lib.lambdas), atol=1e-8, rtol=1e-8)
    # kept directions: as many as M_f's rank; untruncated 6-d space would reconstruct f exactly
    assert lib.C.shape[1] == 4
    full = lib_basis(f, M_f + 1e-3 * torch.eye(6, dtype=torch.float64))
    torch.testing.assert_close(full.fhat @ full.dec, f)


def test_edges_match_autograd_jacobians():
    """E_ij = mean_p (d fhat^down_j / d fhat^up_i * fhat^up_i)^2 through relu(f W + c)."""
    g = torch.Generator().manual_seed(4)
    N, d, H = 40, 4, 6
    f = torch.randn(N, d, generator=g, dtype=torch.float64)
    W = torch.randn(d, H, generator=g, dtype=torch.float64)
    c = torch.randn(H, generator=g, dtype=torch.float64)
    up = lib_basis(f, torch.eye(d, dtype=torch.float64))
    C_down = torch.randn(H, 3, generator=g, dtype=torch.float64)
    pre = f @ W + c
    E = lib_edges(up.fhat, up.dec, W, (pre > 0).double(), C_down)
    expected = torch.zeros(up.C.shape[1], 3, dtype=torch.float64)
    for p in range(N):
        def down_of_up(fh):
            return torch.relu((fh @ up.dec) @ W + c) @ C_down
        J = torch.autograd.functional.jacobian(down_of_up, up.fhat[p])          # [3, k_up]
        expected += (J * up.fhat[p][None, :]).T.pow(2)
    torch.testing.assert_close(E, expected / N, rtol=1e-4, atol=1e-6)        # float32 products inside
    assert E.shape == (up.C.shape[1], 3)
