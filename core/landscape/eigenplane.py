"""The plane of the Hessian's top two eigenvectors at a model's weights (the sharpest two
directions of the loss there), for a built-in task or the user's own experiment file."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from core.landscape.curvature import hessian_eigs, hessian_eigs_of
from core.landscape.directions import LandscapeError
from core.landscape.problems import OwnProblem, TaskProblem
from core.train.experiment import ExperimentError

ITERS, TOL = 30, 1e-4  # power iterations per eigenvector; the directions need a bit more than
# the eigenvalues alone (job.run's 20 at 1e-3), and stay a few seconds on LeNet


def hessian_directions(
    problem: TaskProblem | OwnProblem,
    centre: torch.Tensor,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The top two (largest-magnitude) Hessian eigenvectors of ``problem``'s loss at its
    model's weights (which must be ``centre``), each scaled to the length of ``centre`` (so a
    = 1 moves as far as a filter-normalised random direction does), and their eigenvalues.

    InterruptedError when ``should_stop()`` turns true; LandscapeError when the loss cannot be
    differentiated twice."""
    try:
        if isinstance(problem, TaskProblem):
            values, vectors = hessian_eigs(
                problem.model, problem.loss_fn, problem.x, problem.y, k=2, iters=ITERS,
                tol=TOL, seed=seed, should_stop=should_stop,
            )  # fmt: skip
        elif isinstance(problem, OwnProblem):

            def terms(m):
                for batch in problem.batches:
                    yield problem.loss(m, batch) / problem.n

            values, vectors = hessian_eigs_of(
                problem.model, terms, k=2, iters=ITERS, tol=TOL, seed=seed,
                should_stop=should_stop,
            )  # fmt: skip
        else:
            raise TypeError(f"Unknown problem: {type(problem).__name__}")
    except RuntimeError as exc:  # e.g. an op without a double backward
        raise LandscapeError(
            f"the Hessian of this loss cannot be computed (it is not twice differentiable "
            f"here: {exc})"
        ) from None
    except ExperimentError as exc:
        raise LandscapeError(str(exc)) from None
    vectors = vectors.detach().to("cpu", centre.dtype)  # (2, P)
    if vectors.shape[1] != centre.numel():
        raise LandscapeError(
            "hessian directions need every parameter trainable (some are frozen here)"
        )
    length = centre.norm().clamp_min(1e-12)
    return vectors[0] * length, vectors[1] * length, np.asarray(values)


__all__ = ["hessian_directions"]
