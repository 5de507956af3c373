"""A landscape of a trained run, start to finish: load, choose directions, compute, explain.

``load_subject`` rebuilds a run's model from its checkpoint (``torch.load(weights_only=True)``)
and its data from the run's config; ``run`` is a generator of events (the plane, each grid row,
the projected path, the 1-D interpolation, the Hessian's top eigenvalues, the finished
:class:`~core.landscape.plane.Landscape`) that the GUI and the CLI drive alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.landscape.curvature import hessian_eigs
from core.landscape.directions import (
    LandscapeError,
    flat_parameters,
    init_final_directions,
    pca_directions,
    project,
    random_directions,
)
from core.landscape.evaluator import PlaneEvaluator
from core.landscape.plane import Grid, Landscape, Line, Row, axes, interpolate, path_losses
from core.landscape.sampling import MAX_SAMPLES, evaluation_set
from core.train.checkpoints import CheckpointError, load_checkpoint
from core.train.losses import build_loss
from core.train.runs import RunFileError, RunRecord
from core.train.tasks import build_task, get_task
from core.train.training import TrainConfig

DIRECTIONS = ("random", "pca", "init-final")
# grid points x input numbers from which compiling pays (measured on LeNet: 1,500 points of
# 1,000 28x28 images); the sine fit's 3 numbers a sample never get there
COMPILE_WORTH_IT = 1_500 * 1_000 * 784


@dataclass
class Subject:
    """A trained model and everything needed to evaluate it."""

    name: str
    task: str
    model: nn.Module
    loss_fn: nn.Module
    x: torch.Tensor  # the whole validation set Train used (a request may sample it)
    y: torch.Tensor
    classes: int
    source: str  # where the data came from
    trajectory: np.ndarray | None = None  # (T, P) recorded parameters
    steps: np.ndarray | None = None  # (T,) their global steps
    epoch_steps: list[int] = field(default_factory=list)  # the step that ended each epoch
    checkpoint: str = ""
    checkpoint_epoch: int | None = None
    checkpoint_val_loss: float | None = None  # the validation loss Train recorded for it


def load_subject(
    checkpoint: str | None = None,
    run: str | RunRecord | None = None,
    data_dir: str | None = None,
) -> Subject:
    """The model of ``checkpoint`` (default: the run's best) with the run's data and path.

    Either may be missing: a run file alone uses the checkpoint it names; a checkpoint alone
    carries its config but no trajectory (so no PCA or init-final directions).
    """
    record = None
    if isinstance(run, RunRecord):
        record = run
    elif run:
        try:
            record = RunRecord.load(run)
        except RunFileError as exc:
            raise LandscapeError(str(exc)) from None
    if checkpoint is None:
        paths = [c["path"] for c in (record.checkpoints if record else [])]
        if not paths:
            raise LandscapeError("no checkpoint: give one (the run names none)")
        checkpoint = paths[-1]
    try:
        ck = load_checkpoint(checkpoint)
    except CheckpointError as exc:
        raise LandscapeError(str(exc)) from None
    try:
        config = TrainConfig.from_dict(record.config if record else ck["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LandscapeError(f"the run's configuration cannot be read ({exc})") from None
    if ck.get("task") != config.task:
        raise LandscapeError(
            f"the checkpoint is for task {ck.get('task')!r}, the run for {config.task!r}"
        )
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    # the validation set Train used: the same task, data, limit and dtype
    setup = build_task(
        config.task,
        seed=config.seed,
        dataset=config.dataset,
        data_dir=data_dir or config.data_dir,
        limit=config.limit,
        activation=config.activation,
        dtype=dtype,
    )
    model = setup.model.eval()
    try:
        model.load_state_dict(ck["model"])
    except (RuntimeError, KeyError) as exc:
        raise LandscapeError(
            f"the checkpoint does not fit the {config.task} model ({exc})"
        ) from None
    traj = steps = None
    if record is not None and record.snapshots is not None and len(record.snapshots):
        traj = np.asarray(record.snapshots, dtype=np.float32)
        steps = np.asarray(record.snapshot_steps)
        if traj.shape[1] != flat_parameters(model).numel():
            raise LandscapeError("the run's trajectory does not fit its model")
    return Subject(
        name=(record.name if record else "") or Path(checkpoint).stem,
        task=config.task,
        model=model,
        loss_fn=build_loss(config.loss or get_task(config.task).loss),
        x=setup.val_x,
        y=setup.val_y,
        classes=setup.classes,
        source=setup.source,
        trajectory=traj,
        steps=steps,
        epoch_steps=[int(r["step"]) for r in (record.epochs if record else [])],
        checkpoint=str(checkpoint),
        checkpoint_epoch=ck.get("epoch"),
        checkpoint_val_loss=_float_or_none(ck.get("val_loss")),
    )


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


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

    def check(self, subject: Subject) -> None:
        if self.directions not in DIRECTIONS:
            raise LandscapeError(
                f"Invalid directions: {self.directions!r} (choose {', '.join(DIRECTIONS)})"
            )
        if self.directions in ("pca", "init-final") and subject.trajectory is None:
            raise LandscapeError(
                f"{self.directions} directions need the run's recorded trajectory: open the "
                "run's JSON (with its .trajectory.npz), not only the checkpoint"
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
class Done:
    landscape: Landscape
    seconds: float


Event = Planned | Row | PathResult | Line | Curvature | Done


def run(
    subject: Subject, req: Request, should_stop: Callable[[], bool] | None = None
) -> Iterator[Event]:
    """Compute everything ``req`` asks for; each stage is an event (see the module notes)."""
    req.check(subject)
    t0 = time.perf_counter()
    model = subject.model
    data = evaluation_set(subject.x, subject.y, subject.loss_fn, req.samples)
    x, y, loss_fn = data.x, data.y, data.loss_fn
    centre = flat_parameters(model)
    explained = None
    if req.directions == "random":
        d1, d2 = random_directions(model, req.seed)
    elif req.directions == "pca":
        d1, d2, explained = pca_directions(subject.trajectory, centre)
    else:
        d1, d2 = init_final_directions(
            torch.as_tensor(subject.trajectory[0], dtype=centre.dtype), model, req.seed
        )
    ev = PlaneEvaluator(model, loss_fn, x, y, centre, d1, d2, subject.classes, req.precision)
    coords = off = None
    if subject.trajectory is not None:
        coords, off = project(
            subject.trajectory, centre.numpy(), d1.float().numpy(), d2.float().numpy()
        )
    span = req.span
    if span == 0:
        span = 1.0
        if req.directions != "random" and coords is not None:
            span = float(np.abs(coords).max()) * 1.25 or 1.0
    alphas = axes(span, req.resolution)
    betas = alphas.copy()
    compiled = req.compile == "on" or (
        req.compile == "auto" and req.resolution**2 * x.numel() >= COMPILE_WORTH_IT
    )
    if compiled:
        ev.compile()
    yield Planned(alphas, betas, req.directions, explained, data.n, data.total)
    # the checkpoint itself, exactly (an even resolution has no grid point there)
    centre_loss, centre_acc = ev.at(0.0, 0.0)
    grid = Grid(ev, alphas, betas)
    yield from grid.rows()
    extras: dict[str, Any] = {}
    if coords is not None:
        true_loss = path_losses(model, loss_fn, x, y, subject.trajectory)
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
        line = interpolate(
            model, loss_fn, x, y, start, centre, req.line_points, classes=subject.classes
        )
        extras |= {"line_t": line.t, "line_loss": line.loss}
        yield line
    if req.eigenvalues:
        try:
            values, _ = hessian_eigs(
                model,
                loss_fn,
                x,
                y,
                k=req.eigenvalues,
                iters=20,
                tol=1e-3,
                should_stop=should_stop,
            )
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
        len(x),
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
            "n_total": data.total,
            "sum_scale": data.scale,
            "centre_loss": centre_loss,
            "centre_acc": centre_acc,
            "checkpoint_val_loss": subject.checkpoint_val_loss,
        },
        extras,
    )
    yield Done(land, time.perf_counter() - t0)


__all__ = [
    "DIRECTIONS",
    "Curvature",
    "Done",
    "Event",
    "PathResult",
    "Planned",
    "Request",
    "Subject",
    "load_subject",
    "run",
]
