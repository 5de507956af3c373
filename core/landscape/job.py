"""A landscape of a trained run, start to finish: load, choose directions, compute, explain.

``load_subject`` rebuilds a run's model from its checkpoint (``torch.load(weights_only=True)``)
and its data from the run's config; ``run`` is a generator of events (the plane, each grid row,
the projected path, the 1-D interpolation, the Hessian's top eigenvalues, the finished
:class:`~core.landscape.plane.Landscape`) that the GUI and the CLI drive alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.landscape import distributed as dist
from core.landscape.directions import (
    LandscapeError,
    flat_parameters,
    init_final_directions,
    pca_directions,
    project,
    random_directions,
)
from core.landscape.eigenplane import hessian_directions
from core.landscape.plane import Landscape, Line, Row, axes
from core.landscape.problems import DEVICES, problem_for, resolve_device
from core.landscape.sampling import MAX_SAMPLES
from core.landscape.subject import Subject, load_model_subject, load_subject
from core.train.experiment import ExperimentError

DIRECTIONS = ("random", "pca", "init-final", "hessian")
# grid points x input numbers from which compiling pays (measured on LeNet: 1,500 points of
# 1,000 28x28 images); the sine fit's 3 numbers a sample never get there
COMPILE_WORTH_IT = 1_500 * 1_000 * 784


@dataclass(frozen=True)
class Request:
    directions: str = "random"
    # the grid covers [-span, span] along both directions; 0: automatic (1 for random
    # directions, else the projected training path with a 25% margin)
    span: float = 0.0
    resolution: int = 41
    # validation samples to evaluate, evenly spread; 0: automatic (the whole set when it is
    # small, else 1,000: see core.landscape.sampling)
    samples: int = 0
    precision: str = "fp32"
    seed: int = 0
    eigenvalues: int = 2  # top Hessian eigenvalues to compute (0: none)
    # torch.compile the per-point work: "auto" when the grid is big enough to repay the
    # compile time (3-8 s here, for 3-5 ms saved per point), "on", "off"
    compile: str = "auto"
    line_points: int = 41
    device: str = "cpu"  # cpu, cuda or auto: model, data and directions all go there
    # filter-normalised random directions leave biases and BatchNorm parameters out (Li et
    # al.'s --xignore biasbn); True puts them back in
    bias_bn: bool = False

    def check(self, subject: Subject) -> None:
        self.check_fields()
        if self.directions in ("pca", "init-final") and subject.trajectory is None:
            raise LandscapeError(
                f"{self.directions} directions need the run's recorded trajectory: open the "
                "run's JSON (with its .trajectory.npz), not only the checkpoint"
            )
        if subject.experiment is not None and self.precision != "fp32":
            raise LandscapeError("the bfloat16 preview is for the built-in tasks; use fp32")

    def check_fields(self) -> None:
        """What can be checked without the model: before torchrun's processes start (each
        would load the model first) and before a rank joins the others."""
        if self.directions not in DIRECTIONS:
            raise LandscapeError(
                f"Invalid directions: {self.directions!r} (choose {', '.join(DIRECTIONS)})"
            )
        if self.span != 0:
            axes(self.span, self.resolution)
        axes(1.0, self.resolution)
        if not (
            isinstance(self.samples, int)
            and not isinstance(self.samples, bool)
            and 0 <= self.samples <= MAX_SAMPLES
        ):
            raise LandscapeError(
                f"Invalid samples: {self.samples!r} (0 for automatic, or 1 .. {MAX_SAMPLES:,})"
            )
        if self.precision not in ("fp32", "bf16"):
            raise LandscapeError(f"Invalid precision: {self.precision!r} (fp32 or bf16)")
        if self.compile not in ("auto", "on", "off"):
            raise LandscapeError(f"Invalid compile: {self.compile!r} (auto, on or off)")
        if self.device not in DEVICES:
            raise LandscapeError(f"Invalid device: {self.device!r} (choose {', '.join(DEVICES)})")
        if not (isinstance(self.eigenvalues, int) and 0 <= self.eigenvalues <= 5):
            raise LandscapeError(f"Invalid eigenvalues: {self.eigenvalues!r} (0 .. 5)")


@dataclass(frozen=True)
class Planned:
    alphas: np.ndarray
    betas: np.ndarray
    directions: str
    explained: np.ndarray | None
    n_eval: int
    n_total: int = 0  # samples in the validation set (n_eval of them are evaluated)


@dataclass(frozen=True)
class PathResult:
    coords: np.ndarray  # (T, 2)
    off_plane: np.ndarray  # (T,) distance from the plane / distance from the centre
    steps: np.ndarray  # (T,)
    true_loss: np.ndarray  # (T,) the loss at the recorded weights
    plane_loss: np.ndarray  # (T,) the loss at their projection on the plane
    epoch_index: list[int]  # for each epoch, the index of its last recorded point


@dataclass(frozen=True)
class Curvature:
    eigenvalues: np.ndarray


@dataclass(frozen=True)
class Resumed:
    """The grid continues from a partial file (``done`` of ``total`` points were in it), or
    starts afresh because the file there was computed from other inputs (``why``)."""

    path: str
    done: int
    total: int
    why: str = ""


@dataclass(frozen=True)
class Done:
    landscape: Landscape
    seconds: float


Event = Planned | Resumed | Row | PathResult | Line | Curvature | Done


def run(
    subject: Subject,
    req: Request,
    should_stop: Callable[[], bool] | None = None,
    world: dist.World | None = None,
    partial: str | Path | None = None,
) -> Iterator[Event]:
    """Compute everything ``req`` asks for; each stage is an event (see the module notes).

    Under torchrun (``world`` of several ranks) every rank calls this: the grid's points are
    shared, rank 0 gathers them and alone goes on to the path, the line and the Hessian (the
    other ranks' generators end after the grid). ``partial``: the file the grid is saved to
    every few seconds and resumed from when it was computed from the same inputs.
    """
    req.check(subject)
    world = world or dist.World()
    t0 = time.perf_counter()
    device = resolve_device(req.device)
    if world.distributed and device.startswith("cuda"):
        device = f"cuda:{world.local_rank % torch.cuda.device_count()}"
    # directions on the CPU, from the model as loaded (seeded generators live there)
    model = subject.model
    centre = flat_parameters(model)
    explained = None
    problem = None  # made after the directions (it moves the model to the device)
    if req.directions == "random":
        d1, d2 = random_directions(model, req.seed, ignore_bias_bn=not req.bias_bn)
    elif req.directions == "pca":
        d1, d2, explained = pca_directions(subject.trajectory, centre)
    elif req.directions == "init-final":
        d1, d2 = init_final_directions(
            torch.as_tensor(subject.trajectory[0], dtype=centre.dtype), model, req.seed
        )
    elif req.directions == "hessian":
        problem = problem_for(subject, req.samples, device)
        try:
            d1, d2, _ = hessian_directions(problem, centre, req.seed, should_stop)
        except InterruptedError:
            return
    else:
        raise LandscapeError(f"Invalid directions: {req.directions!r}")
    coords = off = None
    if subject.trajectory is not None:
        coords, off = project(subject.trajectory, centre.numpy(), d1.numpy(), d2.numpy())
    if problem is None:
        problem = problem_for(subject, req.samples, device)
    on = {"device": device}
    try:
        ev = problem.evaluator(centre.to(**on), d1.to(**on), d2.to(**on), req.precision)
    except ExperimentError as exc:
        raise LandscapeError(str(exc)) from None
    span = req.span
    if span == 0:
        span = 1.0
        if req.directions not in ("random", "hessian") and coords is not None:
            span = float(np.abs(coords).max()) * 1.25 or 1.0
    alphas = axes(span, req.resolution)
    betas = alphas.copy()
    compiled = req.compile == "on" or (
        req.compile == "auto" and req.resolution**2 * problem.numbers >= COMPILE_WORTH_IT
    )
    if compiled:
        ev.compile()
    yield Planned(alphas, betas, req.directions, explained, problem.n, problem.total)
    # the checkpoint itself, exactly (an even resolution has no grid point there)
    try:
        centre_loss, centre_acc = ev.at(0.0, 0.0)
    except ExperimentError as exc:
        raise LandscapeError(str(exc)) from None
    grid = None
    if world.main:
        fp = fingerprint(subject, req, alphas, betas, centre, d1, d2, problem.n)
        grid = dist.PartialGrid.empty(fp, (len(betas), len(alphas)), bool(ev.classes))
        if partial is not None:
            found, why = dist.PartialGrid.load(partial, fp, grid.done.shape)
            if found is not None:
                grid = found
            if found is not None or why:
                yield Resumed(str(partial), found.count if found else 0, grid.done.size, why)
    reported = np.zeros(len(betas), dtype=bool)
    for step in dist.fill(ev, alphas, betas, grid, world, partial, should_stop):
        if grid is None:
            continue
        if step.warning:
            yield Resumed(str(partial), grid.count, grid.done.size, step.warning)
        for i in np.flatnonzero(grid.done.all(axis=1) & ~reported):
            reported[i] = True
            acc = None if grid.acc is None else grid.acc[i].copy()
            yield Row(int(i), grid.loss[i].copy(), acc)
    if grid is None or not grid.done.all():
        return  # another rank's share is done, or the grid was stopped (its rows are kept)
    extras: dict[str, Any] = {}
    if coords is not None:
        true_loss = problem.path_losses(subject.trajectory)
        plane_loss = np.array([ev.at(float(a), float(b))[0] for a, b in coords])
        epoch_index = [
            int(np.searchsorted(subject.steps, s, side="right") - 1) for s in subject.epoch_steps
        ]
        path = PathResult(coords, off, subject.steps, true_loss, plane_loss, epoch_index)
        extras |= {
            "path": coords,
            "path_off": off,
            "path_steps": subject.steps,
            "path_loss": true_loss,
            "path_plane_loss": plane_loss,
            "path_epochs": np.array(epoch_index),
        }
        yield path
        start = torch.as_tensor(subject.trajectory[0], dtype=centre.dtype)
        line = problem.line(start.to(**on), centre.to(**on), req.line_points)
        extras |= {"line_t": line.t, "line_loss": line.loss}
        yield line
    if req.eigenvalues:
        try:
            values, _ = problem.hessian(req.eigenvalues, should_stop)
        except InterruptedError:
            return
        extras["hessian"] = values
        yield Curvature(values)
    land = Landscape(
        alphas,
        betas,
        grid.loss,
        grid.acc,
        centre.float().numpy(),
        d1.float().numpy(),
        d2.float().numpy(),
        req.directions,
        req.precision,
        problem.n,
        explained,
        {
            "run": subject.name,
            "task": subject.task,
            "checkpoint": subject.checkpoint,
            "checkpoint_epoch": subject.checkpoint_epoch,
            "span": span,
            "compiled": ev.compiled,
            "seed": req.seed,
            "source": subject.source,
            "n_total": problem.total,
            "sum_scale": problem.scale,
            "centre_loss": centre_loss,
            "centre_acc": centre_acc,
            "checkpoint_val_loss": subject.checkpoint_val_loss,
            "device": device,
            "bias_bn": req.bias_bn,
            "model_file": str(subject.experiment.path) if subject.experiment else None,
        },
        extras,
    )
    yield Done(land, time.perf_counter() - t0)


def fingerprint(subject, req, alphas, betas, centre, d1, d2, n_eval) -> str:
    """What a grid's values depend on: the model (file and weights), the plane, the grid, the
    data evaluated and the precision."""
    return dist.fingerprint(
        model_file=subject.experiment.digest if subject.experiment else "",
        task=subject.task,
        source=subject.source,
        centre=centre,
        d1=d1,
        d2=d2,
        alphas=alphas,
        betas=betas,
        samples=n_eval,
        precision=req.precision,
    )


__all__ = [
    "DIRECTIONS",
    "Curvature",
    "Done",
    "Event",
    "PathResult",
    "Planned",
    "Request",
    "Resumed",
    "Subject",
    "fingerprint",
    "load_model_subject",
    "load_subject",
    "run",
]
