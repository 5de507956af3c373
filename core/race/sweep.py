"""Hyperparameter sweeps: one race of N x N copies of a racer that differ in two hyperparameters.

:func:`sweep_map` is a generator like :func:`core.race.basins.basin_map`: every cell's position
lives in one ``(K, 2)`` tensor (K = N*N), so one forward and one backward pass per step serve all
cells, and real ``torch.optim`` classes step them. It yields :class:`SweepProgress` and, last,
the :class:`SweepMap`; the caller may stop between yields.

Why cells are grouped: a param group holds one set of hyperparameters, and torch.optim pays
~50-100 us of Python per group per step on this machine (bench/sweep.py), so one group per cell
is ~100x too slow for 64 x 64 cells. Cells that share every optimizer hyperparameter share a
group. The learning rate is taken out of the groups ("folded") for optimizers whose update is
``p -= lr * U`` with ``U`` independent of ``p`` and ``lr`` (weight decay 0): the group runs with
lr = 1 on ``q = p / lr`` and ``p = lr * q``, which is the same update up to rounding (tests check
<= 1e-9 against plain loops). Noise and clip value are ours, not torch's, and vary per cell.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from core.optimizers import OptimizerSpec, get_optimizer, group_values
from core.race.race import _FUSED_OK, DIVERGE_FACTOR, RacerSpec
from core.race.surfaces import Surface

Strategy = Literal["auto", "cells"]
STRATEGIES = ("auto", "cells")
RACE_OPTIONS = ("noise", "clip_value")  # racer fields, applied to the gradient by us
# Classes whose step is p -= lr * U(gradients) when weight decay is 0 (read from torch.optim).
_LR_FOLDABLE = {"SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad"}
_LR_FOLDABLE |= {"Adadelta"}
MAX_GRID = 1024
MAX_CELL_GROUPS = 16_384  # beyond this, one param group per cell takes hours
_BYTES_PER_CELL = 640  # positions, gradients, optimizer state and temporaries, float64
_BYTES_PER_GROUP = 6_000  # a param group dict, its state dict and torch's per-group lists


class SweepError(ValueError):
    """A sweep that cannot run as asked; the message names the problem."""


@dataclass(frozen=True)
class SweepAxis:
    """One swept hyperparameter: an optimizer hyperparameter or ``noise`` / ``clip_value``."""

    name: str
    low: float
    high: float
    log: bool = False

    def values(self, n: int) -> np.ndarray:
        """The ``n`` values of this axis, low to high."""
        if self.log:
            return np.geomspace(self.low, self.high, n)
        return np.linspace(self.low, self.high, n)

    def label(self) -> str:
        return f"{self.name} (log)" if self.log else self.name

    def text(self) -> str:
        return f"{self.name}={self.low:g}:{self.high:g}" + (":log" if self.log else "")


def parse_axis(text: str) -> SweepAxis:
    """Read ``NAME=LOW:HIGH[:log]`` (or ``:lin``); ``SweepError`` says what is wrong."""
    name, sep, rest = text.strip().partition("=")
    name = name.strip()
    if not sep or not name:
        raise SweepError(f"Invalid sweep {text!r}: write NAME=LOW:HIGH[:log]")
    parts = [p.strip() for p in rest.split(":")]
    if len(parts) not in (2, 3):
        raise SweepError(f"Invalid sweep {text!r}: write NAME=LOW:HIGH[:log]")
    scale = parts[2].lower() if len(parts) == 3 else "lin"
    if scale not in ("lin", "log"):
        raise SweepError(f"Invalid sweep {text!r}: the scale must be lin or log, not {scale!r}")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise SweepError(f"Invalid sweep {text!r}: LOW and HIGH must be numbers") from None
    return SweepAxis(name, low, high, scale == "log")


def cell_racer(racer: RacerSpec, axes: Sequence[SweepAxis], values: Sequence[float]) -> RacerSpec:
    """``racer`` with the axes' hyperparameters set to ``values`` (one per axis)."""
    hyper = dict(racer.optimizer.hyper)
    fields: dict[str, float] = {}
    for axis, v in zip(axes, values, strict=True):
        if axis.name in RACE_OPTIONS:
            fields[axis.name] = float(v)
        else:
            hyper[axis.name] = float(v)
    return dataclasses.replace(
        racer, optimizer=OptimizerSpec(racer.optimizer.name, hyper), **fields
    )


