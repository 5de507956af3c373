"""The plane of the Hessian's top two eigenvectors at a model's weights (the sharpest two
directions of the loss there), for a built-in task or the user's own experiment file."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from core.landscape.directions import LandscapeError
from core.landscape.problems import OwnProblem, TaskProblem

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
    values, vectors = problem.hessian(2, should_stop, iters=ITERS, tol=TOL, seed=seed)
    vectors = vectors.detach().to("cpu", centre.dtype)  # (2, P)
    if vectors.shape[1] != centre.numel():
        raise LandscapeError(
            "hessian directions need every parameter trainable (some are frozen here)"
        )
    length = centre.norm().clamp_min(1e-12)
    return vectors[0] * length, vectors[1] * length, np.asarray(values)


__all__ = ["hessian_directions"]
