"""Several runs on one plane, and the straight line between two of their end points.

The runs must share a model (the same built-in task, or the same experiment file). The plane:

- ``endpoints``: through the shared start θ0 and runs A's and B's end points θA, θB, with
  d1 = θA - θ0 and d2 = the part of θB - θ0 orthogonal to d1 (so θ0 is (0, 0), θA (1, 0) and
  θB (c, 1)). When the runs start from different weights it is the plane through three end
  points (A's, B's and a third run's; with two runs only, A's start stands in for the third);
  :attr:`Plane.note` says so.
- ``pca``: the top two principal directions of all the runs' trajectories together, centred on
  run A's end point.
- ``random``: filter-normalised random directions centred on run A's end point.
- ``hessian``: the top two Hessian eigenvectors at run A's end point.

Every run's trajectory is projected (a run without one is its end point alone). The line
between A's and B's end points gives the loss barrier of linear mode connectivity (Frankle et
al. 2020): ``max_t L((1-t)θA + tθB) - ((1-t)L(θA) + tL(θB))``.

A run's end point is its checkpoint (the weights the Landscape of one run is centred on).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from core.landscape.directions import (
    LandscapeError,
    flat_parameters,
    pca_directions,
    project,
    random_directions,
)
from core.landscape.eigenplane import hessian_directions
from core.landscape.job import Planned, Request
from core.landscape.plane import Grid, Landscape, Row, axes
from core.landscape.problems import problem_for, resolve_device
from core.landscape.subject import Subject, find_checkpoint
from core.train.experiment import ExperimentError

MULTI_DIRECTIONS = ("endpoints", "pca", "random", "hessian")
MARGIN = 0.25  # of the points' extent, on each side, for an automatic grid
SAME_START = 1e-6  # relative distance under which two runs' starts are the same weights


# --- the barrier -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Barrier:
    """The loss along θA -> θB and its barrier: ``height`` at ``t_max`` (0 when the line never
    rises above the chord between its ends)."""

    t: np.ndarray  # (N,) from 0 (A's end point) to 1 (B's)
    loss: np.ndarray  # (N,)
    height: float
    t_max: float
    a: int = 0  # the runs' indices
    b: int = 1


def barrier_height(t: np.ndarray, loss: np.ndarray) -> tuple[float, float]:
    """Frankle et al.'s barrier ``max_t L(t) - ((1-t) L(0) + t L(1))`` of a loss sampled at
    ``t`` (which must include 0 and 1), and the ``t`` where it is reached.

    Never below 0: the ends themselves lie on the chord."""
    t = np.asarray(t, dtype=np.float64)
    loss = np.asarray(loss, dtype=np.float64)
    if t.shape != loss.shape or t.ndim != 1:
        raise ValueError(f"t and loss must be 1-D and alike, got {t.shape} and {loss.shape}")
    i0, i1 = np.flatnonzero(np.isclose(t, 0.0)), np.flatnonzero(np.isclose(t, 1.0))
    if not (len(i0) and len(i1)):
        raise ValueError("the line must be sampled at t = 0 and t = 1 (the two end points)")
    inside = (t >= 0) & (t <= 1)
    l0, l1 = loss[i0[0]], loss[i1[0]]
    chord = l0 + t * (l1 - l0)  # exactly L(0) everywhere when L(1) = L(0) (a run with itself)
    rise = np.where(inside, loss - chord, -np.inf)  # (N,)
    k = int(np.argmax(rise))
    return max(0.0, float(rise[k])), float(t[k])


# --- the plane -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plane:
    centre: torch.Tensor  # (P,)
    d1: torch.Tensor  # (P,)
    d2: torch.Tensor  # (P,)
    explained: np.ndarray | None
    axes: tuple[str, str]  # what a and b mean, in words
    note: str = ""  # e.g. "the runs start from different weights: ..."


def _unit_or_fail(v: torch.Tensor, what: str) -> None:
    if float(v.norm()) == 0:
        raise LandscapeError(what)


def endpoints_plane(starts: list[torch.Tensor | None], ends: list[torch.Tensor], a: int, b: int):
    """The ``endpoints`` :class:`Plane` of runs ``a`` and ``b`` (see the module notes)."""
    if len(ends) < 2:
        raise LandscapeError("the endpoints plane needs at least 2 runs (choose 2 or more)")
    if a == b:
        raise LandscapeError("the endpoints plane needs two different runs as A and B")
    known = [s for s in starts if s is not None]
    if not known:
        raise LandscapeError(
            "the endpoints plane needs the runs' start: none of the runs has a recorded "
            "trajectory (open their JSON with its .trajectory.npz)"
        )
    s0 = known[0]
    scale = float(s0.norm()) or 1.0
    shared = all(float((s - s0).norm()) <= SAME_START * scale for s in known)
    if shared:
        origin, ta, tb = s0, ends[a], ends[b]
        names = ("θA - θ0 (a = 1: A's end point)", "the part of θB - θ0 orthogonal to it")
        note = ""
        if len(known) < len(starts):
            note = "runs without a trajectory are taken to start from the same θ0"
    else:
        others = [i for i in range(len(ends)) if i not in (a, b)]
        origin, ta = ends[a], ends[b]
        if others:
            tb = ends[others[0]]
            third = f"run {others[0] + 1}'s end point"
        else:
            if starts[a] is None:
                raise LandscapeError(
                    "the runs start from different weights and run A has no trajectory: "
                    "choose a third run, or a run with its trajectory as A"
                )
            tb = starts[a]
            third = "A's start"
        names = ("θB - θA (a = 1: B's end point)", f"towards {third} (orthogonal part)")
        note = (
            "the runs start from different weights: the plane goes through A's end point "
            f"(the centre), B's end point and {third}"
        )
    d1 = ta - origin
    _unit_or_fail(d1, "runs A and B end at the same weights: there is no plane between them")
    v = tb - origin
    d2 = v - (v @ d1) / (d1 @ d1) * d1
    if float(d2.norm()) <= 1e-9 * float(v.norm() + d1.norm()):
        # the three points are on one line: any direction across it will do; a random one
        g = torch.Generator().manual_seed(0)
        r = torch.randn(d1.numel(), generator=g, dtype=torch.float64).to(d1.dtype)
        d2 = r - (r @ d1) / (d1 @ d1) * d1
        d2 = d2 * (d1.norm() / d2.norm())
        note = (note + "; " if note else "") + "the points lie on one line: b is random"
    return Plane(origin, d1, d2, None, names, note)


def make_plane(
    directions: str,
    subjects: list[Subject],
    ends: list[torch.Tensor],
    a: int,
    b: int,
    req: Request,
    problem=None,
    should_stop: Callable[[], bool] | None = None,
) -> Plane:
    """The plane ``directions`` asks for (``problem``: run A's, for the Hessian)."""
    starts = [
        None if s.trajectory is None else torch.as_tensor(s.trajectory[0], dtype=ends[0].dtype)
        for s in subjects
    ]
    if directions == "endpoints":
        return endpoints_plane(starts, ends, a, b)
    centre = ends[a]
    if directions == "pca":
        paths = [s.trajectory for s in subjects if s.trajectory is not None]
        points = np.concatenate(paths + [e.numpy()[None] for e in ends])  # (sum T + K, P)
        d1, d2, explained = pca_directions(points, centre)
        return Plane(centre, d1, d2, explained, ("PC 1 of all the paths", "PC 2"))
    if directions == "random":
        d1, d2 = random_directions(subjects[a].model, req.seed, ignore_bias_bn=not req.bias_bn)
        axes_ = ("random direction 1 (filter-normalised)", "random direction 2")
        return Plane(centre, d1, d2, None, axes_)
    if directions == "hessian":
        d1, d2, values = hessian_directions(problem, centre, req.seed, should_stop)
        words = (
            f"Hessian eigenvector 1 (λ = {values[0]:.4g})",
            f"eigenvector 2 (λ = {values[1]:.4g})",
        )
        return Plane(centre, d1, d2, None, words, "eigenvectors scaled to the length of θA")
    raise LandscapeError(
        f"Invalid directions for several runs: {directions!r} "
        f"(choose {', '.join(MULTI_DIRECTIONS)})"
    )


# --- finding the runs' checkpoints ---------------------------------------------------------


# --- checking the runs -----------------------------------------------------------------------


def check_runs(subjects: list[Subject]) -> list[str]:
    """Refuse runs that cannot share a plane (LandscapeError); the notes to show otherwise."""
    if not subjects:
        raise LandscapeError("no runs: choose at least one")
    first = subjects[0]
    kind = _kind(first)
    n = flat_parameters(first.model).numel()
    for s in subjects[1:]:
        if _kind(s) != kind:
            raise LandscapeError(
                f"runs of different tasks or models cannot share a plane: {first.name!r} is "
                f"{kind}, {s.name!r} is {_kind(s)}"
            )
        m = flat_parameters(s.model).numel()
        if m != n:
            raise LandscapeError(
                f"runs of different models cannot share a plane: {first.name!r} has {n:,} "
                f"parameters, {s.name!r} {m:,}"
            )
    notes = [
        f"{s.name}: no recorded trajectory, its end point only"
        for s in subjects
        if s.trajectory is None
    ]
    if any(s.source != first.source for s in subjects[1:]):
        notes.append(f"the runs' data differ: all are evaluated on {first.name}'s ({first.source})")
    return notes


def _kind(s: Subject) -> str:
    if s.experiment is not None:
        return f"the model file {s.experiment.path}"
    return f"task {s.task}"


# --- the computation -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunPath:
    """One run projected on the plane (``coords`` of one point when it has no trajectory)."""

    index: int
    name: str
    colour: str
    coords: np.ndarray  # (T, 2)
    off_plane: np.ndarray  # (T,)
    steps: np.ndarray  # (T,)
    true_loss: np.ndarray  # (T,)
    plane_loss: np.ndarray  # (T,)
    epoch_index: list[int]
    end: np.ndarray  # (2,) the end point's coordinates
    trajectory: bool  # False: the end point alone


@dataclass(frozen=True)
class MultiPlanned(Planned):
    names: tuple[str, ...] = ()
    axes: tuple[str, str] = ("", "")
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MultiDone:
    landscape: Landscape
    paths: list[RunPath]
    barrier: Barrier | None
    seconds: float


@dataclass(frozen=True)
class MultiRequest:
    """The plane's settings (``base``: span, resolution, samples, ...) and which runs are A and B
    (``a`` is also the centre of the pca, random and hessian planes)."""

    base: Request = field(default_factory=Request)
    directions: str = "endpoints"
    a: int = 0
    b: int = 1
    colours: tuple[str, ...] = ()  # one per run ("" or missing: none given)
    line_points: int = 41

    def check(self, subjects: list[Subject]) -> None:
        if self.directions not in MULTI_DIRECTIONS:
            raise LandscapeError(
                f"Invalid directions: {self.directions!r} (choose {', '.join(MULTI_DIRECTIONS)})"
            )
        n = len(subjects)
        if self.directions == "endpoints" and n < 2:
            raise LandscapeError("the endpoints plane needs at least 2 runs (choose 2 or more)")
        for name, i in (("A", self.a), ("B", self.b)):
            if not (0 <= i < n):
                raise LandscapeError(f"Invalid run {name}: {i + 1} (there are {n} runs)")
        if not (3 <= self.line_points <= 401):
            raise LandscapeError(f"Invalid line points: {self.line_points} (3 .. 401)")
        # the single-run checks of the shared settings (its directions are not used here)
        replace(self.base, directions="random").check(subjects[0])


Event = MultiPlanned | Row | RunPath | Barrier | MultiDone


def run_many(
    subjects: list[Subject],
    req: MultiRequest,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[Event]:
    """Everything for several runs on one plane: the plan, each grid row, each run's path, the
    line between A and B with its barrier, and the finished :class:`MultiDone`. Stops quietly
    between rows when ``should_stop()``."""
    notes = check_runs(subjects)
    req.check(subjects)
    stop = should_stop or (lambda: False)
    t0 = time.perf_counter()
    device = resolve_device(req.base.device)
    on = {"device": device}
    a, b = req.a, req.b
    ends = [flat_parameters(s.model) for s in subjects]
    # run A's data and loss (check_runs made sure the runs share a model); made after random
    # directions, which are drawn on the CPU (it moves the model to the device)
    problem = None
    if req.directions == "hessian":
        problem = problem_for(subjects[a], req.base.samples, device)
    try:
        plane = make_plane(req.directions, subjects, ends, a, b, req.base, problem, stop)
    except InterruptedError:
        return
    problem = problem or problem_for(subjects[a], req.base.samples, device)
    if plane.note:
        notes.append(plane.note)
    centre = plane.centre
    d1, d2 = plane.d1.to(centre.dtype), plane.d2.to(centre.dtype)
    projected = []
    for s, end in zip(subjects, ends, strict=True):
        points = s.trajectory if s.trajectory is not None else end.numpy()[None]
        c, off = project(points, centre.numpy(), d1.numpy(), d2.numpy())
        e, _ = project(end.numpy()[None], centre.numpy(), d1.numpy(), d2.numpy())
        projected.append((c, off, e[0]))
    alphas, betas = grid_axes(projected, req.base)
    try:
        ev = problem.evaluator(centre.to(**on), d1.to(**on), d2.to(**on), req.base.precision)
    except ExperimentError as exc:
        raise LandscapeError(str(exc)) from None
    names = tuple(s.name for s in subjects)
    yield MultiPlanned(
        alphas, betas, req.directions, plane.explained, problem.n, problem.total,
        names, plane.axes, tuple(notes),
    )  # fmt: skip
    grid = Grid(ev, alphas, betas)
    for row in grid.rows():
        yield row
        if stop():
            return
    paths = []
    for i, (s, (c, off, e)) in enumerate(zip(subjects, projected, strict=True)):
        has = s.trajectory is not None
        points = s.trajectory if has else ends[i].numpy()[None]
        steps = s.steps if has else np.array([s.steps[-1] if s.steps is not None else 0])
        epochs = (
            [int(np.searchsorted(s.steps, st, side="right") - 1) for st in s.epoch_steps]
            if has
            else []
        )
        colour = req.colours[i] if i < len(req.colours) else ""
        path = RunPath(
            i, s.name, colour, c, off, np.asarray(steps), problem.path_losses(points),
            np.array([ev.at(float(x), float(y))[0] for x, y in c]), epochs, e, has,
        )  # fmt: skip
        paths.append(path)
        yield path
        if stop():
            return
    barrier = None
    if len(subjects) >= 2 and a != b:
        barrier = line_between(problem, ends[a].to(**on), ends[b].to(**on), req, a, b)
        yield barrier
    land = _landscape(subjects, req, plane, grid, problem, paths, barrier, notes, device)
    yield MultiDone(land, paths, barrier, time.perf_counter() - t0)


def line_between(problem, theta_a, theta_b, req: MultiRequest, a: int, b: int) -> Barrier:
    """The loss at ``req.line_points`` points from θA (t = 0) to θB (t = 1), and its barrier."""
    zero = torch.zeros_like(theta_a)
    ev = problem.evaluator(theta_a, theta_b - theta_a, zero, "fp32")
    t = np.linspace(0.0, 1.0, req.line_points)
    loss = np.array([ev.at(float(v), 0.0)[0] for v in t])
    height, t_max = barrier_height(t, loss)
    return Barrier(t, loss, height, t_max, a, b)


def grid_axes(projected, base: Request) -> tuple[np.ndarray, np.ndarray]:
    """A grid over every path and end point with a margin (or ``base.span`` either side of
    their middle), so all the runs are on the map."""
    pts = np.concatenate([np.vstack([c, e[None], np.zeros((1, 2))]) for c, _, e in projected])
    lo, hi = pts.min(axis=0), pts.max(axis=0)  # (2,)
    mid = (lo + hi) / 2
    if base.span:
        half = np.array([base.span, base.span])
    else:
        half = np.maximum((hi - lo) / 2 * (1 + 2 * MARGIN), 1e-3)
    unit = axes(1.0, base.resolution)
    return mid[0] + half[0] * unit, mid[1] + half[1] * unit


def _landscape(subjects, req, plane, grid, problem, paths, barrier, notes, device) -> Landscape:
    extras: dict[str, Any] = {
        "run_names": np.array([p.name for p in paths]),
        "end_points": np.array([p.end for p in paths]),  # (K, 2)
    }
    for p in paths:
        k = p.index
        extras |= {
            f"path_{k}": p.coords,
            f"path_{k}_off": p.off_plane,
            f"path_{k}_steps": p.steps,
            f"path_{k}_loss": p.true_loss,
            f"path_{k}_plane_loss": p.plane_loss,
            f"path_{k}_epochs": np.array(p.epoch_index, dtype=np.int64),
        }
    meta: dict[str, Any] = {
        "runs": [{"name": p.name, "colour": p.colour, "trajectory": p.trajectory} for p in paths],
        "task": subjects[0].task,
        "axes": list(plane.axes),
        "notes": list(notes),
        "pair": [req.a, req.b],
        "source": subjects[req.a].source,
        "n_total": problem.total,
        "sum_scale": problem.scale,
        "device": device,
        "seed": req.base.seed,
        "bias_bn": req.base.bias_bn,
        "model_file": str(subjects[0].experiment.path) if subjects[0].experiment else None,
    }
    if barrier is not None:
        extras |= {"barrier_t": barrier.t, "barrier_loss": barrier.loss}
        meta |= {"barrier": barrier.height, "barrier_t": barrier.t_max}
    return Landscape(
        grid.alphas, grid.betas, grid.loss, grid.acc,
        plane.centre.float().numpy(), plane.d1.float().numpy(), plane.d2.float().numpy(),
        req.directions, req.base.precision, problem.n, plane.explained, meta, extras,
    )  # fmt: skip


def paths_of(land: Landscape) -> list[RunPath]:
    """The runs' paths stored in a landscape (a saved one included); [] for one run's."""
    x, runs = land.extras, land.meta.get("runs") or []
    ends = x.get("end_points")
    out = []
    for k, info in enumerate(runs):
        if f"path_{k}" not in x:
            continue
        out.append(
            RunPath(
                k,
                str(info.get("name", f"run {k + 1}")),
                str(info.get("colour", "")),
                np.asarray(x[f"path_{k}"]),
                np.asarray(x[f"path_{k}_off"]),
                np.asarray(x[f"path_{k}_steps"]),
                np.asarray(x[f"path_{k}_loss"]),
                np.asarray(x[f"path_{k}_plane_loss"]),
                [int(i) for i in x.get(f"path_{k}_epochs", [])],
                np.asarray(ends[k]) if ends is not None else np.asarray(x[f"path_{k}"])[-1],
                bool(info.get("trajectory", True)),
            )  # fmt: skip
        )
    return out


def barrier_of(land: Landscape) -> Barrier | None:
    x, meta = land.extras, land.meta
    if "barrier_t" not in x or "barrier" not in meta:
        return None
    a, b = (meta.get("pair") or [0, 1])[:2]
    return Barrier(
        np.asarray(x["barrier_t"]), np.asarray(x["barrier_loss"]), float(meta["barrier"]),
        float(meta.get("barrier_t", 0.0)), int(a), int(b),
    )  # fmt: skip


__all__ = [
    "MULTI_DIRECTIONS",
    "Barrier",
    "MultiDone",
    "MultiPlanned",
    "MultiRequest",
    "Plane",
    "RunPath",
    "barrier_height",
    "barrier_of",
    "check_runs",
    "endpoints_plane",
    "find_checkpoint",
    "grid_axes",
    "line_between",
    "make_plane",
    "paths_of",
    "run_many",
]
