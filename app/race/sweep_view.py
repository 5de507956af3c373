"""The sweep map as a picture: cells coloured by final loss or steps to converge.

Used by the Race's "Sweep map" window and by ``losslab race --sweep ... --out map.png``, so the
window and the file show the same thing. Log axes are drawn in log10 coordinates with pyqtgraph's
log mode, so the tick labels read as hyperparameter values.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from core.race.sweep import SweepAxis, SweepMap
from core.race.sweep_theory import Curve

ColourBy = Literal["loss", "steps"]
COLOUR_BY = ("loss", "steps")
DIVERGED_RGBA = (214, 39, 40, 255)  # red: absent from viridis, so it cannot be mistaken
NEVER_RGBA = (150, 150, 150, 255)  # grey: converged nowhere in the steps run
CURVE_PENS = {"stability": ("w", QtCore.Qt.PenStyle.SolidLine), "optimal": ("c", None)}


def cell_values(result: SweepMap, mode: ColourBy, min_value: float | None) -> np.ndarray:
    """(N, N) what the colours show; nan where the overlay paints instead."""
    if mode == "loss":
        loss = result.final_loss - (min_value if min_value is not None else 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.log10(np.maximum(loss, 1e-16))
        v[result.diverged] = np.nan
        return v
    if mode == "steps":
        v = result.steps_to_converge.astype(float)
        v[(result.steps_to_converge < 0) | result.diverged] = np.nan
        return v
    raise ValueError(f"Invalid colour mode: {mode!r} (choose one of {COLOUR_BY})")


def _coord(axis: SweepAxis, values: np.ndarray) -> np.ndarray:
    return np.log10(values) if axis.log else np.asarray(values, dtype=float)


def _cell_rect(axis: SweepAxis, values: np.ndarray) -> tuple[float, float]:
    """(start, width) of the image along ``axis``, cells centred on their values."""
    c = _coord(axis, values)
    step = (c[-1] - c[0]) / (len(c) - 1)
    return c[0] - step / 2, step * len(c)


def _log_ticks(axis: SweepAxis) -> list[list[tuple[float, str]]]:
    """Decades, then 2x and 5x, both labelled as values, then the other minor ticks unlabelled,
    in log10 coordinates: pyqtgraph drops a level's labels when they would crowd the axis, so a
    narrow map keeps the decades instead of running 0.001 0.002 0.005 into one another.
    (pyqtgraph's own log ticks label every minor tick and overlap.)"""
    lo, hi = np.log10(axis.low), np.log10(axis.high)
    decades = np.arange(np.floor(lo), np.ceil(hi) + 1)

    def inside(values) -> list[float]:
        return [v for v in values if lo - 1e-9 <= np.log10(v) <= hi + 1e-9]

    ones = inside([10**d for d in decades])
    twos_fives = inside([f * 10**d for d in decades for f in (2.0, 5.0)])
    minor = inside([f * 10**d for d in decades for f in (3, 4, 6, 7, 8, 9)])
    return [
        [(float(np.log10(v)), f"{v:g}") for v in ones],
        [(float(np.log10(v)), f"{v:g}") for v in twos_fives],
        [(float(np.log10(v)), "") for v in minor],
    ]


class SweepView(pg.GraphicsLayoutWidget):
    """The map, its colour bar, the analytic curves and the racer's current setting."""

    cellClicked = QtCore.Signal(int, int)  # ix, iy
    cellHovered = QtCore.Signal(str)  # a description of the cell under the mouse ("" outside)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sweep_view")
        # below this the legend's longest line ("stability edge: lr · 20 = 2 (1 + momentum)")
        # ran off the plot and the lr labels into one another
        self.setMinimumSize(500, 380)
        self.plot = self.addPlot(row=0, col=0, enableMenu=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.plot.addItem(self.overlay)
        self.bar = pg.ColorBarItem(colorMap=pg.colormap.get("viridis"), interactive=False)
        self.bar.setImageItem(self.image)
        self.addItem(self.bar, row=0, col=1)
        for name in ("bottom", "left"):
            self.plot.getAxis(name).enableAutoSIPrefix(False)  # "momentum (x0.001)" misleads
        self.curves: list[pg.PlotDataItem] = []
        self.legend = self.plot.addLegend(offset=(8, 8), brush=pg.mkBrush(0, 0, 0, 170))
        self.legend.setLabelTextColor("w")
        self.marker = pg.PlotDataItem(
            symbol="o", symbolSize=16, symbolBrush=None, symbolPen=pg.mkPen("w", width=3)
        )
        self.marker_inner = pg.PlotDataItem(
            symbol="+", symbolSize=16, symbolBrush=None, symbolPen=pg.mkPen("k", width=2)
        )
        self.plot.addItem(self.marker)
        self.plot.addItem(self.marker_inner)
        self.result: SweepMap | None = None
        self.mode: ColourBy = "loss"
        self.scene().sigMouseMoved.connect(self._moved)
        self.scene().sigMouseClicked.connect(self._clicked)

    # --- content -----------------------------------------------------------------------------

    def set_map(self, result: SweepMap, mode: ColourBy, min_value: float | None = None) -> None:
        self.result, self.mode = result, mode
        x, y = result.x_axis, result.y_axis
        self.plot.setLogMode(x=x.log, y=y.log)
        self.plot.setLabel("bottom", x.label())
        self.plot.setLabel("left", y.label())
        for name, axis in (("bottom", x), ("left", y)):
            self.plot.getAxis(name).setTicks(_log_ticks(axis) if axis.log else None)
        v = cell_values(result, mode, min_value)
        finite = v[np.isfinite(v)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        self.image.setImage(np.where(np.isfinite(v), v, lo), levels=(lo, hi))
        over = np.zeros(v.shape + (4,), dtype=np.ubyte)  # (N, N, 4)
        if mode == "steps":
            over[(result.steps_to_converge < 0) & ~result.diverged] = NEVER_RGBA
        over[result.diverged] = DIVERGED_RGBA
        self.overlay.setImage(over, levels=(0, 255))
        x0, w = _cell_rect(x, result.x)
        y0, h = _cell_rect(y, result.y)
        rect = QtCore.QRectF(x0, y0, w, h)
        self.image.setRect(rect)
        self.overlay.setRect(rect)
        self.bar.setLevels((lo, hi))
        title = "log10 final loss" if mode == "loss" else "steps to converge"
        if mode == "loss" and min_value:
            title = "log10 (final loss - minimum)"
        self.bar.axis.setLabel(title)
        self.plot.setXRange(x0, x0 + w, padding=0)
        self.plot.setYRange(y0, y0 + h, padding=0)

    def set_curves(self, curves: list[Curve]) -> None:
        for item in self.curves:
            self.plot.removeItem(item)
            self.legend.removeItem(item)
        self.curves = []
        for c in curves:
            colour, style = CURVE_PENS.get(c.kind, ("y", None))
            pen = pg.mkPen(colour, width=2.5, style=style or QtCore.Qt.PenStyle.DashLine)
            label = c.label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            item = pg.PlotDataItem(c.x, c.y, pen=pen, name=label)
            self.plot.addItem(item)
            self.curves.append(item)
        self.legend.setVisible(bool(self.curves))  # an empty legend is a stray dark square

    def set_current(self, x: float | None, y: float | None) -> None:
        """Mark the racer's own setting (hidden when it has none on these axes)."""
        data = ([x], [y]) if x is not None and y is not None else ([], [])
        self.marker.setData(*data)
        self.marker_inner.setData(*data)

    # --- mouse -------------------------------------------------------------------------------

    def cell_at(self, scene_pos) -> tuple[int, int] | None:
        if self.result is None or not self.plot.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.plot.vb.mapSceneToView(scene_pos)
        r = self.result
        x0, w = _cell_rect(r.x_axis, r.x)
        y0, h = _cell_rect(r.y_axis, r.y)
        n = len(r.x)
        ix = int(np.floor((p.x() - x0) / w * n))
        iy = int(np.floor((p.y() - y0) / h * n))
        if 0 <= ix < n and 0 <= iy < n:
            return ix, iy
        return None

    def describe(self, ix: int, iy: int) -> str:
        r = self.result
        text = f"{r.x_axis.name} = {r.x[ix]:.4g}, {r.y_axis.name} = {r.y[iy]:.4g}: "
        if r.diverged[iy, ix]:
            return text + f"diverged at step {r.diverged_at[iy, ix]}"
        conv = r.steps_to_converge[iy, ix]
        reached = f"converged at step {conv}" if conv >= 0 else "did not converge"
        return text + f"final loss {r.final_loss[iy, ix]:.4g}, {reached}"

    def _moved(self, pos) -> None:
        cell = self.cell_at(pos)
        self.cellHovered.emit(self.describe(*cell) if cell else "")

    def _clicked(self, event) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        cell = self.cell_at(event.scenePos())
        if cell is not None:
            self.cellClicked.emit(*cell)

    def set_theme(self, dark: bool) -> None:
        self.setBackground("k" if dark else "w")
        fg = "w" if dark else "k"
        for name in ("bottom", "left"):
            ax = self.plot.getAxis(name)
            ax.setPen(fg)
            ax.setTextPen(fg)
        self.bar.axis.setPen(fg)
        self.bar.axis.setTextPen(fg)


__all__ = ["COLOUR_BY", "ColourBy", "SweepView", "cell_values"]
