"""Sharpness tracked during training: the top Hessian eigenvalue against the stability limit.

Every ``every`` steps the training loop asks a :class:`SharpnessTracker` for the largest
eigenvalue of the Hessian of the current batch's loss, at the weights the step just reached:
a few power iterations (:func:`core.hessian.power_iteration`) warm-started from the previous
eigenvector, so that after the first measurement each one costs a handful of Hessian-vector
products. Under gradient descent with step size lr the sharpness rises until it reaches 2/lr
and hovers there: the edge of stability (Cohen et al., 2021).

Which limit applies depends on the optimizer (:func:`stability_limit`):

- SGD: ``2/lr``. On a quadratic, GD is stable along an eigendirection iff ``lr * λ < 2``.
- SGD with (heavy-ball) momentum β, torch's form ``v = β v + (1 - τ) g; p -= lr v``:
  ``2(1+β) / ((1-τ) lr)`` (τ the dampening; the iteration's eigenvalue reaches -1 there).
- Nesterov (torch's form): ``2(1+β) / ((1+2β) lr)``.
- Weight decay wd adds wd to every curvature the update sees, so the limit for the loss's own
  sharpness is lower by wd.
- Adam, RMSprop and the other adaptive methods have no such limit for the raw Hessian: their
  stability is set by the *preconditioned* sharpness (Cohen et al., 2022, "adaptive edge of
  stability"), which this tracker does not measure. No line is drawn for them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from core.hessian import hvp_of, power_iteration
from core.optimizers import OptimizerSpec

DEFAULT_EVERY = 50  # steps between measurements (see bench/sharpness.py for its cost)
FIRST_ITERS = 20  # power iterations for the first measurement (a cold start)
WARM_ITERS = 4  # and for the later ones, warm-started from the previous eigenvector
TOL = 1e-3  # relative change of the estimate at which an iteration stops early


@dataclass(frozen=True)
class Limit:
    """The sharpness at which the optimizer's step becomes unstable: ``factor / lr - shift``;
    ``factor`` None when no classical limit applies (``note`` says why)."""

    factor: float | None
    shift: float
    label: str  # what is drawn: "2/lr", "2(1+β)/lr (β = 0.9)", or "" when nothing is
    note: str  # one sentence for the user

    def at(self, lr: float) -> float:
        """The limit at learning rate ``lr`` (NaN when none applies)."""
        if self.factor is None or not lr > 0:
            return math.nan
        return self.factor / lr - self.shift


def stability_limit(spec: OptimizerSpec) -> Limit:
    """The stability limit of the optimizer ``spec`` for the sharpness (see the module doc)."""
    name = spec.name
    h = spec.resolved()
    if name not in ("sgd", "momentum", "nesterov"):
        return Limit(
            None,
            0.0,
            "",
            "no classical limit is drawn for this optimizer: an adaptive method's stability "
            "depends on its preconditioned sharpness (Cohen et al. 2022), not on this one",
        )
    beta, damp, wd = float(h["momentum"]), float(h["dampening"]), float(h["weight_decay"])
    tail = f" - wd ({wd:g})" if wd else ""
    if beta == 0:  # torch applies the dampening only to a momentum buffer
        factor, label = 2.0, "2/lr"
    elif h["nesterov"]:
        factor = 2 * (1 + beta) / (1 + 2 * beta)
        label = f"2(1+β)/((1+2β) lr) (Nesterov, β = {beta:g})"
    else:
        factor = 2 * (1 + beta) / (1 - damp) if damp < 1 else math.inf
        label = f"2(1+β)/lr (β = {beta:g})" if not damp else f"2(1+β)/((1-τ) lr) (β = {beta:g})"
    if not math.isfinite(factor):  # dampening 1: the gradient never reaches the weights
        return Limit(None, 0.0, "", "dampening 1: the gradient never moves the weights")
    note = f"gradient descent is unstable along directions sharper than {label}{tail}"
    return Limit(factor, wd, label + tail, note)


@dataclass(frozen=True)
class Sharpness:
    """One measurement (an event of the training loop), or tracking turned off (``message``)."""

    step: int  # the global step whose update the weights just took
    epoch: int
    value: float  # the top Hessian eigenvalue on the step's batch (NaN when off)
    limit: float  # the stability limit at the step's lr (NaN when none applies)
    products: int  # Hessian-vector products used
    seconds: float  # this measurement's wall time
    share: float  # of the run's training time so far, the part spent measuring
    message: str = ""  # set when tracking was turned off (the loss is not twice differentiable)


class NotTwiceDifferentiable(ValueError):
    """The loss has no second derivative torch can compute (tracking turns off)."""


@dataclass
class SharpnessTracker:
    """Measures every ``every`` steps and keeps the series (see the module doc).

    ``loss_fn()`` returns the scalar loss of the current batch at the current weights; it is
    called once per Hessian-vector product, with torch's random state forked and reseeded the
    same way each time, so dropout masks do not change between the products of one estimate
    and the training's own random stream is left as it was.
    """

    every: int
    limit: Limit
    seed: int = 0
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    limits: list[float] = field(default_factory=list)
    products: int = 0
    seconds: float = 0.0
    message: str = ""
    _v: torch.Tensor | None = None
    _t0: float | None = None  # when training started (the first step)

    @property
    def on(self) -> bool:
        return self.every > 0 and not self.message

    def start_clock(self) -> None:
        if self._t0 is None:
            self._t0 = time.perf_counter()

    def due(self, step: int) -> bool:
        return self.on and step % self.every == 0

    def share(self) -> float:
        """The part of the training time so far spent measuring (0 .. 1)."""
        if self._t0 is None:
            return 0.0
        total = time.perf_counter() - self._t0
        return self.seconds / total if total > 0 else 0.0

    def measure(
        self,
        params: Sequence[torch.Tensor],
        loss_fn: Callable[[], torch.Tensor],
        step: int,
        epoch: int,
        lr: float,
    ) -> Sharpness:
        """One estimate at the current weights; a loss that cannot be differentiated twice
        turns tracking off and returns an event with ``message`` (training goes on)."""
        t0 = time.perf_counter()
        params = [p for p in params if p.requires_grad]
        try:
            value, used = self._estimate(params, loss_fn)
        except NotTwiceDifferentiable as exc:
            self.message = str(exc)
            self.seconds += time.perf_counter() - t0
            return Sharpness(step, epoch, math.nan, math.nan, 0, 0.0, self.share(), self.message)
        spent = time.perf_counter() - t0
        self.seconds += spent
        self.products += used
        limit = self.limit.at(lr)
        self.steps.append(step)
        self.values.append(value)
        self.limits.append(limit)
        return Sharpness(step, epoch, value, limit, used, spent, self.share())

    def _estimate(
        self, params: list[torch.Tensor], loss_fn: Callable[[], torch.Tensor]
    ) -> tuple[float, int]:
        def losses() -> Iterable[torch.Tensor]:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                loss = loss_fn()
            yield loss

        hvp = hvp_of(params, losses)
        cold = self._v is None
        if cold:
            self._check_second_order(params, losses)
            n = sum(p.numel() for p in params)
            g = torch.Generator().manual_seed(self.seed)
            p0 = params[0]
            self._v = torch.randn(n, generator=g, dtype=p0.dtype).to(p0.device)  # (P,)
        try:
            value, v, used = power_iteration(hvp, self._v, FIRST_ITERS if cold else WARM_ITERS, TOL)
        except RuntimeError as exc:  # double backward refused: a custom Function, no_grad...
            raise NotTwiceDifferentiable(
                "sharpness tracking turned off: the loss cannot be differentiated twice "
                f"({type(exc).__name__}: {_first_line(exc)}); training goes on"
            ) from None
        if value < 0 and math.isfinite(value):
            # power iteration finds the largest |λ|: a negative one (LeNet near its start)
            # was plotted as the sharpness. H - λI is positive semi-definite, its top is the
            # top eigenvalue of H minus λ
            g = torch.Generator().manual_seed(self.seed + 1)
            v1 = torch.randn(v.numel(), generator=g, dtype=v.dtype).to(v.device)  # (P,)
            shift = value
            top, v, more = power_iteration(lambda u: hvp(u) - shift * u, v1, FIRST_ITERS, TOL)
            value, used = top + shift, used + more
        if torch.isfinite(v).all():
            self._v = v  # the warm start of the next measurement
        return value, used

    def _check_second_order(self, params: list[torch.Tensor], losses) -> None:
        """hvp_of takes a gradient that does not depend on the weights for a loss linear in
        them (H = 0); a backward that leaves the graph (a custom autograd Function computing in
        NumPy) looks the same, and would read as a sharpness of 0. Neither is worth tracking."""
        try:
            (loss,) = losses()
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        except RuntimeError as exc:
            raise NotTwiceDifferentiable(
                "sharpness tracking turned off: the loss cannot be differentiated twice "
                f"({type(exc).__name__}: {_first_line(exc)}); training goes on"
            ) from None
        if not any(g is not None and g.requires_grad for g in grads):
            raise NotTwiceDifferentiable(
                "sharpness tracking turned off: the loss's gradient does not depend on the "
                "weights, so torch sees no second derivative (a custom autograd Function whose "
                "backward leaves autograd, or a loss linear in the weights); training goes on"
            )

    def summary(self) -> dict[str, Any]:
        """The series and its cost, as plain data for the run record (``final["sharpness"]``)."""
        return {
            "every": self.every,
            "limit": self.limit.label,
            "limit_note": self.limit.note,
            "steps": list(self.steps),
            "values": list(self.values),
            "limits": list(self.limits),
            "products": self.products,
            "seconds": self.seconds,
            "share": self.share(),
            "message": self.message,
        }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


def tracker_for(every: int, spec: OptimizerSpec, seed: int) -> SharpnessTracker:
    """A tracker for a run (``every`` 0: one that never measures)."""
    return SharpnessTracker(every, stability_limit(spec), seed)


__all__ = [
    "DEFAULT_EVERY",
    "Limit",
    "NotTwiceDifferentiable",
    "Sharpness",
    "SharpnessTracker",
    "stability_limit",
    "tracker_for",
]
