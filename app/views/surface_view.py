"""The surface heatmap with contours, minima, the start marker, racer paths and arrows."""

from __future__ import annotations

import math

import contourpy
import numpy as np
import pyqtgraph as pg
import torch
from PySide6 import QtCore, QtGui, QtWidgets

from app.theme import style_layout_view
from core.race.surfaces import Surface

N_CONTOURS = 14
CONTOUR_COLOUR = "#c8ccd2"
ARROWS = {  # name -> (colour, label)
    "grad": ("#ff5a5a", "-gradient (true)"),
    "update": ("#ffffff", "actual step"),
    "velocity": ("#4fd8ff", "velocity / first moment"),
}


def display_transform(z: np.ndarray, scale: str):
    """The function from loss values to what the heatmap shows, fitted to the grid ``z``:
    the identity, or log10 of the values shifted to be positive (with a floor)."""
    finite = z[np.isfinite(z)]
    if scale != "log" or finite.size == 0:
        return lambda v: np.asarray(v, dtype=float)
    floor = max(float(np.percentile(finite, 99)) * 1e-9, 1e-12)
    shift = min(0.0, float(finite.min()))
    return lambda v: np.log10(np.maximum(np.asarray(v, dtype=float) - shift, floor))


FLOAT32_SAFE = float(np.finfo(np.float32).max) / 4  # room for the colour levels' arithmetic


def display_values(z: np.ndarray, scale: str) -> tuple[np.ndarray, float, float]:
    """What the heatmap shows (log10 for log surfaces) and robust colour levels."""
    z = np.where(np.isfinite(z), z, np.nan)
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return z, 0.0, 1.0
    # The image is float32: beyond its range (exp(1000*x)) a value would turn inf and be
    # drawn as a hole, with an overflow warning; clipped, it shows as the top colour.
    shown = np.clip(display_transform(z, scale)(z), -FLOAT32_SAFE, FLOAT32_SAFE)
    vals = shown[np.isfinite(shown)]
    lo, hi = float(vals.min()), float(np.percentile(vals, 99.5))
    if not hi > lo:
        hi = lo + 1.0
    return shown, lo, hi


