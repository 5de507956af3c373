"""Lanczos, Hutchinson and stochastic Lanczos quadrature against dense matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.landscape.spectrum import (
    SpectrumError,
    broadened,
    drain,
    hutchinson,
    lanczos,
    slq_density,
    slq_nodes_iter,
    top_eigenvalues,
)


def sym(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    return (a + a.T) / 2  # (n, n)


def test_lanczos_basis_is_orthonormal_and_tridiagonalises():
    h = sym(40)
    t = lanczos(lambda v: h @ v, torch.ones(40, dtype=torch.float64), 25)
    q = t.q  # (25, 40)
    assert torch.allclose(q @ q.T, torch.eye(t.m, dtype=torch.float64), atol=1e-12)
    dense_t = q @ h @ q.T
    expect = np.diag(t.alpha) + np.diag(t.beta, 1) + np.diag(t.beta, -1)
    np.testing.assert_allclose(dense_t.numpy(), expect, atol=1e-10)


def test_top_eigenvalues_match_eigvalsh_and_vectors_are_eigenvectors():
    h = sym(60, seed=1)
    exact = torch.linalg.eigvalsh(h).flip(0).numpy()
    v0 = torch.randn(60, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    vals, vecs, used = top_eigenvalues(lambda v: h @ v, v0, k=4, tol=1e-10, max_steps=60)
    np.testing.assert_allclose(vals, exact[:4], rtol=1e-8)
    for lam, u in zip(vals, vecs, strict=True):
        assert torch.allclose(h @ u, lam * u, atol=1e-6)
    assert used <= 60


def test_lanczos_stops_on_an_invariant_space():
    # rank 3: the Krylov space is at most 3-dimensional, so Lanczos ends exact after 3 steps
    u = torch.linalg.qr(sym(30, seed=3))[0][:, :3]  # (30, 3)
    h = u @ torch.diag(torch.tensor([5.0, 2.0, 1.0], dtype=torch.float64)) @ u.T
    vals, _, used = top_eigenvalues(lambda v: h @ v, torch.ones(30, dtype=torch.float64), k=2)
    assert used == 3 + 1 or used == 3  # the 4th product shows the residual is zero
    np.testing.assert_allclose(vals, [5.0, 2.0], rtol=1e-10)


def test_top_k_out_of_range_is_a_value_error():
    with pytest.raises(ValueError, match="Invalid k"):
        top_eigenvalues(lambda v: v, torch.ones(3), k=4)


def test_non_finite_products_are_named():
    with pytest.raises(SpectrumError, match="not finite"):
        lanczos(lambda v: v * float("nan"), torch.ones(3), 3)


def test_should_stop_interrupts_between_products():
    calls = []
    h = sym(10)

    def hvp(v):
        calls.append(1)
        return h @ v

    with pytest.raises(InterruptedError):
        lanczos(hvp, torch.ones(10, dtype=torch.float64), 10, should_stop=lambda: len(calls) >= 2)
    assert len(calls) == 2


def test_hutchinson_is_exact_for_a_diagonal_matrix():
    h = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))
    t = hutchinson(lambda v: h @ v, 10, 5, torch.Generator().manual_seed(0), torch.float64)
    assert t.value == pytest.approx(55.0)
    assert t.error == pytest.approx(0.0, abs=1e-12)  # v_i^2 = 1: no variance at all


def test_hutchinson_standard_error_is_calibrated():
    """Over many seeds the truth lies within one reported standard error about 68% of the
    time and within two about 95%: the error is a real standard error, not a guess."""
    h = sym(30, seed=4) * 2
    truth = float(h.trace())
    within1 = within2 = 0
    for seed in range(300):
        t = hutchinson(lambda v: h @ v, 30, 40, torch.Generator().manual_seed(seed), torch.float64)
        within1 += abs(t.value - truth) <= t.error
        within2 += abs(t.value - truth) <= 2 * t.error
    assert 0.58 <= within1 / 300 <= 0.78
    assert 0.90 <= within2 / 300 <= 0.99


def test_slq_with_full_steps_puts_nodes_on_the_eigenvalues():
    h = sym(12, seed=5)
    exact = torch.linalg.eigvalsh(h).numpy()
    nodes, weights = drain(
        slq_nodes_iter(lambda v: h @ v, 12, 2, 12, torch.Generator().manual_seed(0),
                       torch.float64)
    )  # fmt: skip
    for r in range(2):
        np.testing.assert_allclose(np.sort(nodes[r]), exact, atol=1e-9)
        assert weights[r].sum() == pytest.approx(1.0)


def test_slq_moments_estimate_the_normalised_trace():
    """Gauss quadrature with m nodes is exact for polynomials up to degree 2m-1, so
    sum w_j theta_j^p = v^T H^p v / |v|^2 for each run; averaged, (1/n) tr H^p."""
    h = sym(100, seed=6)
    nodes, weights = drain(
        slq_nodes_iter(lambda v: h @ v, 100, 20, 10, torch.Generator().manual_seed(1),
                       torch.float64)
    )  # fmt: skip
    for p in (1, 2, 3):
        est = float((weights * nodes**p).sum(axis=1).mean())
        truth = float(torch.trace(torch.linalg.matrix_power(h, p))) / 100
        spread = float(np.std((weights * nodes**p).sum(axis=1)) / np.sqrt(20))
        assert abs(est - truth) <= 4 * spread + 1e-9


@pytest.mark.slow
def test_density_integrates_to_one_and_matches_the_broadened_spectrum():
    h = sym(20, seed=7)
    exact = torch.linalg.eigvalsh(h).numpy()
    d = slq_density(lambda v: h @ v, 20, runs=400, steps=20, width=0.03, dtype=torch.float64)
    dx = d.grid[1] - d.grid[0]
    assert float(d.values.sum() * dx) == pytest.approx(1.0, abs=1e-3)
    # the density averaged over many Rademacher starts tends to (1/n) sum_i N(t; lambda_i)
    z = (d.grid[None, :] - exact[:, None]) / d.sigma
    target = np.exp(-0.5 * z**2).sum(axis=0) / (20 * d.sigma * np.sqrt(2 * np.pi))
    assert np.abs(d.values - target).max() <= 0.15 * target.max()


def test_broadened_rejects_a_bad_grid():
    with pytest.raises(ValueError, match="Invalid density grid"):
        broadened(np.zeros((1, 2)), np.ones((1, 2)) / 2, points=1)
