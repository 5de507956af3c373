"""Computed landscapes: the 2-D grid filled row by row, 1-D lines, true losses along a path,
and the .npz file a landscape is saved in."""

from __future__ import annotations

import copy
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core import __version__, fileio
from core.landscape.directions import LandscapeError, flat_parameters, set_flat
from core.landscape.evaluator import EVAL_BATCH, PlaneEvaluator, _reduction, _sum_loss

LANDSCAPE_FORMAT = "losslab-landscape-1"
# several runs' arrays keep their own names in the file (path_0, path_1, ..., run_names,
# end_points): the names users of a landscape of several runs look for
RUNS_KEY = re.compile(r"^(path_\d+(_[a-z_]+)?|run_names|end_points|barrier_t|barrier_loss)$")


# --- results -------------------------------------------------------------------------------


@dataclass
class Line:
    """Loss (and accuracy) along ``theta_a + t*(theta_b - theta_a)``."""

    t: np.ndarray
    loss: np.ndarray
    acc: np.ndarray | None = None


@dataclass
class Landscape:
    """A computed plane: axes, grids, the directions and centre that define it."""

    alphas: np.ndarray  # (R,) coefficients of d1 (x axis)
    betas: np.ndarray  # (R,) coefficients of d2 (y axis)
    loss: np.ndarray  # (R, R): rows are betas, columns alphas
    acc: np.ndarray | None
    centre: np.ndarray  # (P,)
    d1: np.ndarray
    d2: np.ndarray
    directions: str  # "random", "pca", "init-final"
    precision: str = "fp32"
    n_eval: int = 0
    explained: np.ndarray | None = None  # PCA: share of variance of d1, d2
    meta: dict[str, Any] = field(default_factory=dict)  # task, run name, seconds, ...
    # arrays that came with it: the projected path, the 1-D interpolation, Hessian eigenvalues
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return bool(np.isfinite(self.loss).all())

    def save(self, path: str | os.PathLike) -> Path:
        arrays = {
            "alphas": self.alphas,
            "betas": self.betas,
            "loss": self.loss,
            "centre": self.centre,
            "d1": self.d1,
            "d2": self.d2,
        }
        if self.acc is not None:
            arrays["acc"] = self.acc
        if self.explained is not None:
            arrays["explained"] = self.explained
        for key, value in self.extras.items():
            arrays[key if RUNS_KEY.match(key) else f"x_{key}"] = np.asarray(value)
        info = {
            "format": LANDSCAPE_FORMAT,
            "losslab": __version__,
            "directions": self.directions,
            "precision": self.precision,
            "n_eval": self.n_eval,
            "meta": self.meta,
        }
        arrays["info"] = np.frombuffer(json.dumps(info).encode(), dtype=np.uint8)
        return fileio.atomic_write(Path(path), lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Landscape:
        try:
            with np.load(path, allow_pickle=False) as z:
                info = json.loads(bytes(z["info"]).decode())
                if info.get("format") != LANDSCAPE_FORMAT:
                    raise LandscapeError(f"{path} is not a LossLab landscape")
                return cls(
                    z["alphas"],
                    z["betas"],
                    z["loss"],
                    z.get("acc"),
                    z["centre"],
                    z["d1"],
                    z["d2"],
                    str(info["directions"]),
                    str(info.get("precision", "fp32")),
                    int(info.get("n_eval", 0)),
                    z.get("explained"),
                    dict(info.get("meta", {})),
                    {k[2:]: z[k] for k in z.files if k.startswith("x_")}
                    | {k: z[k] for k in z.files if RUNS_KEY.match(k)},
                )
        except FileNotFoundError:
            raise LandscapeError(f"no landscape file at {path}") from None
        except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
            if isinstance(exc, LandscapeError):
                raise
            # not numpy's text for pickled data: it suggests allow_pickle, which LossLab never uses
            objects = "Object arrays" in str(exc)
            why = "it holds pickled objects" if objects else "damaged, or not a .npz"
            raise LandscapeError(
                f"{path} is not a readable landscape file: {why} (LossLab saves plain arrays)"
            ) from None


@dataclass(frozen=True)
class Row:
    """Progress of :meth:`Grid.rows`: one finished row of the grid."""

    index: int
    loss: np.ndarray
    acc: np.ndarray | None


def axes(span: float, resolution: int) -> np.ndarray:
    if not (math.isfinite(span) and span > 0):
        raise LandscapeError(f"Invalid range: {span!r} (must be > 0)")
    if not (isinstance(resolution, int) and 3 <= resolution <= 401):
        raise LandscapeError(f"Invalid grid size: {resolution!r} points a side (3 .. 401)")
    return np.linspace(-span, span, resolution)


class Grid:
    """The loss (and accuracy) of a plane's grid, NaN until :meth:`rows` has evaluated each row."""

    def __init__(self, evaluator: PlaneEvaluator, alphas: np.ndarray, betas: np.ndarray) -> None:
        self.evaluator, self.alphas, self.betas = evaluator, alphas, betas
        self.loss = np.full((len(betas), len(alphas)), np.nan)
        self.acc = np.full_like(self.loss, np.nan) if evaluator.classes else None

    def rows(self) -> Iterator[Row]:
        """Evaluate row by row (rows are betas), filling the grids; stop by no longer
        iterating."""
        for i, b in enumerate(self.betas):
            values = self.evaluator.row(self.alphas, float(b))
            self.loss[i] = [v[0] for v in values]
            if self.acc is not None:
                self.acc[i] = [v[1] for v in values]
            yield Row(i, self.loss[i].copy(), None if self.acc is None else self.acc[i].copy())


def compute(
    evaluator: PlaneEvaluator,
    span: float = 1.0,
    resolution: int = 41,
    directions: str = "random",
    explained: np.ndarray | None = None,
    progress: Callable[[Row], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> Landscape:
    """The whole grid as a :class:`Landscape` (``progress`` is told of each row)."""
    alphas = axes(span, resolution)
    betas = alphas.copy()
    grid = Grid(evaluator, alphas, betas)
    for row in grid.rows():
        if progress:
            progress(row)
    return Landscape(
        alphas,
        betas,
        grid.loss,
        grid.acc,
        evaluator.centre.float().numpy(),
        evaluator.d1.float().numpy(),
        evaluator.d2.float().numpy(),
        directions,
        evaluator.precision,
        evaluator.n_eval,
        explained,
        dict(meta or {}),
    )


def interpolate(
    model: nn.Module,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    theta_a: torch.Tensor,
    theta_b: torch.Tensor,
    points: int = 41,
    lo: float = -0.25,
    hi: float = 1.25,
    classes: int = 0,
) -> Line:
    """Loss along the straight line from ``theta_a`` (t = 0) to ``theta_b`` (t = 1)."""
    d = theta_b - theta_a
    zero = torch.zeros_like(d)
    ev = PlaneEvaluator(model, loss_fn, x, y, theta_a, d, zero, classes)
    t = np.linspace(lo, hi, points)
    vals = [ev.at(float(v), 0.0) for v in t]
    loss = np.array([v[0] for v in vals])
    acc = np.array([v[1] for v in vals]) if classes else None
    return Line(t, loss, acc)


def path_losses(
    model: nn.Module,
    loss_fn: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    trajectory: np.ndarray,
) -> np.ndarray:
    """The true loss at every recorded point of a trajectory (on the same evaluation set)."""
    m = copy.deepcopy(model).eval()
    out = []
    with torch.no_grad():
        for theta in np.asarray(trajectory):
            set_flat(m, torch.as_tensor(theta, dtype=flat_parameters(m).dtype))
            total = 0.0
            fn = _sum_loss(loss_fn)
            for i in range(0, len(x), EVAL_BATCH):
                total += float(fn(m(x[i : i + EVAL_BATCH]), y[i : i + EVAL_BATCH]))
            out.append(total / y.numel() if _reduction(loss_fn) == "mean" else total)
    return np.array(out)
