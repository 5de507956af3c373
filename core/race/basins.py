"""Basin maps: which minimum an optimizer reaches from every start point of a grid.

:func:`basin_map` is a generator: it steps one batched :class:`~core.race.race.Race` (all starts in
one ``(K, 2)`` tensor) in chunks and yields progress, so a GUI thread can show it and cancel
between chunks. The last item it yields is the :class:`BasinMap`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from core.optimizers import get_optimizer
from core.race.race import Race, RacerSpec
from core.race.surfaces import Surface

DIVERGED = -1
UNDECIDED = -2  # finished far from every minimum it knows


@dataclass(frozen=True)
class BasinProgress:
    steps_done: int
    steps_total: int


@dataclass(frozen=True)
class BasinMap:
    labels: np.ndarray  # (N, N) int: index into ``minima``, DIVERGED or UNDECIDED; row = y
    minima: np.ndarray  # (M, 2) the minima the labels refer to (known, or found by clustering)
    final: np.ndarray  # (N, N, 2) where each start ended
    found: bool  # True when ``minima`` were found by clustering (no known minima)


def basin_map(
    surface: Surface,
    racer: RacerSpec,
    resolution: int = 128,
    steps: int = 500,
    chunk: int = 25,
    radius: float | None = None,
) -> Iterator[BasinProgress | BasinMap]:
    """Yield progress, then the map. ``radius``: how close counts as reaching a minimum."""
    if not 2 <= resolution <= 1024:
        raise ValueError(f"Invalid resolution: {resolution} (allowed 2 .. 1024)")
    if not 1 <= steps <= 100_000:
        raise ValueError(f"Invalid steps: {steps} (allowed 1 .. 100000)")
    xmin, xmax, ymin, ymax = surface.bounds
    gx, gy = np.meshgrid(np.linspace(xmin, xmax, resolution), np.linspace(ymin, ymax, resolution))
    starts = np.stack([gx.ravel(), gy.ravel()], axis=1)  # (N*N, 2), row-major in y
    race = Race(surface, [racer], starts=starts, dtype=torch.float32, history="none")
    if not get_optimizer(racer.optimizer.name).elementwise:
        # L-BFGS steps each start on its own (about 3 s per step at 48 x 48): a chunk of 25
        # steps made Cancel, and closing the window, wait minutes
        chunk = 1
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        race.step(n)
        done += n
        yield BasinProgress(done, steps)
    final = race.positions[0]  # (K, 2)
    diverged = race.diverged_at[0] >= 0
    diag = float(np.hypot(xmax - xmin, ymax - ymin))
    radius = radius if radius is not None else 0.02 * diag
    found = not surface.minima
    minima = (
        np.array([(m.x, m.y) for m in surface.minima]).reshape(-1, 2)
        if not found
        else _cluster(final[~diverged], radius)
    )
    labels = np.full(len(final), UNDECIDED)
    if len(minima):
        d = np.linalg.norm(final[:, None, :] - minima[None, :, :], axis=-1)  # (K, M)
        near = d.min(axis=1) <= radius
        labels[near] = d.argmin(axis=1)[near]
    labels[diverged] = DIVERGED
    yield BasinMap(
        labels.reshape(resolution, resolution),
        minima,
        final.reshape(resolution, resolution, 2),
        found,
    )


def _cluster(points: np.ndarray, radius: float, most: int = 8) -> np.ndarray:
    """Greedy clustering of end points: the ``most`` biggest groups within ``radius``."""
    pts = points[np.isfinite(points).all(axis=1)]
    centres = []
    rest = pts
    while len(rest) and len(centres) < most:
        # the densest point among a sample is a good seed
        sample = rest[:: max(1, len(rest) // 512)]
        counts = [(np.linalg.norm(rest - p, axis=1) <= radius).sum() for p in sample]
        seed = sample[int(np.argmax(counts))]
        members = np.linalg.norm(rest - seed, axis=1) <= radius
        if members.sum() < max(5, 0.002 * len(pts)):
            break
        centres.append(rest[members].mean(axis=0))
        rest = rest[~members]
    return np.array(centres).reshape(-1, 2)


__all__ = ["DIVERGED", "UNDECIDED", "BasinMap", "BasinProgress", "basin_map"]
