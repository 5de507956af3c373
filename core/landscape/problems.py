"""How a landscape's numbers are computed for each kind of subject: a built-in task (the fast
LeNet-aware evaluator on the task's validation samples) or the user's own experiment file (the
generic evaluator on its batches). ``job.run`` asks a :class:`Problem` and never branches on
the kind itself."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch

from core.landscape.curvature import hessian_eigs, hessian_eigs_of
from core.landscape.directions import LandscapeError, set_flat
from core.landscape.evaluator import PlaneEvaluator
from core.landscape.generic import GenericEvaluator
from core.landscape.plane import Line, interpolate, path_losses
from core.landscape.sampling import evaluation_set
from core.landscape.subject import Subject
from core.train.experiment import ExperimentError, to_device

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(device: str) -> str:
    """``auto`` is CUDA where there is one; ``cuda`` without one is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise LandscapeError("device cuda: no CUDA device is available here (use cpu or auto)")
    if device.startswith("cuda") or device == "cpu":
        return device
    raise LandscapeError(f"Invalid device: {device!r} (choose {', '.join(DEVICES)})")


class Problem(Protocol):
    n: int  # samples (built-in) or batches (own model) evaluated
    total: int  # in the whole validation set (built-in) or of the file's batches
    scale: float  # the factor a summed loss was scaled by to estimate the whole set
    numbers: int  # input numbers per evaluation (what compiling is worth is judged by it)

    def evaluator(self, centre, d1, d2, precision: str): ...

    def path_losses(self, trajectory: np.ndarray) -> np.ndarray: ...

    def line(self, start: torch.Tensor, end: torch.Tensor, points: int) -> Line: ...

    def hessian(
        self,
        k: int,
        should_stop: Callable[[], bool] | None,
        iters: int = 20,
        tol: float = 1e-3,
        seed: int = 0,
    ) -> tuple[np.ndarray, torch.Tensor]:
        """The top ``k`` (largest-magnitude) Hessian eigenvalues of the loss at the model's
        weights and their unit eigenvectors ``(k, P)``; LandscapeError when the loss cannot be
        differentiated twice."""
        ...


def _second_derivatives(compute: Callable[[], tuple[np.ndarray, torch.Tensor]]):
    """``compute()``, with a loss that has no second derivative said in words."""
    try:
        return compute()
    except RuntimeError as exc:  # e.g. an op without a double backward
        raise LandscapeError(
            f"the Hessian of this loss cannot be computed (it is not twice differentiable "
            f"here: {exc})"
        ) from None
    except ExperimentError as exc:
        raise LandscapeError(str(exc)) from None


class TaskProblem:
    """A built-in task: its loss function on (sampled) validation tensors."""

    def __init__(self, subject: Subject, samples: int, device: str) -> None:
        data = evaluation_set(subject.x, subject.y, subject.loss_fn, samples)
        self.model = subject.model.to(device)
        self.x, self.y = data.x.to(device), data.y.to(device)
        self.loss_fn, self.classes = data.loss_fn, subject.classes
        self.n, self.total, self.scale = data.n, data.total, data.scale
        self.numbers = int(self.x.numel())

    def evaluator(self, centre, d1, d2, precision: str) -> PlaneEvaluator:
        return PlaneEvaluator(
            self.model, self.loss_fn, self.x, self.y, centre, d1, d2, self.classes, precision
        )

    def path_losses(self, trajectory: np.ndarray) -> np.ndarray:
        return path_losses(self.model, self.loss_fn, self.x, self.y, trajectory)

    def line(self, start: torch.Tensor, end: torch.Tensor, points: int) -> Line:
        return interpolate(
            self.model, self.loss_fn, self.x, self.y, start, end, points, classes=self.classes
        )

    def hessian(self, k, should_stop, iters=20, tol=1e-3, seed=0):
        return _second_derivatives(
            lambda: hessian_eigs(
                self.model,
                self.loss_fn,
                self.x,
                self.y,
                k=k,
                iters=iters,
                tol=tol,
                seed=seed,
                should_stop=should_stop,
            )  # fmt: skip
        )


class OwnProblem:
    """The user's experiment file: the mean of its ``loss(model, batch)`` over its batches."""

    def __init__(self, subject: Subject, device: str) -> None:
        self.experiment = subject.experiment
        self.model = subject.model.to(device).eval()
        self.batches = [to_device(b, device) for b in subject.batches]
        self.classes = subject.classes
        self.n = self.total = len(self.batches)
        self.scale = 1.0
        self.numbers = 0  # an arbitrary model is never compiled

    def loss(self, model, batch: Any) -> torch.Tensor:
        return self.experiment.loss(model, batch)

    def evaluator(self, centre, d1, d2, precision: str) -> GenericEvaluator:
        if precision != "fp32":
            raise LandscapeError("the bfloat16 preview is for the built-in tasks; use fp32")
        return GenericEvaluator(
            self.model, self.batches, self.loss, centre, d1, d2, accuracy=bool(self.classes)
        )

    def path_losses(self, trajectory: np.ndarray) -> np.ndarray:
        m = copy.deepcopy(self.model).eval()
        dtype = next(m.parameters()).dtype
        out = []
        with torch.no_grad():
            for theta in np.asarray(trajectory):
                set_flat(m, torch.as_tensor(theta, dtype=dtype, device=next(m.parameters()).device))
                out.append(sum(float(self.loss(m, b)) for b in self.batches) / self.n)
        return np.array(out)

    def line(self, start: torch.Tensor, end: torch.Tensor, points: int) -> Line:
        zero = torch.zeros_like(start)
        ev = GenericEvaluator(
            self.model, self.batches, self.loss, start, end - start, zero,
            accuracy=bool(self.classes),
        )  # fmt: skip
        t = np.linspace(-0.25, 1.25, points)
        vals = [ev.at(float(v), 0.0) for v in t]
        acc = np.array([v[1] for v in vals]) if self.classes else None
        return Line(t, np.array([v[0] for v in vals]), acc)

    def hessian(self, k, should_stop, iters=20, tol=1e-3, seed=0):
        def terms(m):
            for b in self.batches:
                yield self.loss(m, b) / self.n

        return _second_derivatives(
            lambda: hessian_eigs_of(
                self.model, terms, k=k, iters=iters, tol=tol, seed=seed, should_stop=should_stop
            )
        )


def problem_for(subject: Subject, samples: int, device: str) -> Problem:
    if subject.experiment is not None:
        return OwnProblem(subject, device)
    return TaskProblem(subject, samples, device)


__all__ = ["DEVICES", "OwnProblem", "Problem", "TaskProblem", "problem_for", "resolve_device"]
