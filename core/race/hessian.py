"""The curvature of a 2-D surface at a point, and the learning rate it allows a racer.

:func:`curvature_at` takes the exact 2x2 Hessian of a surface by double backward (tested equal
to ``torch.autograd.functional.hessian``) and splits it into eigenvalues and eigenvectors.
:func:`critical_a` and :func:`contraction` give the limits below; :mod:`core.race.stability`
applies them to one racer and writes them out.

The limits come from the quadratic model ``f(p) ~ 1/2 d^T H d`` around the point. Along an
eigenvector of curvature ``lam`` every optimizer here is a linear recurrence in ``a = s*lr*lam``
(``s`` a scale of the optimizer's own, 1 for plain SGD):

* plain gradient descent ``d <- (1 - a) d``: stable iff ``0 < a < 2``, so ``lr < 2/lam_max``;
* heavy ball, torch's ``v = beta*v + g; p -= lr*v``: iteration matrix ``[[1-a, -beta], [a, beta]]``,
  stable iff ``0 < a < 2(1 + beta)``;
* torch's Nesterov ``p -= lr*(g + beta*v)``: ``[[1 - a(1+beta), -beta^2], [a, beta]]``, stable iff
  ``0 < a < 2(1 + beta)/(1 + 2 beta)`` (the Jury conditions of that matrix);
* adaptive methods (RMSprop, Adagrad, Adam, ...) divide the gradient by a per-coordinate
  ``sqrt(v) + eps`` held in ``torch.optim``'s state: with that state frozen they are the rules
  above on the preconditioned curvature ``P^1/2 H P^1/2``, ``P = diag(1/(sqrt(v) + eps))``.
  Adam's EMA momentum ``m = b1*m + (1-b1)*g`` is heavy ball with ``s = (1 - b1)/(1 - b1^t)``,
  so its limit is ``2(1 + b1)/((1 - b1) lam_max(PH))`` late in a run (Cohen et al., 2022).

``a < 0`` (negative curvature) grows at every learning rate: that is how racers leave a saddle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from core.race.surfaces import SurfaceFn

Kind = Literal["gd", "heavy_ball", "nesterov"]


@dataclass(frozen=True)
class PointCurvature:
    """The Hessian of a surface at one point, taken apart."""

    point: np.ndarray  # (2,)
    hessian: np.ndarray  # (2, 2) symmetric; nan when not finite
    eigenvalues: np.ndarray  # (2,) lam1 >= lam2
    eigenvectors: np.ndarray  # (2, 2) column i is the unit eigenvector of eigenvalues[i]
    smooth: bool = True  # False on a kink (abs, max, relu): the gradient jumps there
    problem: str = ""  # why there are no numbers; "" when they are finite

    @property
    def finite(self) -> bool:
        return not self.problem


def curvature_at(fn: SurfaceFn, point) -> PointCurvature:
    """The Hessian of ``fn(x, y)`` at ``point``, in float64; never raises on bad numbers.

    A kink (``abs``, ``relu``, ``max``) has no Hessian: autograd returns the one of a side, often
    0. It is found by comparing the Hessian with central differences of the gradient, which jump.
    """
    p = np.asarray(point, dtype=np.float64).reshape(-1)
    nan2 = np.full((2, 2), np.nan)
    if p.shape != (2,) or not np.isfinite(p).all():
        return PointCurvature(
            np.resize(p, 2), nan2, np.full(2, np.nan), nan2, True, "the point is not finite"
        )
    try:
        h, g, step = _derivatives(fn, torch.from_numpy(p))
    except (RuntimeError, ValueError) as exc:  # e.g. a formula torch cannot differentiate twice
        return PointCurvature(p, nan2, np.full(2, np.nan), nan2, True, str(exc))
    if not (np.isfinite(h).all() and np.isfinite(g[0]).all()):
        return PointCurvature(
            p,
            nan2,
            np.full(2, np.nan),
            nan2,
            True,
            "the loss or its derivatives are not finite here (nan or inf)",
        )
    h = (h + h.T) / 2  # exact up to rounding; eigh wants it symmetric
    lams, vecs = np.linalg.eigh(h)  # ascending
    lams, vecs = lams[::-1].copy(), vecs[:, ::-1].copy()  # lam1 >= lam2
    for i in range(2):  # a fixed sign, so the arrows do not flip between frames
        j = int(np.argmax(np.abs(vecs[:, i])))
        if vecs[j, i] < 0:
            vecs[:, i] *= -1
    # central differences of the gradient: they agree with the Hessian unless it jumps
    fd = np.stack([(g[1] - g[2]), (g[3] - g[4])], axis=1) / (2 * step)  # (2, 2), column i
    smooth = bool(np.isfinite(fd).all() and np.abs(fd - h).max() <= 1e-3 * (1 + np.abs(h).max()))
    return PointCurvature(p, h, lams, vecs, smooth)


def _derivatives(fn: SurfaceFn, p: torch.Tensor) -> tuple[np.ndarray, np.ndarray, float]:
    """Hessian ``(2, 2)`` at ``p`` by double backward, and the gradients ``(5, 2)`` at ``p``,
    ``p +- step*e_x``, ``p +- step*e_y``: one batched forward (surfaces are element-wise), so
    the panel's refresh costs a few milliseconds, not five separate passes."""
    step = 1e-6 * max(1.0, float(p.abs().max()))
    offsets = torch.tensor([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]], dtype=p.dtype) * step
    X = (p + offsets).requires_grad_()  # (5, 2)
    h = np.zeros((2, 2))
    with torch.enable_grad():
        loss = torch.broadcast_to(torch.as_tensor(fn(X[:, 0], X[:, 1])), (5,))
        if not loss.requires_grad:  # a constant formula
            return h, np.zeros((5, 2)), step
        (G,) = torch.autograd.grad(loss.sum(), X, create_graph=True)  # (5, 2)
        for i in range(2):
            if G[0, i].requires_grad:  # not on a plane
                (row,) = torch.autograd.grad(G[0, i], X, retain_graph=True, allow_unused=True)
                if row is not None:
                    h[i] = row[0].detach().numpy()
    return h, G.detach().numpy(), step


