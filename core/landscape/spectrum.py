"""The Hessian's spectrum from Hessian-vector products alone: Lanczos, Hutchinson, SLQ.

Everything here sees the Hessian only as ``hvp(v) -> H v`` (:func:`core.hessian.hvp_of`), so
it works for any model, and for a dense matrix in the tests (``lambda v: H @ v``).

- :func:`lanczos`: the Krylov tridiagonalisation ``Q^T H Q = T``, with full
  reorthogonalisation (plain Lanczos loses orthogonality as soon as a Ritz value converges and
  then reports it twice; against every earlier vector, twice, as Paige's analysis advises).
- :func:`top_eigenvalues`: the largest eigenvalues as Ritz values of ``T``, run until their
  residuals ``|beta_m s_mi|`` are below ``tol`` relative (each residual bounds how far a Ritz
  value is from an eigenvalue of H).
- :func:`hutchinson`: ``tr H = E[v^T H v]`` over Rademacher ``v``, with the standard error of
  the mean.
- :func:`slq_density`: stochastic Lanczos quadrature (Ghorbani, Krishnan and Xiao, 2019): the
  eigenvalues of each run's ``T`` are Gauss quadrature nodes, the squared first components of
  its eigenvectors their weights; the spectral density is their Gaussian-broadened mix.

Each is a generator (``*_iter``) that yields once per product and returns its result, so a
long analysis can report progress and be stopped between any two products (``yield from``);
the plain functions run one to the end (``should_stop`` checked between products, raising
``InterruptedError``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np
import torch

from core.hessian import HVP

Stop = Callable[[], bool]
Steps = Generator[int, None, "object"]  # yields 1 per Hessian-vector product, returns a result


def drain(steps: Generator, should_stop: Stop | None = None):
    """Run ``steps`` to the end and return its result; ``should_stop`` is asked between
    products (``InterruptedError`` when it says stop)."""
    while True:
        if should_stop is not None and should_stop():
            steps.close()
            raise InterruptedError("stopped")
        try:
            next(steps)
        except StopIteration as end:
            return end.value


class SpectrumError(ValueError):
    """A curvature measure that cannot be computed (the message says why)."""


@dataclass(frozen=True)
class Tridiagonal:
    """``T = Q^T H Q`` of a Lanczos run: ``alpha`` its diagonal (m,), ``beta`` its
    off-diagonal (m-1,), ``q`` the orthonormal basis (m, P) when kept, and ``residual`` the
    norm of the next Lanczos vector (0 when the Krylov space is invariant: T is exact)."""

    alpha: np.ndarray  # (m,)
    beta: np.ndarray  # (m-1,)
    residual: float
    q: torch.Tensor | None = None  # (m, P)

    @property
    def m(self) -> int:
        return len(self.alpha)

    def eig(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values (ascending) and the eigenvectors of T as columns (m, m)."""
        t = np.diag(self.alpha) + np.diag(self.beta, 1) + np.diag(self.beta, -1)  # (m, m)
        return np.linalg.eigh(t)


