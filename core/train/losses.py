"""The loss catalogue: real ``torch.nn`` losses, what each is for, and which tasks it fits.

Targets differ by family: regression losses compare real numbers, classification losses take
logits and class indices, binary ones take a logit and a 0/1 target. A task names its family,
and :func:`check_loss_for_task` explains a mismatch before training starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

Family = Literal["regression", "classification", "binary"]
Reduction = Literal["mean", "sum"]


@dataclass(frozen=True)
class LossInfo:
    key: str
    label: str
    cls: type[nn.Module]
    family: Family
    caption: str
    extra: Mapping[str, tuple[float, float, float]] = field(default_factory=dict)
    # extra: name -> (default, low, high), e.g. Huber's delta


LOSSES: dict[str, LossInfo] = {
    i.key: i
    for i in (
        LossInfo(
            "mse",
            "MSE",
            nn.MSELoss,
            "regression",
            "mean of squared errors: smooth, but outliers dominate",
        ),
        LossInfo(
            "l1",
            "L1 / MAE",
            nn.L1Loss,
            "regression",
            "mean of absolute errors: robust to outliers, kinked at zero",
        ),
        LossInfo(
            "huber",
            "Huber",
            nn.HuberLoss,
            "regression",
            "quadratic near zero, linear beyond delta",
            {"delta": (1.0, 1e-6, 1e6)},
        ),
        LossInfo(
            "smooth_l1",
            "Smooth L1",
            nn.SmoothL1Loss,
            "regression",
            "Huber divided by beta: L1 far away, smooth near zero",
            {"beta": (1.0, 0.0, 1e6)},
        ),
        LossInfo(
            "cross_entropy",
            "Cross-entropy",
            nn.CrossEntropyLoss,
            "classification",
            "softmax + negative log-likelihood of the true class",
            {"label_smoothing": (0.0, 0.0, 1.0)},
        ),
        LossInfo(
            "nll",
            "NLL",
            nn.NLLLoss,
            "classification",
            "negative log-likelihood of log-probabilities (log_softmax applied first)",
        ),
        LossInfo(
            "bce_logits",
            "BCE with logits",
            nn.BCEWithLogitsLoss,
            "binary",
            "binary cross-entropy of a logit: sigmoid inside, numerically stable",
        ),
    )
}


@dataclass(frozen=True)
class LossSpec:
    name: str = "mse"
    reduction: Reduction = "mean"
    extra: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "reduction": self.reduction, "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LossSpec:
        return cls(
            str(d.get("name", "mse")), d.get("reduction", "mean"), dict(d.get("extra") or {})
        )


def get_loss(key: str) -> LossInfo:
    try:
        return LOSSES[key]
    except KeyError:
        raise ValueError(f"Unknown loss {key!r}; choose one of: {', '.join(LOSSES)}") from None


class _LogSoftmaxNLL(nn.Module):
    """NLL on raw model outputs: the model gives logits, NLL wants log-probabilities."""

    def __init__(self, **kw: Any) -> None:
        super().__init__()
        self.nll = nn.NLLLoss(**kw)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.nll(torch.log_softmax(logits, dim=-1), target)


def build_loss(spec: LossSpec) -> nn.Module:
    """The real ``torch.nn`` loss for ``spec``; ``ValueError`` names a bad field."""
    info = get_loss(spec.name)
    if spec.reduction not in ("mean", "sum"):
        raise ValueError(f"Invalid reduction: {spec.reduction!r} (choose mean or sum)")
    kwargs: dict[str, Any] = {"reduction": spec.reduction}
    for name, value in spec.extra.items():
        if name not in info.extra:
            valid = ", ".join(info.extra) or "none"
            raise ValueError(f"Unknown option {name!r} for {info.label} loss; valid: {valid}")
        _, low, high = info.extra[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (low <= value <= high)
        ):
            raise ValueError(
                f"Invalid {name} for {info.label}: {value!r} (allowed {low} .. {high})"
            )
        kwargs[name] = float(value)
    if info.key == "nll":
        return _LogSoftmaxNLL(**kwargs)
    return info.cls(**kwargs)


def losses_for(family: Family) -> list[str]:
    """Catalogue keys of the losses that fit a task family."""
    return [k for k, i in LOSSES.items() if i.family == family]


def check_loss_for_task(loss: str, family: Family, task_label: str) -> None:
    """Raise ``ValueError`` explaining why ``loss`` does not fit a task, and what does."""
    info = get_loss(loss)
    if info.family != family:
        fits = ", ".join(losses_for(family))
        raise ValueError(
            f"{info.label} is a {info.family} loss, but {task_label} is a {family} task; "
            f"choose one of: {fits}"
        )


__all__ = [
    "LOSSES",
    "LossInfo",
    "LossSpec",
    "build_loss",
    "check_loss_for_task",
    "get_loss",
    "losses_for",
]