class SurfaceView(pg.GraphicsLayoutWidget):
    """Heatmap + colour bar + contours of a surface, with the race drawn on top.

    Signals
    -------
    startRequested(x, y): the user clicked the plot or dropped the start marker.
    hovered(x, y, loss): the mouse moved over the surface.
    """

    startRequested = QtCore.Signal(float, float)
    hovered = QtCore.Signal(float, float, float)

    def __init__(self, parent=None, resolution: int = 512) -> None:
        super().__init__(parent)
        self.resolution = resolution
        self.surface: Surface | None = None
        self.plot = self.addPlot(row=0, col=0, enableMenu=False)
        self.plot.setLabel("bottom", "x")
        self.plot.setLabel("left", "y")
        self.plot.hideButtons()
        self.image = pg.ImageItem()
        self.image.setZValue(-20)
        self.plot.addItem(self.image)
        self.basins = pg.ImageItem()
        self.basins.setZValue(-15)
        self.basins.setOpacity(0.7)
        self.plot.addItem(self.basins)
        self.contours = pg.PlotDataItem(
            pen=pg.mkPen((255, 255, 255, 80), width=1), connect="finite"
        )
        self.contours.setZValue(-10)
        self.plot.addItem(self.contours)
        # The heatmap and contours change only with the surface or the zoom: cache them as
        # pixmaps in device coordinates instead of rescaling/re-stroking them every frame.
        cache = QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache
        for item in (self.image, self.contours):
            item.setCacheMode(cache)
        self.bar = pg.ColorBarItem(
            colorMap=pg.colormap.get("viridis"), interactive=False, width=18, colorMapMenu=False
        )
        self.bar.setImageItem(self.image, insert_in=self.plot)
        self.minima = pg.ScatterPlotItem(
            symbol="star", size=18, pen=pg.mkPen("k", width=1), brush=pg.mkBrush("#ffffff")
        )
        self.minima.setZValue(5)
        self.plot.addItem(self.minima)
        self.start = pg.TargetItem(
            pos=(0, 0),
            size=15,
            symbol="o",
            pen=pg.mkPen("w", width=2),
            brush=pg.mkBrush(255, 255, 255, 60),
            movable=True,
        )
        self.start.setZValue(30)
        self.start.sigPositionChangeFinished.connect(self._start_dropped)
        self.plot.addItem(self.start)
        self.paths: list[pg.PlotDataItem] = []
        self.legend = self.plot.addLegend(
            offset=(-8, 8), labelTextSize="9pt", brush=pg.mkBrush(20, 20, 20, 160)
        )
        self.legend.setLabelTextColor("#f0f0f0")
        self.heads = pg.ScatterPlotItem(size=11, pen=pg.mkPen("k", width=1))
        self.heads.setZValue(20)
        self.plot.addItem(self.heads)
        self.arrows: dict[str, tuple[pg.PlotDataItem, pg.ArrowItem]] = {}
        for name, (colour, _) in ARROWS.items():
            line = pg.PlotDataItem(pen=pg.mkPen(colour, width=2))
            head = pg.ArrowItem(angle=0, headLen=12, tipAngle=30, brush=colour, pen=None)
            for item in (line, head):
                item.setZValue(25)
                item.setVisible(False)
                self.plot.addItem(item)
            self.arrows[name] = (line, head)
        self.readout = self.addLabel("", row=1, col=0, justify="left", size="9pt")
        self.scene().sigMouseClicked.connect(self._clicked)
        self.scene().sigMouseMoved.connect(self._moved)
        self._colours: list[str] = []
        self._brushes: dict[str, QtGui.QBrush] = {}

    # --- the surface ---------------------------------------------------------------------

    def set_surface(self, surface: Surface, scale: str | None = None) -> None:
        """Draw ``surface``; ``scale`` (linear or log) defaults to the surface's suggestion."""
        self.surface = surface
        self.scale = scale or surface.scale
        self.readout.setText("")  # the old surface's numbers
        xs, ys, z = surface.grid(self.resolution, dtype=torch.float64)
        shown, lo, hi = display_values(z.numpy(), self.scale)
        self.shown = shown
        xmin, xmax, ymin, ymax = surface.bounds
        self.image.setImage(shown.astype(np.float32), levels=(lo, hi))
        self.image.setRect(QtCore.QRectF(xmin, ymin, xmax - xmin, ymax - ymin))
        self.bar.setLevels((lo, hi))
        self.bar.setLabel("right", "log10 loss" if self.scale == "log" else "loss")
        self._draw_contours(xs.numpy(), ys.numpy(), shown, lo, hi)
        mins = [(m.x, m.y) for m in surface.minima]
        self.minima.setData(pos=np.array(mins).reshape(-1, 2))
        self.basins.clear()
        self.plot.setRange(xRange=(xmin, xmax), yRange=(ymin, ymax), padding=0)
        self.plot.setLimits(
            xMin=xmin - (xmax - xmin),
            xMax=xmax + (xmax - xmin),
            yMin=ymin - (ymax - ymin),
            yMax=ymax + (ymax - ymin),
        )

    def _draw_contours(self, xs, ys, shown, lo, hi) -> None:
        z = np.where(np.isfinite(shown), shown, hi)
        gen = contourpy.contour_generator(x=xs, y=ys, z=z, line_type="Separate")
        parts = []
        for level in np.linspace(lo, hi, N_CONTOURS + 2)[1:-1]:
            for seg in gen.lines(level):
                parts.append(seg)
                parts.append(np.full((1, 2), np.nan))
        pts = np.concatenate(parts) if parts else np.empty((0, 2))
        self.contours.setData(pts[:, 0], pts[:, 1])

    def set_start(self, x: float, y: float) -> None:
        self.start.blockSignals(True)
        self.start.setPos(x, y)
        self.start.blockSignals(False)

    # --- the race ------------------------------------------------------------------------

    def set_racers(self, colours: list[str], names: list[str] | None = None) -> None:
        """One path per racer, in these colours (created once, reused)."""
        while len(self.paths) < len(colours):
            item = pg.PlotDataItem()
            item.setZValue(10)
            self.plot.addItem(item)
            self.paths.append(item)
        while len(self.paths) > len(colours):
            self.plot.removeItem(self.paths.pop())
        for item, colour in zip(self.paths, colours, strict=True):
            item.setPen(pg.mkPen(colour, width=2))
        self._colours = list(colours)
        self.legend.clear()
        for item, name in zip(self.paths, names or [], strict=False):
            self.legend.addItem(item, name)

    def update_race(
        self, paths: list[np.ndarray], heads: np.ndarray, diverged: list[bool], enabled: list[bool]
    ) -> None:
        """``paths[i]``: (T, 2) positions of racer i; ``heads``: (R, 2) current positions.

        Called every frame: brushes are cached and the scatter gets arrays, not per-spot
        dicts (which made pyqtgraph rebuild its symbol atlas each frame).
        """
        for item, path, on in zip(self.paths, paths, enabled, strict=True):
            item.setVisible(on)
            if on:
                # paths never hold nan: a diverged racer is held at its last finite point
                item.setData(path[:, 0], path[:, 1], skipFiniteCheck=True)
        keep = [i for i, on in enumerate(enabled) if on and np.isfinite(heads[i]).all()]
        if not keep:
            self.heads.setData([])
            return
        self.heads.setData(
            pos=heads[keep],
            brush=[self._brush("#ff3030" if diverged[i] else self._colour(i)) for i in keep],
            symbol=["x" if diverged[i] else "o" for i in keep],
            size=[16 if diverged[i] else 11 for i in keep],
        )

    def _colour(self, i: int) -> str:
        return self._colours[i] if i < len(self._colours) else "#ffffff"

    def _brush(self, colour: str) -> QtGui.QBrush:
        brush = self._brushes.get(colour)
        if brush is None:
            brush = self._brushes[colour] = pg.mkBrush(colour)
        return brush

    def show_arrows(self, origin: np.ndarray | None, vectors: dict[str, np.ndarray]) -> None:
        """Arrows at ``origin``, each scaled to a fixed share of the view (directions only)."""
        (x0, x1), (y0, y1) = self.plot.viewRange()
        span = 0.14 * min(x1 - x0, y1 - y0)
        for name, (line, head) in self.arrows.items():
            v = vectors.get(name)
            ok = origin is not None and v is not None and np.isfinite(v).all()
            norm = float(np.hypot(*v)) if ok else 0.0
            if not ok or norm == 0:
                line.setVisible(False)
                head.setVisible(False)
                continue
            tip = origin + v / norm * span
            line.setData([origin[0], tip[0]], [origin[1], tip[1]])
            # ArrowItem angles are in screen space: y points down there
            sx = (x1 - x0) / max(1.0, self.plot.vb.width())
            sy = (y1 - y0) / max(1.0, self.plot.vb.height())
            angle = math.degrees(math.atan2(-(v[1] / sy), v[0] / sx))
            head.setStyle(angle=180 + angle)
            head.setPos(*tip)
            line.setVisible(True)
            head.setVisible(True)

    def show_basins(self, rgba: np.ndarray | None) -> None:
        if rgba is None:
            self.basins.clear()
            return
        xmin, xmax, ymin, ymax = self.surface.bounds
        self.basins.setImage(rgba, levels=None)
        self.basins.setRect(QtCore.QRectF(xmin, ymin, xmax - xmin, ymax - ymin))

    # --- mouse -----------------------------------------------------------------------------

    def _start_dropped(self) -> None:
        p = self.start.pos()
        self.startRequested.emit(float(p.x()), float(p.y()))

    def _clicked(self, event) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton or event.isAccepted():
            return
        if not self.plot.vb.sceneBoundingRect().contains(event.scenePos()):
            return
        p = self.plot.vb.mapSceneToView(event.scenePos())
        self.startRequested.emit(float(p.x()), float(p.y()))

    def _moved(self, scene_pos) -> None:
        if self.surface is None or not self.plot.vb.sceneBoundingRect().contains(scene_pos):
            return
        p = self.plot.vb.mapSceneToView(scene_pos)
        x, y = float(p.x()), float(p.y())
        with torch.no_grad():
            loss = float(
                self.surface.fn(
                    torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
                )
            )
        self.readout.setText(f"x = {x:.4g}   y = {y:.4g}   loss = {loss:.6g}")
        self.hovered.emit(x, y, loss)

    def set_theme(self, dark: bool) -> None:
        style_layout_view(self, self.plot, self.readout, dark)
