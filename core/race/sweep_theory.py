"""Analytic curves over a sweep map: where heavy-ball momentum is stable on a quadratic.

On ``f(w) = 1/2 w^T H w`` SGD with momentum (``v = beta*v + g; w -= lr*v``) decouples into the
eigendirections of ``H``. Along curvature ``lam`` the iteration matrix ``[[beta, lam],
[-lr*beta, 1 - lr*lam]]`` has eigenvalues with product ``beta`` and sum ``1 + beta - lr*lam``;
both lie inside the unit circle iff ``0 < lr*lam < 2(1 + beta)`` (0 <= beta < 1). The largest
eigenvalue decides: that is the stability boundary.

The eigenvalues are complex, both of modulus ``sqrt(beta)``, iff
``(1 - sqrt(lr*lam))**2 <= beta``; as their product is ``beta`` no choice does better than
``sqrt(beta)``, so for a given lr the fastest momentum is the smallest one that makes every
direction complex: ``beta*(lr) = max_i (1 - sqrt(lr*lam_i))**2``, with rate ``sqrt(beta*)``
(Goh, "Why Momentum Really Works", Distill 2017). Its minimum is the classic optimum
``lr = (2 / (sqrt(lam_min) + sqrt(lam_max)))**2``, ``beta = ((sqrt(k) - 1) / (sqrt(k) + 1))**2``.
Weight decay ``wd`` adds ``wd`` to every curvature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.optimizers import get_optimizer
from core.race.race import RacerSpec
from core.race.surfaces import Surface
from core.race.sweep import SweepAxis


@dataclass(frozen=True)
class Curve:
    """A polyline in the sweep's (x, y) hyperparameter values."""

    x: np.ndarray  # (M,)
    y: np.ndarray  # (M,)
    label: str
    kind: str  # "stability" or "optimal"


def quadratic_hessian(surface: Surface) -> np.ndarray | None:
    """The (2, 2) Hessian when ``surface`` is a quadratic (the same at three points), else None."""
    xmin, xmax, ymin, ymax = surface.bounds
    points = [(0.3, 0.7), (0.8, 0.2), (0.55, 0.45)]
    hessians = []
    for fx, fy in points:
        p = torch.tensor(
            [xmin + fx * (xmax - xmin), ymin + fy * (ymax - ymin)], dtype=torch.float64
        )
        try:
            h = torch.autograd.functional.hessian(lambda w: surface.fn(w[0], w[1]), p)
        except RuntimeError:
            return None
        hessians.append(h.detach().numpy())
    scale = max(1.0, float(np.abs(hessians[0]).max()))
    if not all(np.isfinite(h).all() for h in hessians):
        return None
    if any(np.abs(h - hessians[0]).max() > 1e-9 * scale for h in hessians[1:]):
        return None
    return (hessians[0] + hessians[0].T) / 2


def momentum_curves(
    surface: Surface, racer: RacerSpec, x: SweepAxis, y: SweepAxis, n: int = 400
) -> list[Curve]:
    """The stability boundary (and the fastest momentum per lr) when they apply, else []."""
    info = get_optimizer(racer.optimizer.name)
    if info.cls is not torch.optim.SGD or racer.noise > 0 or racer.clip != "none":
        return []
    values = racer.optimizer.resolved()
    names = {x.name, y.name}
    if values.get("nesterov") or float(values.get("dampening") or 0) or "dampening" in names:
        return []
    if names & {"weight_decay", "noise", "clip_value"}:
        return []  # the theory is for the plain, noiseless iteration with a fixed curvature
    hessian = quadratic_hessian(surface)
    if hessian is None:
        return []
    lams = np.linalg.eigvalsh(hessian) + float(values.get("weight_decay") or 0.0)  # ascending
    if lams[0] <= 0:
        return []  # not a bowl: no step size converges
    lam = lams[-1]
    curves: list[Curve] = []
    if names == {"lr", "momentum"}:
        mom = x if x.name == "momentum" else y
        beta = np.linspace(mom.low, mom.high, n)
        lr = 2 * (1 + beta) / lam
        label = f"stability edge: lr \u00b7 {lam:.3g} = 2 (1 + momentum)"
        curves.append(_curve(x, y, {"lr": lr, "momentum": beta}, label, "stability"))
        lr_axis = x if x.name == "lr" else y
        lrs = (
            np.geomspace(lr_axis.low, lr_axis.high, n)
            if lr_axis.log
            else np.linspace(lr_axis.low, lr_axis.high, n)
        )
        best = np.max([(1 - np.sqrt(lrs * v)) ** 2 for v in lams], axis=0)
        keep = best <= mom.high
        best_at = {"lr": lrs[keep], "momentum": best[keep]}
        curves.append(_curve(x, y, best_at, "fastest momentum for each lr (Distill)", "optimal"))
    elif "lr" in names:
        other = y if x.name == "lr" else x
        beta = float(values.get("momentum") or 0.0)
        edge = 2 * (1 + beta) / lam
        span = np.array([other.low, other.high])
        at = {"lr": np.full(2, edge), other.name: span}
        curves.append(_curve(x, y, at, f"stability edge: lr = {edge:.3g}", "stability"))
    elif "momentum" in names:
        other = y if x.name == "momentum" else x
        beta = float(values["lr"]) * lam / 2 - 1
        span = np.array([other.low, other.high])
        at = {"momentum": np.full(2, beta), other.name: span}
        curves.append(_curve(x, y, at, f"stability edge: momentum = {beta:.3g}", "stability"))
    return [c for c in curves if len(c.x) >= 2]


def _curve(x: SweepAxis, y: SweepAxis, at: dict[str, np.ndarray], label: str, kind: str):
    return Curve(np.asarray(at[x.name], float), np.asarray(at[y.name], float), label, kind)


__all__ = ["Curve", "momentum_curves", "quadratic_hessian"]
