"""Curvature of the loss at a model's weights: top eigenvalues, trace, spectral density and the
top eigenvalue of each layer, for a built-in task or the user's own experiment file.

:func:`hessian_eigs` (power iteration with deflation) serves the landscape's two eigenvalues;
:func:`core.landscape.curvature_job.analyse` is the full analysis behind ``losslab curvature``
and the curvature panel; the maths on Hessian-vector products is in
:mod:`core.landscape.spectrum`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from core.hessian import hvp_of, power_iteration
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
    hvp = hvp_of(params, lambda: terms(m))
    g = torch.Generator().manual_seed(seed)
    n = sum(p.numel() for p in params)
    found: list[tuple[float, torch.Tensor]] = []
    for _ in range(k):
        v0 = torch.randn(n, generator=g, dtype=torch.float64).to(params[0].device, params[0].dtype)
        lam, v, _ = power_iteration(hvp, v0, iters, tol, found, should_stop)
        found.append((lam, v))
    return np.array([lam for lam, _ in found]), torch.stack([v for _, v in found])
