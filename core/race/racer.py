"""A racer as plain data, and the plain results a race hands back about it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from core.optimizers import OptimizerSpec, SchedulerSpec, build_optimizer, get_optimizer

ClipMode = Literal["none", "norm", "value"]
CLIP_MODES = ("none", "norm", "value")


@dataclass(frozen=True)
class RacerSpec:
    """One racer as plain data: an optimizer and the tricks applied to its gradient."""

    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    scheduler: SchedulerSpec | None = None
    clip: ClipMode = "none"  # gradient clipping per start point: by L2 norm or by value
    clip_value: float = 1.0  # max_norm (norm) or the bound (value)
    noise: float = 0.0  # std of Gaussian noise added to the gradient (mini-batch noise)
    seed: int = 0  # seeds the noise
    name: str = ""  # display name; the optimizer's label when empty
    color: str = ""  # "#rrggbb" for views; empty lets the view choose
    enabled: bool = True

    @property
    def label(self) -> str:
        return self.name or get_optimizer(self.optimizer.name).label

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        build_optimizer(self.optimizer, [torch.zeros(2, requires_grad=True)])
        if self.scheduler is not None:
            self.scheduler.resolved()
        if self.clip not in CLIP_MODES:
            raise ValueError(f"Invalid clip: {self.clip!r} (choose one of {', '.join(CLIP_MODES)})")
        if not (math.isfinite(self.clip_value) and self.clip_value > 0):
            raise ValueError(f"Invalid clip_value: {self.clip_value!r} (must be > 0)")
        if not (math.isfinite(self.noise) and 0 <= self.noise <= 1e6):
            raise ValueError(f"Invalid noise: {self.noise!r} (allowed 0 .. 1e6)")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"Invalid seed: {self.seed!r} (must be a whole number >= 0)")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["optimizer"] = self.optimizer.to_dict()
        d["scheduler"] = self.scheduler.to_dict() if self.scheduler else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RacerSpec:
        if not isinstance(d, Mapping):
            raise ValueError("a racer must be an object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"Unknown racer field(s): {', '.join(sorted(unknown))}")
        kw = dict(d)
        kw["optimizer"] = OptimizerSpec.from_dict(d.get("optimizer") or {})
        sched = d.get("scheduler")
        kw["scheduler"] = SchedulerSpec.from_dict(sched) if sched else None
        spec = cls(**kw)
        spec.validate()
        return spec


@dataclass(frozen=True)
class Trajectory:
    """What one racer did from one start point (copies; safe to keep)."""

    steps: np.ndarray  # (T,) step index of each recorded point
    pos: np.ndarray  # (T, 2)
    loss: np.ndarray  # (T,)
    grad: np.ndarray | None  # (T, 2) true gradient at each point
    used_grad: np.ndarray | None  # (T, 2) gradient the optimizer saw (after noise, clipping)
    lr: np.ndarray | None  # (T,) learning rate of the step leaving each point
    state: dict[str, np.ndarray]  # optimizer state after reaching each point: (T, 2) or (T,)
    diverged_at: int  # step at which it diverged, -1 if it did not
    diverge_reason: str


@dataclass(frozen=True)
class RacerMetrics:
    """Per-start figures of one racer."""

    final_loss: np.ndarray  # (K,)
    final_distance: np.ndarray  # (K,) to the nearest known minimum (inf when none)
    nearest_minimum: np.ndarray  # (K,) index into surface.minima, -1 when none
    steps_to_converge: np.ndarray  # (K,) first step within eps of a known minimum, -1 if never
    diverged_at: np.ndarray  # (K,) -1 if not


__all__ = ["CLIP_MODES", "ClipMode", "RacerMetrics", "RacerSpec", "Trajectory"]
