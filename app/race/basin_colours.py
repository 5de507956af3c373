"""The colours of a basin map: one per minimum, grey for far-from-all, black for diverged."""

from __future__ import annotations

import numpy as np
from PySide6 import QtGui

from core.race.basins import DIVERGED, UNDECIDED, BasinMap

# No blue: over the viridis heatmap it reads as grey, the colour of "far from every minimum".
BASIN_COLOURS = [
    "#e6194b",
    "#3cb44b",
    "#f58231",
    "#f032e6",
    "#42d4f4",
    "#ffe119",
    "#911eb4",
    "#fabed4",
]


def basin_rgba(m: BasinMap) -> np.ndarray:
    """(N, N, 4) uint8: a colour per minimum, grey for far-from-all, black for diverged."""
    rgba = np.zeros((*m.labels.shape, 4), dtype=np.uint8)
    for i in range(len(m.minima)):
        colour = QtGui.QColor(BASIN_COLOURS[i % len(BASIN_COLOURS)])
        rgba[m.labels == i] = (colour.red(), colour.green(), colour.blue(), 255)
    rgba[m.labels == UNDECIDED] = (128, 128, 128, 255)
    rgba[m.labels == DIVERGED] = (0, 0, 0, 255)
    return rgba
