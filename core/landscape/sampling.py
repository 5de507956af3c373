"""Which validation samples a landscape is evaluated on, and the loss that makes their value
the run's own validation loss.

A landscape's centre is the checkpoint, so its value there must be the validation loss the
run recorded for that checkpoint: the task's loss function and reduction, on the validation
set Train used. Small validation sets are used whole. Big ones (LeNet on MNIST) are sampled,
evenly spread and always the same samples; a summed loss is then scaled by
``total / sampled`` so the landscape still estimates the whole set's sum (a mean needs no
scaling: the sample mean estimates it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# Up to this many input numbers (samples x numbers per sample) the whole validation set is
# used: the sine fit (2,000 x 3), linear regression, LeNet on synthetic digits (1,000 x 784).
# Beyond it (LeNet on MNIST: 2,000 or 10,000 x 784) a grid would take minutes, so it samples.
WHOLE_SET_NUMBERS = 1_000_000
AUTO_SAMPLES = 1_000  # samples taken when the set is too big to use whole
MAX_SAMPLES = 100_000


@dataclass(frozen=True)
class EvalSet:
    """The samples a landscape is evaluated on and the loss to evaluate there."""

    x: torch.Tensor
    y: torch.Tensor
    loss_fn: nn.Module
    total: int  # samples in the validation set
    scale: float  # the factor a summed loss was scaled by (1.0: none)

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def whole(self) -> bool:
        return self.n == self.total


class ScaledLoss(nn.Module):
    """``factor * loss_fn(out, y)``: a summed loss over a sample, scaled to the whole set."""

    def __init__(self, loss_fn: nn.Module, factor: float) -> None:
        super().__init__()
        self.inner = loss_fn
        self.factor = factor

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.inner(out, y) * self.factor


def sample_count(total: int, numbers_per_sample: int, samples: int) -> int:
    """How many of ``total`` samples to evaluate: ``samples`` (capped at ``total``), or for
    ``samples == 0`` (automatic) all of them when the set is small, else ``AUTO_SAMPLES``."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise ValueError(f"Invalid samples: {samples!r} (0 for automatic, or 1 .. {MAX_SAMPLES:,})")
    if samples == 0:
        small = total * max(1, numbers_per_sample) <= WHOLE_SET_NUMBERS
        return total if small else min(total, AUTO_SAMPLES)
    return min(total, samples)


def reduction_of(loss_fn: nn.Module) -> str:
    """The reduction of ``loss_fn`` (or of the first loss inside it): "mean" or "sum"."""
    for m in loss_fn.modules():
        if hasattr(m, "reduction"):
            return str(m.reduction)
    return "mean"


def evaluation_set(x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module, samples: int) -> EvalSet:
    """The validation samples to evaluate (evenly spread: the sine fit's points are sorted by
    x, so its first half alone would be half the curve) and the loss to use on them."""
    total = len(x)
    n = sample_count(total, int(x[0].numel()) if total else 1, samples)
    if n == total:
        return EvalSet(x, y, loss_fn, total, 1.0)
    idx = torch.linspace(0, total - 1, n).round().long()  # (n,)
    scale = 1.0
    if reduction_of(loss_fn) == "sum":
        scale = total / n
        loss_fn = ScaledLoss(loss_fn, scale)
    return EvalSet(x[idx], y[idx], loss_fn, total, scale)


__all__ = [
    "AUTO_SAMPLES",
    "WHOLE_SET_NUMBERS",
    "EvalSet",
    "ScaledLoss",
    "evaluation_set",
    "reduction_of",
    "sample_count",
]