def _check(x: torch.Tensor, what: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise SpectrumError(
            f"the {what} is not finite at these weights (the loss or its gradient overflows: "
            "a diverged checkpoint?)"
        )


def lanczos_iter(
    hvp: HVP,
    v0: torch.Tensor,
    steps: int,
    converged: Callable[[Tridiagonal], bool] | None = None,
) -> Steps:
    """``steps`` Lanczos steps from ``v0`` with full reorthogonalisation; stops early when the
    Krylov space is invariant or ``converged(T so far)`` says so. Keeps the basis ``q``."""
    n = v0.numel()
    steps = max(1, min(steps, n))
    q = torch.zeros(steps, n, dtype=v0.dtype, device=v0.device)  # (m, P)
    q[0] = v0 / v0.norm()
    alpha: list[float] = []
    beta: list[float] = []
    residual = 0.0
    for j in range(steps):
        w = hvp(q[j])  # (P,)
        _check(w, "Hessian-vector product")
        yield 1
        alpha.append(float(q[j] @ w))
        basis = q[: j + 1]  # (j+1, P)
        for _ in range(2):  # "twice is enough" (Parlett): orthogonal to working precision
            w = w - basis.T @ (basis @ w)
        residual = float(w.norm())
        # an invariant subspace: T's eigenvalues are exactly eigenvalues of H
        if residual <= 1e-10 * max(1.0, max(abs(x) for x in alpha)) or j == steps - 1:
            break
        if converged is not None and converged(
            Tridiagonal(np.array(alpha), np.array(beta), residual)
        ):
            break
        beta.append(residual)
        q[j + 1] = w / residual
    m = len(alpha)
    return Tridiagonal(np.array(alpha), np.array(beta[: m - 1]), residual, q[:m])


def lanczos(hvp: HVP, v0: torch.Tensor, steps: int, should_stop: Stop | None = None) -> Tridiagonal:
    """:func:`lanczos_iter` run to the end."""
    return drain(lanczos_iter(hvp, v0, steps), should_stop)


def top_eigenvalues_iter(
    hvp: HVP, v0: torch.Tensor, k: int = 5, tol: float = 1e-6, max_steps: int = 100
) -> Steps:
    """The ``k`` largest (algebraic: the top of the spectrum) eigenvalues, descending, their
    unit eigenvectors (k, P) and the Lanczos steps taken. Lanczos until every one of the ``k``
    Ritz pairs has a residual ``|beta_m s_mi| <= tol * |theta_i|`` (which bounds the distance
    of each Ritz value to an eigenvalue), or ``max_steps``. One start vector finds one copy of
    a repeated eigenvalue (power iteration with deflation finds them all, more slowly).

    Raises ``ValueError`` for ``k`` < 1 or above the number of parameters."""
    n = v0.numel()
    if not 1 <= k <= n:
        raise ValueError(f"Invalid k: {k} (1 .. {n}, the number of parameters)")

    def done(t: Tridiagonal) -> bool:
        if t.m < k:
            return False
        theta, s = t.eig()
        res = np.abs(t.residual * s[-1, -k:])  # (k,) the bound on each Ritz value's error
        return bool(np.all(res <= tol * np.maximum(np.abs(theta[-k:]), 1e-30)))

    t = yield from lanczos_iter(hvp, v0, max(max_steps, k), done)
    theta, s = t.eig()
    k_found = min(k, t.m)  # an invariant Krylov space smaller than k: the rest are not seen
    vals = theta[::-1][:k_found].copy()  # (k,) descending
    sel = torch.as_tensor(s[:, ::-1][:, :k_found].copy(), dtype=v0.dtype, device=v0.device)
    vecs = (t.q.T @ sel).T  # (k, P)
    return vals, vecs, t.m


def top_eigenvalues(
    hvp: HVP,
    v0: torch.Tensor,
    k: int = 5,
    tol: float = 1e-6,
    max_steps: int = 100,
    should_stop: Stop | None = None,
) -> tuple[np.ndarray, torch.Tensor, int]:
    """:func:`top_eigenvalues_iter` run to the end."""
    return drain(top_eigenvalues_iter(hvp, v0, k, tol, max_steps), should_stop)


def rademacher(n: int, generator: torch.Generator, dtype, device) -> torch.Tensor:
    """A vector of independent +-1 entries (n,)."""
    bits = torch.randint(0, 2, (n,), generator=generator)
    return (bits * 2 - 1).to(dtype=dtype, device=device)


@dataclass(frozen=True)
class Trace:
    """Hutchinson's estimate of tr H: the mean of ``samples`` values of ``v^T H v`` and its
    standard error (the sample standard deviation over sqrt(samples))."""

    value: float
    error: float
    samples: int


def hutchinson_iter(
    hvp: HVP, n: int, samples: int, generator: torch.Generator, dtype=torch.float32, device="cpu"
) -> Steps:
    """``tr H`` from ``samples`` Rademacher probes (E[v v^T] = I, so E[v^T H v] = tr H; the
    Rademacher distribution has the least variance of all such probes, Hutchinson 1990)."""
    if samples < 2:
        raise ValueError(f"Invalid trace samples: {samples} (at least 2 for a standard error)")
    vals = []
    for _ in range(samples):
        v = rademacher(n, generator, dtype, device)  # (P,)
        hv = hvp(v)
        _check(hv, "Hessian-vector product")
        vals.append(float(v.double() @ hv.double()))
        yield 1
    a = np.array(vals)
    return Trace(float(a.mean()), float(a.std(ddof=1) / math.sqrt(samples)), samples)


def hutchinson(
    hvp: HVP,
    n: int,
    samples: int,
    generator: torch.Generator,
    dtype=torch.float32,
    device="cpu",
    should_stop: Stop | None = None,
) -> Trace:
    """:func:`hutchinson_iter` run to the end."""
    return drain(hutchinson_iter(hvp, n, samples, generator, dtype, device), should_stop)


@dataclass(frozen=True)
class Density:
    """The spectral density on a grid (it integrates to 1 over the grid), and the quadrature it
    came from: ``nodes`` (runs, m) and ``weights`` (runs, m), each run's weights summing to 1."""

    grid: np.ndarray  # (G,)
    values: np.ndarray  # (G,)
    nodes: np.ndarray  # (R, m)
    weights: np.ndarray  # (R, m)
    sigma: float  # the Gaussian's width, in eigenvalue units


def slq_nodes_iter(
    hvp: HVP,
    n: int,
    runs: int,
    steps: int,
    generator: torch.Generator,
    dtype=torch.float32,
    device="cpu",
) -> Steps:
    """Quadrature nodes and weights (runs, m) of ``runs`` Lanczos runs of ``steps`` steps from
    Rademacher starts. A run that ends early (an invariant Krylov space, as for a model with
    fewer parameters than steps) pads with zero-weight nodes."""
    if runs < 1 or steps < 1:
        raise ValueError(f"Invalid density runs/steps: {runs}/{steps} (both at least 1)")
    m = min(steps, n)
    nodes = np.zeros((runs, m))
    weights = np.zeros((runs, m))
    for r in range(runs):
        t = yield from lanczos_iter(hvp, rademacher(n, generator, dtype, device), m)
        theta, s = t.eig()
        nodes[r, : t.m] = theta
        weights[r, : t.m] = s[0] ** 2  # v's weight on each Ritz vector: Gauss quadrature
        if t.m < m:
            nodes[r, t.m :] = theta[-1]
    return nodes, weights


def broadened(
    nodes: np.ndarray, weights: np.ndarray, points: int = 1000, width: float = 0.01
) -> Density:
    """The Gaussian-broadened density of quadrature nodes on a grid of ``points`` over their
    range plus a margin; the Gaussian's standard deviation is ``width`` times that range (a
    fraction, so it reads the same for a sharp and a flat model)."""
    if points < 2 or not width > 0:
        raise ValueError(f"Invalid density grid: {points} points, width {width}")
    live = weights > 0
    lo, hi = float(nodes[live].min()), float(nodes[live].max())
    span = max(hi - lo, 1e-12 * max(1.0, abs(hi)), 1e-30)
    sigma = width * span
    grid = np.linspace(lo - 5 * sigma - 0.02 * span, hi + 5 * sigma + 0.02 * span, points)
    z = (grid[None, :] - nodes.reshape(-1)[:, None]) / sigma  # (R*m, G)
    kernel = np.exp(-0.5 * z**2) / (sigma * math.sqrt(2 * math.pi))  # (R*m, G)
    values = (weights.reshape(-1)[:, None] * kernel).sum(axis=0) / len(nodes)  # (G,)
    return Density(grid, values, nodes, weights, sigma)


def slq_density(
    hvp: HVP,
    n: int,
    runs: int = 3,
    steps: int = 80,
    generator: torch.Generator | None = None,
    points: int = 1000,
    width: float = 0.01,
    dtype=torch.float32,
    device="cpu",
    should_stop: Stop | None = None,
) -> Density:
    """The spectral density ``(1/P) sum_i delta(t - lambda_i)``, Gaussian-broadened, by
    stochastic Lanczos quadrature: :func:`slq_nodes_iter` then :func:`broadened`."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    steps_ = slq_nodes_iter(hvp, n, runs, steps, g, dtype, device)
    nodes, weights = drain(steps_, should_stop)
    return broadened(nodes, weights, points, width)


__all__ = [
    "Density",
    "SpectrumError",
    "Trace",
    "Tridiagonal",
    "broadened",
    "drain",
    "hutchinson",
    "hutchinson_iter",
    "lanczos",
    "lanczos_iter",
    "rademacher",
    "slq_density",
    "slq_nodes_iter",
    "top_eigenvalues",
    "top_eigenvalues_iter",
]