def validate_sweep(racer: RacerSpec, x: SweepAxis, y: SweepAxis) -> None:
    """Raise :class:`SweepError` naming the hyperparameter or range that cannot be swept."""
    info = get_optimizer(racer.optimizer.name)
    if not info.elementwise:
        raise SweepError(f"{info.label} cannot be swept: its steps are not element-wise")
    if racer.scheduler is not None:
        raise SweepError("Sweeps run without an LR scheduler: remove the racer's scheduler")
    if x.name == y.name:
        raise SweepError(f"Sweep two different hyperparameters, not {x.name} twice")
    for axis in (x, y):
        _validate_axis(racer, info, axis)
    for vx in (x.low, x.high):  # torch's own cross-checks (e.g. Nesterov needs momentum)
        for vy in (y.low, y.high):
            try:
                cell_racer(racer, (x, y), (vx, vy)).validate()
            except ValueError as exc:
                raise SweepError(f"{x.name}={vx:g}, {y.name}={vy:g}: {exc}") from None


def _validate_axis(racer: RacerSpec, info, axis: SweepAxis) -> None:
    if not (math.isfinite(axis.low) and math.isfinite(axis.high)):
        raise SweepError(f"Invalid range for {axis.name}: the ends must be finite")
    if not axis.low < axis.high:
        raise SweepError(f"Invalid range for {axis.name}: {axis.low:g} is not below {axis.high:g}")
    if axis.log and axis.low <= 0:
        raise SweepError(f"Invalid range for {axis.name}: a log axis needs LOW > 0")
    if axis.name in RACE_OPTIONS:
        if axis.name == "clip_value" and racer.clip == "none":
            raise SweepError("clip_value does nothing while the racer's clip is none")
        for v in (axis.low, axis.high):
            try:
                dataclasses.replace(racer, **{axis.name: v}).validate()
            except ValueError as exc:
                raise SweepError(str(exc)) from None
        return
    names = [p.name for p in info.params] + list(RACE_OPTIONS)
    try:
        param = info.param(axis.name)
    except ValueError:
        raise SweepError(
            f"{info.label} has no hyperparameter {axis.name!r}; choose one of {', '.join(names)}"
        ) from None
    if param.kind != "float":
        raise SweepError(f"{axis.name} of {info.label} is not a real number and cannot be swept")
    for v in (axis.low, axis.high):
        try:
            param.validate(v, info.label)
        except ValueError as exc:
            raise SweepError(str(exc)) from None


@dataclass(frozen=True)
class SweepProgress:
    steps_done: int
    steps_total: int


@dataclass(frozen=True)
class SweepMap:
    """Per-cell results; every (N, N) array is indexed ``[iy, ix]``."""

    x_axis: SweepAxis
    y_axis: SweepAxis
    x: np.ndarray  # (N,) values of the first hyperparameter
    y: np.ndarray  # (N,) values of the second
    final_loss: np.ndarray  # (N, N) loss at the end (at the last point before diverging)
    steps_to_converge: np.ndarray  # (N, N) first step within eps of a known minimum, -1 if never
    diverged_at: np.ndarray  # (N, N) step at which the cell diverged, -1 if it did not
    final: np.ndarray  # (N, N, 2) where each cell ended
    steps: int
    eps: float
    grouped: str  # how cells were batched, for the record ("lr folded, 64 groups", ...)

    @property
    def diverged(self) -> np.ndarray:
        return self.diverged_at >= 0

    def racer_at(self, racer: RacerSpec, ix: int, iy: int) -> RacerSpec:
        """The racer of cell ``(ix, iy)``."""
        return cell_racer(racer, (self.x_axis, self.y_axis), (self.x[ix], self.y[iy]))


def estimate_bytes(grid: int, groups: int) -> int:
    """Memory a sweep needs, roughly (checked before it starts)."""
    return grid * grid * _BYTES_PER_CELL + groups * _BYTES_PER_GROUP


