"""The model as one flat parameter vector, and the directions that span a plane through it:
filter-normalised random (Li et al. 2018), PCA of a trajectory, initial-to-final; projections
of recorded weights onto a plane."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class LandscapeError(ValueError):
    """A model, file or request the landscape code cannot handle; the message says why."""


def flat_parameters(model: nn.Module) -> torch.Tensor:
    """All parameters as one vector, in ``model.parameters()`` order (a copy)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def _slices(model: nn.Module) -> list[tuple[nn.Parameter, slice]]:
    out, start = [], 0
    for p in model.parameters():
        out.append((p, slice(start, start + p.numel())))
        start += p.numel()
    return out


def set_flat(model: nn.Module, theta: torch.Tensor) -> None:
    """Write a flat vector into ``model``'s parameters (in place)."""
    with torch.no_grad():
        for p, s in _slices(model):
            p.copy_(theta[s].view_as(p))


# --- directions ----------------------------------------------------------------------------


def filter_normalize(
    direction: torch.Tensor, model: nn.Module, centre: torch.Tensor, ignore_bias_bn: bool = True
) -> torch.Tensor:
    """Li et al.'s filter normalisation: each filter of ``direction`` (a row along the first
    dimension of a weight) is scaled to the norm of the same filter of ``centre``.

    One-dimensional parameters (biases, BatchNorm scales) are zeroed when ``ignore_bias_bn``,
    else set equal to the weights, as in the paper's code.
    """
    d = direction.clone()
    eps = 1e-10
    for p, s in _slices(model):
        dp, wp = d[s].view(p.shape), centre[s].view(p.shape)
        if p.dim() <= 1:
            if ignore_bias_bn:
                dp.zero_()
            else:
                dp.copy_(wp)
            continue
        rows_d = dp.reshape(p.shape[0], -1)
        rows_w = wp.reshape(p.shape[0], -1)
        scale = rows_w.norm(dim=1, keepdim=True) / (rows_d.norm(dim=1, keepdim=True) + eps)
        rows_d.mul_(scale)
    return d


def random_directions(
    model: nn.Module, seed: int = 0, ignore_bias_bn: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian directions from a seeded generator, filter-normalised at ``model``."""
    centre = flat_parameters(model)
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(2, centre.numel(), generator=g, dtype=torch.float64).to(centre.dtype)
    return (
        filter_normalize(raw[0], model, centre, ignore_bias_bn),
        filter_normalize(raw[1], model, centre, ignore_bias_bn),
    )


def pca_directions(
    trajectory: np.ndarray | torch.Tensor, centre: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """The top two principal directions of a recorded trajectory's offsets from ``centre``
    (the final weights, as Li et al. do), with the share of variance each explains."""
    t = torch.as_tensor(np.asarray(trajectory), dtype=torch.float64)
    if t.ndim != 2 or t.shape[1] != centre.numel():
        raise LandscapeError(
            f"the trajectory has shape {tuple(t.shape)}, the model {centre.numel()} parameters"
        )
    if t.shape[0] < 3:
        raise LandscapeError("PCA directions need a trajectory of at least 3 recorded points")
    m = t - centre.to(torch.float64)
    _, s, vh = torch.linalg.svd(m, full_matrices=False)
    var = s**2
    explained = (var[:2] / var.sum()).numpy() if var.sum() > 0 else np.zeros(2)
    return vh[0].to(centre.dtype), vh[1].to(centre.dtype), explained


def init_final_directions(
    start: torch.Tensor, model: nn.Module, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """d1 = final - initial weights (so a = -1 is the start, a = 0 the end); d2 a filter-
    normalised random direction made orthogonal to d1 and scaled to its length."""
    centre = flat_parameters(model)
    d1 = (centre - start.to(centre.dtype)).clone()
    if float(d1.norm()) == 0:
        raise LandscapeError("the initial and final weights are the same")
    r, _ = random_directions(model, seed)
    r = r - (r @ d1) / (d1 @ d1) * d1
    r = r * (d1.norm() / r.norm().clamp_min(1e-30))
    return d1, r


def project(
    trajectory: np.ndarray, centre: np.ndarray, d1: np.ndarray, d2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coordinates ``(a, b)`` of each recorded point on the plane, and the
    distance from each point to the plane relative to its distance from the centre (0 when
    the point lies on the plane: how honest the drawn path is)."""
    t = np.asarray(trajectory, dtype=np.float64) - np.asarray(centre, dtype=np.float64)
    basis = np.stack([d1, d2], axis=1).astype(np.float64)  # (P, 2)
    coords, *_ = np.linalg.lstsq(basis, t.T, rcond=None)
    residual = t.T - basis @ coords
    dist = np.linalg.norm(t, axis=1)
    off = np.linalg.norm(residual, axis=0) / np.where(dist > 0, dist, 1.0)
    return coords.T, off
