"""Fitting sin(x) with a cubic polynomial, in the tutorials' three equivalent forms.

1. NumPy with hand-derived gradients of the summed squared error.
2. PyTorch autograd with a manual update inside ``torch.no_grad()``.
3. ``nn.Linear(3, 1)`` on ``[x, x^2, x^3]`` with ``MSELoss(reduction="sum")`` and a real
   ``torch.optim`` optimizer (see :mod:`core.train.tasks`).

Started from the same coefficients with plain gradient descent, they agree step for step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

N_POINTS = 2000


def sine_data(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """``x = linspace(-pi, pi, 2000)`` and ``y = sin(x)``."""
    x = torch.linspace(-math.pi, math.pi, N_POINTS, dtype=dtype)  # (2000,)
    return x, torch.sin(x)


def powers(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3)`` features ``[x, x^2, x^3]`` as the tutorial builds them."""
    return x.unsqueeze(-1).pow(torch.tensor([1, 2, 3]))


def numpy_steps(
    coeffs: tuple[float, float, float, float], lr: float
) -> Iterator[tuple[np.ndarray, float]]:
    """Form 1: yields ``(coefficients a..d after the step, loss before it)`` forever."""
    x = np.linspace(-math.pi, math.pi, N_POINTS)
    y = np.sin(x)
    a, b, c, d = (float(v) for v in coeffs)
    while True:
        y_pred = a + b * x + c * x**2 + d * x**3
        loss = float(np.square(y_pred - y).sum())
        grad_y = 2.0 * (y_pred - y)
        grad_a = grad_y.sum()
        grad_b = (grad_y * x).sum()
        grad_c = (grad_y * x**2).sum()
        grad_d = (grad_y * x**3).sum()
        a -= lr * grad_a
        b -= lr * grad_b
        c -= lr * grad_c
        d -= lr * grad_d
        yield np.array([a, b, c, d]), loss


def autograd_steps(
    coeffs: tuple[float, float, float, float], lr: float, dtype: torch.dtype = torch.float64
) -> Iterator[tuple[np.ndarray, float]]:
    """Form 2: autograd computes the gradients; the update is written by hand."""
    x, y = sine_data(dtype)
    a, b, c, d = (torch.tensor(float(v), dtype=dtype, requires_grad=True) for v in coeffs)
    while True:
        y_pred = a + b * x + c * x**2 + d * x**3
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            for p in (a, b, c, d):
                p -= lr * p.grad
                p.grad = None
        yield np.array([a.item(), b.item(), c.item(), d.item()]), float(loss.item())


def polynomial_text(a: float, b: float, c: float, d: float) -> str:
    """``y = a + b x + c x^2 + d x^3`` with the numbers, signs folded in."""

    def term(v: float, suffix: str) -> str:
        sign = "-" if v < 0 else "+"
        return f" {sign} {abs(v):.4g}{suffix}"

    return f"y = {a:.4g}" + term(b, " x") + term(c, " x^2") + term(d, " x^3")