# --- the stability limit of one racer ------------------------------------------------------


@dataclass(frozen=True)
class Stability:
    """What a racer's learning rate means at a point of the surface."""

    kind: Kind | Literal["none"]  # the recurrence used; "none": the limit does not apply
    lr: float  # the learning rate it steps with now
    limit: float  # the largest stable lr (inf when no direction curves up, nan when unknown)
    formula: str  # how the limit is written: "2/λmax", "2(1+β)/λmax", ...
    curvature: np.ndarray  # (2,) the curvatures the limit uses (preconditioned for adaptive)
    factors: np.ndarray  # (2,) how much each step multiplies the error along v1, v2 (<1 shrinks)
    lines: list[str] = field(default_factory=list)  # plain sentences for the panel

    @property
    def exceeded(self) -> bool:
        return bool(self.lr > self.limit)


def critical_a(kind: Kind, beta: float) -> float:
    """The largest stable ``a = s*lr*lam`` of a recurrence (see the module docstring)."""
    if kind == "gd":
        return 2.0
    if kind == "heavy_ball":
        return 2.0 * (1 + beta)
    if kind == "nesterov":
        return 2.0 * (1 + beta) / (1 + 2 * beta)
    raise ValueError(f"Unknown kind {kind!r}; choose gd, heavy_ball or nesterov")


def contraction(kind: Kind, beta: float, a: float) -> float:
    """Spectral radius of the recurrence's iteration matrix: the error's factor per step."""
    if kind == "gd":
        return abs(1 - a)
    if kind == "heavy_ball":
        m = np.array([[1 - a, -beta], [a, beta]])
    elif kind == "nesterov":
        m = np.array([[1 - a * (1 + beta), -(beta**2)], [a, beta]])
    else:
        raise ValueError(f"Unknown kind {kind!r}; choose gd, heavy_ball or nesterov")
    return float(np.abs(np.linalg.eigvals(m)).max())


__all__ = [
    "Kind",
    "PointCurvature",
    "Stability",
    "contraction",
    "critical_a",
    "curvature_at",
]