def available_bytes() -> int:
    """Memory the system can still give (MemAvailable); a large number when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 40


class _Plan:
    """How the cells are laid out in groups: storage order, group slices and lr folding.

    Built from the two axes, not from N*N racer specs, so a 1024 x 1024 plan takes no time.
    """

    def __init__(self, racer: RacerSpec, x: SweepAxis, y: SweepAxis, n: int, strategy: str):
        if strategy not in STRATEGIES:
            raise ValueError(f"Invalid strategy: {strategy!r} (choose one of {STRATEGIES})")
        self.info = get_optimizer(racer.optimizer.name)
        base = racer.optimizer.resolved()
        wd_swept = "weight_decay" in (x.name, y.name)
        self.fold = (
            strategy == "auto"
            and "lr" in (x.name, y.name)
            and self.info.cls.__name__ in _LR_FOLDABLE
            and not wd_swept
            and not float(base.get("weight_decay", 0.0) or 0.0)
        )
        xs, ys = x.values(n), y.values(n)
        gx, gy = np.meshgrid(xs, ys)  # (N, N) each, [iy, ix]
        cell = {x.name: gx.ravel(), y.name: gy.ravel()}  # (K,) per swept name, k = iy*N + ix
        K = n * n
        self.lr = cell.get("lr", np.full(K, float(base["lr"])))  # (K,)
        self.noise = cell.get("noise", np.full(K, racer.noise))  # (K,)
        self.clip_value = cell.get("clip_value", np.full(K, racer.clip_value))  # (K,)
        # Axes that must live in torch's param groups: every optimizer hyperparameter, except
        # lr when it is folded into the positions.
        in_group = [
            a for a in (x, y) if a.name not in RACE_OPTIONS and not (a.name == "lr" and self.fold)
        ]
        iy, ix = np.divmod(np.arange(K), n)  # (K,) each
        if strategy == "cells":
            gid = np.arange(K)
        else:
            gid = np.zeros(K, dtype=np.int64)
            for a in in_group:
                gid = gid * n + (ix if a is x else iy)
        self.perm = np.argsort(gid, kind="stable")  # storage row -> cell index
        self._firsts = self.perm[np.r_[0, np.flatnonzero(np.diff(gid[self.perm])) + 1]]
        self._base, self._cell, self._in_group = base, cell, in_group
        sizes = np.bincount(gid)
        bounds = np.r_[0, np.cumsum(sizes[sizes > 0])]
        self.slices = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    @functools.cached_property
    def group_values(self) -> list[dict]:
        """Each group's torch hyperparameters, from one representative cell. Made when first
        asked: a plan refused for its group count (65,536 groups) never pays for them."""
        out = []
        for k in self._firsts:
            values = dict(self._base)
            for a in self._in_group:
                values[a.name] = float(self._cell[a.name][k])
            if self.fold:
                values["lr"] = 1.0
            elif "lr" in self._cell:
                values["lr"] = float(self._cell["lr"][k])
            out.append(group_values(self.info, values))
        return out

    @property
    def n_groups(self) -> int:
        return len(self.slices)

    def describe(self) -> str:
        fold = "lr folded, " if self.fold else ""
        return f"{fold}{self.n_groups} param group{'s' if self.n_groups != 1 else ''}"


def plan_sweep(racer: RacerSpec, x: SweepAxis, y: SweepAxis, grid: int, strategy: str = "auto"):
    """Validate and lay out a sweep; raises :class:`SweepError` before any work starts."""
    validate_sweep(racer, x, y)
    if isinstance(grid, bool) or not isinstance(grid, int) or not 2 <= grid <= MAX_GRID:
        raise SweepError(f"Invalid grid: {grid} (allowed 2 .. {MAX_GRID})")
    need, free = estimate_bytes(grid, grid), available_bytes()
    if need > free // 2:
        raise SweepError(
            f"A {grid}x{grid} sweep needs about {need / 2**30:.1f} GB of memory and only "
            f"{free / 2**30:.1f} GB is free; use a smaller grid"
        )
    plan = _Plan(racer, x, y, grid, strategy)
    if plan.n_groups > MAX_CELL_GROUPS:
        raise SweepError(
            f"A {grid}x{grid} sweep of {x.name} and {y.name} needs one torch param group per "
            f"cell ({plan.n_groups}), which would take hours; use a grid <= "
            f"{math.isqrt(MAX_CELL_GROUPS)} or sweep lr on one axis"
        )
    if estimate_bytes(grid, plan.n_groups) > free // 2:
        raise SweepError(
            f"A {grid}x{grid} sweep with {plan.n_groups} param groups needs about "
            f"{estimate_bytes(grid, plan.n_groups) / 2**30:.1f} GB; use a smaller grid"
        )
    return plan


def sweep_map(
    surface: Surface,
    racer: RacerSpec,
    x_axis: SweepAxis,
    y_axis: SweepAxis,
    grid: int = 64,
    steps: int = 500,
    *,
    start: tuple[float, float] | None = None,
    eps: float = 1e-3,
    chunk: int = 25,
    strategy: Strategy = "auto",
    impl: Literal["fused", "foreach", "single"] = "single",
    dtype: torch.dtype = torch.float64,
) -> Iterator[SweepProgress | SweepMap]:
    """Yield progress, then the map. ``eps``: how close to a known minimum counts as converged.

    ``strategy="cells"`` gives every cell its own param group (slow; the reference the
    grouping is measured against). ``impl`` picks torch's fused, foreach or single-tensor code.
    """
    if not 1 <= steps <= 100_000:
        raise SweepError(f"Invalid steps: {steps} (allowed 1 .. 100000)")
    if impl not in ("fused", "foreach", "single"):
        raise ValueError(f"Invalid impl: {impl!r} (fused, foreach or single)")
    plan = plan_sweep(racer, x_axis, y_axis, grid, strategy)
    if not (math.isfinite(eps) and eps > 0):
        raise SweepError(f"Invalid eps: {eps!r} (must be > 0)")
    engine = _Engine(surface, racer, plan, start, dtype, impl, eps)
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        for _ in range(n):
            engine.step()
        done += n
        yield SweepProgress(done, steps)
    yield engine.result(x_axis, y_axis, grid, steps, eps, plan)


class _Engine:
    """The stepping loop of a sweep (storage order: cells sorted by group)."""

    def __init__(self, surface, racer, plan: _Plan, start, dtype, impl: str, eps: float) -> None:
        self.surface, self.plan, self.racer, self.eps = surface, plan, racer, eps
        K = len(plan.perm)
        p0 = torch.tensor(surface.start if start is None else start, dtype=dtype)  # (2,)
        order = plan.perm

        def column(a: np.ndarray) -> torch.Tensor:
            return torch.tensor(a[order], dtype=dtype)[:, None]  # (K, 1) in storage order

        self.scale = column(plan.lr) if plan.fold else None
        self.noise = column(plan.noise)
        self.clip_value = column(plan.clip_value)
        self.gen = torch.Generator().manual_seed(racer.seed)
        self.Q = p0.expand(K, 2).clone()  # (K, 2) the optimizers' parameters
        if self.scale is not None:
            self.Q /= self.scale
        self.grad = torch.zeros_like(self.Q)  # (K, 2) every group's .grad is a view of this
        groups = []
        for (a, b), values in zip(plan.slices, plan.group_values, strict=True):
            p = self.Q[a:b].requires_grad_()  # (n, 2) leaf view of the shared storage
            p.grad = self.grad[a:b]
            groups.append({"params": [p], **values})
        name = plan.info.cls.__name__
        extra = {"fused": True} if impl == "fused" and name in _FUSED_OK else {}
        if not extra:
            extra = {"foreach": impl != "single"}
        self.opt = plan.info.cls(groups, **extra)
        xmin, xmax, ymin, ymax = surface.bounds
        self.centre = np.array([(xmin + xmax) / 2, (ymin + ymax) / 2])
        self.half = DIVERGE_FACTOR * np.array([(xmax - xmin) / 2, (ymax - ymin) / 2])
        self.minima = np.array([(m.x, m.y) for m in surface.minima]).reshape(-1, 2)
        self.t = 0
        self.diverged_at = np.full(K, -1, dtype=np.int64)
        self.reached = np.full(K, -1, dtype=np.int64)
        self.good_Q = self.Q.detach().clone()
        self.any_gone = False
        self.live = torch.ones(K, dtype=torch.bool)  # (K,) cells that have not diverged
        self._evaluate()
        self.good_P, self.good_L = self.P.clone(), self.L.clone()
        self._check()

    def _evaluate(self) -> None:
        Q = self.Q.detach()
        P = Q * self.scale if self.scale is not None else Q.clone()  # (K, 2) positions
        X = P.requires_grad_()
        with torch.enable_grad():
            L = self.surface.fn(X[:, 0], X[:, 1])  # (K,)
            if L.requires_grad:
                (G,) = torch.autograd.grad(L.sum(), X)  # (K, 2)
            else:
                G = torch.zeros_like(X)
        self.P, self.L, self.G = P.detach(), L.detach().expand(len(P)), G

    def step(self) -> None:
        g = self.grad  # (K, 2), aliased by every group's .grad
        g.copy_(self.G)
        r = self.racer
        if r.noise > 0 or bool((self.noise > 0).any()):
            # Every cell sees the same draw, as a single-start racer with this seed would:
            # common random numbers, so cells differ only by their hyperparameters.
            z = torch.randn((1, 2), generator=self.gen, dtype=g.dtype)  # (1, 2)
            g.add_(self.noise * z)
        if r.clip == "norm":
            norm = torch.linalg.vector_norm(g, dim=-1, keepdim=True)  # (K, 1)
            g.mul_(torch.clamp(self.clip_value / (norm + 1e-6), max=1.0))
        elif r.clip == "value":
            g.copy_(torch.minimum(torch.maximum(g, -self.clip_value), self.clip_value))
        elif r.clip != "none":
            raise ValueError(f"Invalid clip: {r.clip!r}")
        self.opt.step()
        self.t += 1
        if self.any_gone:  # diverged cells stay where they stopped
            with torch.no_grad():
                self.Q.copy_(torch.where(self.live[:, None], self.Q, self.good_Q))
        self._evaluate()
        self._check()

    def _check(self) -> None:
        pos, loss = self.P.numpy(), self.L.numpy()  # (K, 2), (K,)
        inside = (np.abs(pos - self.centre) <= self.half).all(axis=-1)  # False for nan
        ok = inside & np.isfinite(loss)
        bad = ~ok & (self.diverged_at < 0)
        if bad.any():
            self.diverged_at[bad] = self.t
            self.live = torch.from_numpy(self.diverged_at < 0)  # (K,)
            self.any_gone = True
        # Masked copies cost ~8 ms per step here (index_put); plain copies until one diverges.
        if not self.any_gone:
            self.good_Q.copy_(self.Q.detach())
            self.good_P.copy_(self.P)
            self.good_L.copy_(self.L)
        else:
            live = self.live
            self.good_Q.copy_(torch.where(live[:, None], self.Q.detach(), self.good_Q))
            self.good_P.copy_(torch.where(live[:, None], self.P, self.good_P))
            self.good_L.copy_(torch.where(live, self.L, self.good_L))
        if len(self.minima):
            waiting = (self.reached < 0) & (self.diverged_at < 0)
            if waiting.any():
                d2 = np.full(len(pos), np.inf)
                for mx, my in self.minima:
                    np.minimum(d2, (pos[:, 0] - mx) ** 2 + (pos[:, 1] - my) ** 2, out=d2)
                self.reached[waiting & (d2 <= self.eps**2)] = self.t

    def result(self, x_axis, y_axis, n: int, steps: int, eps: float, plan: _Plan) -> SweepMap:
        inv = np.empty_like(plan.perm)
        inv[plan.perm] = np.arange(len(plan.perm))  # cell index -> storage row

        def cells(a: np.ndarray) -> np.ndarray:
            return a[inv].reshape((n, n) + a.shape[1:])

        return SweepMap(
            x_axis,
            y_axis,
            x_axis.values(n),
            y_axis.values(n),
            cells(self.good_L.numpy().astype(np.float64)),
            cells(self.reached),
            cells(self.diverged_at),
            cells(self.good_P.numpy().astype(np.float64)),
            steps,
            float(eps),
            plan.describe(),
        )


__all__ = [
    "RACE_OPTIONS",
    "STRATEGIES",
    "SweepAxis",
    "SweepError",
    "SweepMap",
    "SweepProgress",
    "cell_racer",
    "estimate_bytes",
    "parse_axis",
    "plan_sweep",
    "sweep_map",
    "validate_sweep",
]
