"""Curvature of the loss at a model's weights: Hessian-vector products and top eigenvalues."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from core.landscape.evaluator import EVAL_BATCH, _reduction, _sum_loss

# --- curvature -----------------------------------------------------------------------------


def hessian_eigs(
    model: nn.Module,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    k: int = 2,
    iters: int = 100,
    tol: float = 1e-6,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, torch.Tensor]:
    """The ``k`` largest-magnitude Hessian eigenvalues of the loss at the model's weights, and
    their unit eigenvectors ``(k, P)``: power iteration on Hessian-vector products (double
    backward), deflating the ones already found."""
    fn = _sum_loss(loss_fn)
    scale = 1.0 / y.numel() if _reduction(loss_fn) == "mean" else 1.0

    def terms(m: nn.Module):
        for i in range(0, len(x), EVAL_BATCH):
            yield fn(m(x[i : i + EVAL_BATCH]), y[i : i + EVAL_BATCH]) * scale

    return hessian_eigs_of(model, terms, k, iters, tol, seed, should_stop)


def hessian_eigs_of(
    model: nn.Module,
    terms: Callable[[nn.Module], Iterable[torch.Tensor]],
    k: int = 2,
    iters: int = 100,
    tol: float = 1e-6,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, torch.Tensor]:
    """:func:`hessian_eigs` for a loss given as the sum of ``terms(model)`` (scalar tensors,
    e.g. one per batch, already weighted): any model, any loss."""
    m = copy.deepcopy(model).eval()
    params = [p for p in m.parameters() if p.requires_grad]

    def hvp(v: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(v)
        for loss in terms(m):
            grads = torch.autograd.grad(loss, params, create_graph=True)
            flat_g = torch.cat([g.reshape(-1) for g in grads])
            hv = torch.autograd.grad(flat_g @ v, params)
            out += torch.cat([h.reshape(-1) for h in hv])
        return out

    g = torch.Generator().manual_seed(seed)
    n = sum(p.numel() for p in params)
    dtype = params[0].dtype
    values: list[float] = []
    vectors: list[torch.Tensor] = []

    def deflated(v: torch.Tensor) -> torch.Tensor:
        """H v with the eigenpairs already found taken out (Hotelling deflation)."""
        w = hvp(v)
        for u, val in zip(vectors, values, strict=True):
            w = w - val * (u @ v) * u
        return w

    for _ in range(k):
        v = torch.randn(n, generator=g, dtype=torch.float64).to(params[0].device, dtype)
        v /= v.norm()
        lam = 0.0
        for it in range(iters):
            if should_stop is not None and should_stop():
                raise InterruptedError("stopped")
            w = deflated(v)
            new = float(v @ w)  # the Rayleigh quotient: the eigenvalue estimate, with sign
            norm = float(w.norm())
            if norm == 0:
                lam = 0.0
                break
            v = (w / norm).detach()
            done = it >= 2 and abs(new - lam) <= tol * abs(new)
            lam = new
            if done:
                break
        values.append(lam)
        vectors.append(v)
    return np.array(values), torch.stack(vectors)
