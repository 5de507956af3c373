"""The landscape plane drawn: heatmap filling in row by row, contours, the projected path."""

from __future__ import annotations

from collections.abc import Callable

import contourpy
import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from app.landscape.multiview import BARRIER_AXIS, BarrierLayer, RunsLayer, hover_text
from app.theme import style_layout_view, style_plot
from app.views.surface_view import display_values

N_CONTOURS = 14
PATH_COLOUR = "#ff6e40"
# A long run (the sine fit: 2,000 epochs) would pile its epoch markers into one smear hiding
# "start" and "end": at most this many markers, evenly spaced, and fewer numbered ones.
MAX_EPOCH_MARKERS = 24
MAX_EPOCH_LABELS = 8
LINE_AXIS = "t  (0 = initial weights, 1 = checkpoint)"
LINE_HINT = "The line from the initial weights\nneeds a run's JSON (its recorded path)"
LINE_LATER = "The line from the initial weights\ncomes after the grid"
RUNS_HINT = "The loss on the line between\nruns A's and B's end points comes\nafter the grid"


def epoch_marks(epoch_index, n_points: int, most: int = MAX_EPOCH_MARKERS) -> list[tuple[int, int]]:
    """``(epoch, path index)`` of the epochs to mark: epochs ending on the same recorded point
    (snapshots are sparser than epochs) share one marker, the latest; at most ``most``, evenly
    spread over the run, the first and the last always among them."""
    last_epoch_at: dict[int, int] = {}
    for epoch, i in enumerate(epoch_index, start=1):
        if 0 <= i < n_points:
            last_epoch_at[int(i)] = epoch
    marks = sorted((e, i) for i, e in last_epoch_at.items())
    if len(marks) > most:
        keep = np.unique(np.linspace(0, len(marks) - 1, most).round().astype(int))
        marks = [marks[k] for k in keep]
    return marks


def labelled_marks(
    marks: list[tuple[int, int]], coords: np.ndarray, most: int = MAX_EPOCH_LABELS
) -> list[tuple[int, int]]:
    """The marks that get their epoch number: at most ``most``, evenly spread, none close to
    another label (1/10 of the path's extent: a label is a few digits wide) or to the start and
    end points (1/8: their own, wider labels are there). A path slows down near its end and
    crowds its markers there; a sine fit's first epochs crowd near its start."""
    coords = np.asarray(coords, dtype=np.float64)  # (T, 2)
    n = len(coords)
    inner = [m for m in marks if 0 < m[1] < n - 1]
    if len(inner) > most:
        keep = np.unique(np.linspace(0, len(inner) - 1, most).round().astype(int))
        inner = [inner[k] for k in keep]
    extent = np.ptp(coords, axis=0) if n else np.ones(2)
    scale = np.where(extent > 0, extent, 1.0)
    ends = [coords[0] / scale, coords[-1] / scale] if n else []
    placed: list[np.ndarray] = []
    out = []
    for epoch, i in inner:
        p = coords[i] / scale
        clear_of_ends = all(np.hypot(*(p - q)) >= 1 / 8 for q in ends)
        if clear_of_ends and all(np.hypot(*(p - q)) >= 1 / 10 for q in placed):
            out.append((epoch, i))
            placed.append(p)
    return out


class LandscapeView(pg.GraphicsLayoutWidget):
    """Loss on the plane ``centre + a*d1 + b*d2``, with the training path projected on it."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.plot = self.addPlot(row=0, col=0, enableMenu=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "a (direction 1)")
        self.plot.setLabel("left", "b (direction 2)")
        self.image = pg.ImageItem()
        self.image.setZValue(-20)
        self.plot.addItem(self.image)
        self.contours = pg.PlotDataItem(
            pen=pg.mkPen((255, 255, 255, 90), width=1), connect="finite"
        )
        self.contours.setZValue(-10)
        self.plot.addItem(self.contours)
        self.bar = pg.ColorBarItem(
            colorMap=pg.colormap.get("viridis"), interactive=False, width=18, colorMapMenu=False
        )
        self.bar.setImageItem(self.image, insert_in=self.plot)
        self.path = pg.PlotDataItem(pen=pg.mkPen(PATH_COLOUR, width=2))
        self.path.setZValue(10)
        self.plot.addItem(self.path)
        self.epochs = pg.ScatterPlotItem(
            size=9, pen=pg.mkPen("k", width=1), brush=pg.mkBrush(PATH_COLOUR)
        )
        self.epochs.setZValue(12)
        self.plot.addItem(self.epochs)
        self.centre = pg.ScatterPlotItem(
            symbol="star", size=18, pen=pg.mkPen("k", width=1), brush=pg.mkBrush("#ffffff")
        )
        self.centre.setZValue(14)
        self.plot.addItem(self.centre)
        self.hover_mark = pg.ScatterPlotItem(size=13, pen=pg.mkPen("w", width=2), brush=None)
        self.hover_mark.setZValue(15)
        self.plot.addItem(self.hover_mark)
        self.labels: list[pg.TextItem] = []
        self.hint = pg.TextItem(
            "Compute a landscape (or open one) to see it here", color="#8c8f94", anchor=(0.5, 0.5)
        )
        self.plot.addItem(self.hint)
        self.hint.setPos(0, 0)
        self.plot.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)
        self.runs = RunsLayer(self.plot)  # several runs on one plane
        self.readout = self.addLabel("", row=1, col=0, justify="left", size="9pt")
        self.scene().sigMouseMoved.connect(self._moved)
        self.alphas = self.betas = None
        self.loss: np.ndarray | None = None
        self.scale = "linear"
        self.path_info = None  # core.landscape.job.PathResult
        self.last_hover = ""
        self._hovered: tuple[float, float, tuple[float, float]] | None = None

    # --- the plane -----------------------------------------------------------------------

    def set_plane(self, alphas: np.ndarray, betas: np.ndarray) -> None:
        self.hint.setVisible(False)
        self.clear_hover()  # it described the previous grid
        self.alphas, self.betas = np.asarray(alphas), np.asarray(betas)
        self.loss = np.full((len(betas), len(alphas)), np.nan)
        self.contours.setData([], [])
        self.set_path(None)
        self.set_runs([])
        self.set_axes_words(None)
        da = (alphas[-1] - alphas[0]) / max(1, len(alphas) - 1)
        db = (betas[-1] - betas[0]) / max(1, len(betas) - 1)
        self._rect = QtCore.QRectF(
            alphas[0] - da / 2,
            betas[0] - db / 2,
            alphas[-1] - alphas[0] + da,
            betas[-1] - betas[0] + db,
        )
        self.image.clear()
        self.centre.setData([0.0], [0.0])
        self.plot.setRange(rect=self._rect, padding=0)

    def show_empty(self, hint: str) -> None:
        """No plane: an empty view saying ``hint`` (a 1-D file has no plane to draw)."""
        self.clear_hover()
        self.set_path(None)
        self.set_runs([])
        self.loss = None
        self.image.clear()
        self.contours.setData([], [])
        self.centre.setData([])
        self.hint.setText(hint)
        self.hint.setVisible(True)
        self.plot.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)

    def set_row(self, index: int, values: np.ndarray) -> None:
        self.loss[index] = values
        self._show(contours=False)
        self._rehover()

    def set_grid(self, loss: np.ndarray) -> None:
        self.loss = np.asarray(loss, dtype=np.float64)
        self._show(contours=True)
        self._rehover()

    def set_scale(self, scale: str) -> None:
        self.scale = scale
        if self.loss is not None:
            self._show(contours=bool(np.isfinite(self.loss).all()))

    def _show(self, contours: bool) -> None:
        shown, lo, hi = display_values(self.loss, self.scale)
        self.image.setImage(shown.astype(np.float32), levels=(lo, hi), autoLevels=False)
        self.image.setRect(self._rect)
        self.bar.setLevels((lo, hi))
        self.bar.setLabel("right", "log10 loss" if self.scale == "log" else "loss")
        if contours and len(self.alphas) >= 3:
            z = np.where(np.isfinite(shown), shown, hi)
            gen = contourpy.contour_generator(
                x=self.alphas, y=self.betas, z=z, line_type="Separate"
            )
            parts = []
            for level in np.linspace(lo, hi, N_CONTOURS + 2)[1:-1]:
                for seg in gen.lines(level):
                    parts += [seg, np.full((1, 2), np.nan)]
            pts = np.concatenate(parts) if parts else np.empty((0, 2))
            self.contours.setData(pts[:, 0], pts[:, 1])
        else:
            self.contours.setData([], [])

    # --- the path ------------------------------------------------------------------------

    def set_path(self, path) -> None:
        self.path_info = path
        for label in self.labels:
            self.plot.removeItem(label)
        self.labels = []
        if path is None:
            self.path.setData([], [])
            self.epochs.setData([])
            self._rehover()
            return
        c = path.coords
        self.path.setData(c[:, 0], c[:, 1])
        marks = epoch_marks(path.epoch_index, len(c))
        idx = [i for _, i in marks]
        self.epochs.setData(c[idx, 0], c[idx, 1]) if idx else self.epochs.setData([])
        for epoch, i in labelled_marks(marks, c):
            label = pg.TextItem(f"{epoch}", color="#ffffff", anchor=(0.5, 1.3))
            label.setPos(c[i, 0], c[i, 1])
            label.setZValue(16)
            self.plot.addItem(label)
            self.labels.append(label)
        # start and end last and highest: always readable on top of the markers
        for i, text, anchor in ((0, "start", (1, 0)), (len(c) - 1, "end", (0, 1))):
            label = pg.TextItem(text, color="#ffffff", anchor=anchor, fill=pg.mkBrush(0, 0, 0, 170))
            label.setPos(c[i, 0], c[i, 1])
            label.setZValue(20)
            self.plot.addItem(label)
            self.labels.append(label)
        self._rehover()

    def set_runs(self, paths: list) -> None:
        """Several runs' paths (core.landscape.multirun.RunPath), each in its colour, with a
        legend; [] clears them. The plane's centre star gives way to the runs' end points."""
        self.runs.set_runs(paths)
        self.centre.setVisible(not paths)
        self._rehover()

    def set_axes_words(self, words: tuple[str, str] | None) -> None:
        """What a and b mean on this plane (None: the generic 'direction 1/2')."""
        a, b = words or ("direction 1", "direction 2")
        self.plot.setLabel("bottom", f"a ({a})")
        self.plot.setLabel("left", f"b ({b})")

    # --- hover -----------------------------------------------------------------------------

    def _moved(self, pos) -> None:
        vb = self.plot.vb
        if self.loss is None or not vb.sceneBoundingRect().contains(pos):
            return
        p = vb.mapSceneToView(pos)
        px = vb.viewPixelSize()
        self.hover(float(p.x()), float(p.y()), tolerance=(8 * px[0], 8 * px[1]))

    def clear_hover(self) -> None:
        """Forget the hovered point (a new grid is coming, or none is shown)."""
        self._hovered = None
        self.last_hover = ""
        self.readout.setText("")
        self.hover_mark.setData([])

    def _rehover(self) -> None:
        """The readout follows new rows and paths under a resting mouse, never stale."""
        if self._hovered is not None and self.loss is not None:
            a, b, tolerance = self._hovered
            self.hover(a, b, tolerance)

    def hover(self, a: float, b: float, tolerance=(0.05, 0.05)) -> str:
        """Describe the path point near ``(a, b)``, else the grid cell there."""
        self._hovered = (a, b, tuple(tolerance))
        text = ""
        path = self.path_info
        near = self.runs.nearest(a, b, tolerance) if self.runs.paths else None
        if near is not None:
            run, i = near
            self.hover_mark.setData([run.coords[i, 0]], [run.coords[i, 1]])
            text = hover_text(run, i)
        elif path is not None and len(path.coords):
            d = np.hypot(
                (path.coords[:, 0] - a) / tolerance[0], (path.coords[:, 1] - b) / tolerance[1]
            )
            i = int(np.argmin(d))
            if d[i] <= 1:
                self.hover_mark.setData([path.coords[i, 0]], [path.coords[i, 1]])
                text = (
                    f"step {int(path.steps[i])}: true loss {path.true_loss[i]:.5g}, "
                    f"on the plane {path.plane_loss[i]:.5g} (off the plane by "
                    f"{100 * path.off_plane[i]:.0f}% of its distance to the centre)"
                )
        if not text:
            self.hover_mark.setData([])
            j = int(np.clip(np.searchsorted(self.alphas, a), 0, len(self.alphas) - 1))
            i = int(np.clip(np.searchsorted(self.betas, b), 0, len(self.betas) - 1))
            if 0 < j and abs(self.alphas[j - 1] - a) < abs(self.alphas[j] - a):
                j -= 1
            if 0 < i and abs(self.betas[i - 1] - b) < abs(self.betas[i] - b):
                i -= 1
            v = self.loss[i, j]
            shown = "not computed yet" if not np.isfinite(v) else f"{v:.5g}"
            text = f"a = {self.alphas[j]:.3g}, b = {self.betas[i]:.3g}: loss {shown}"
        self.last_hover = text
        self.readout.setText(text)
        return text

    def set_theme(self, dark: bool) -> None:
        style_layout_view(self, self.plot, self.readout, dark)


class LinePlot(pg.PlotWidget):
    """The 1-D interpolation from the initial weights (t = 0) to the checkpoint (t = 1)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, enableMenu=False)
        self.setLabel("bottom", LINE_AXIS)
        self.setLabel("left", "loss")
        self.curve = self.plot(pen=pg.mkPen(PATH_COLOUR, width=2))
        self.barrier = BarrierLayer(self)
        # True while the Landscape holds several runs (app.landscape.multirun_panel sets it)
        self.runs_mode: Callable[[], bool] = lambda: False
        self.hint = pg.TextItem(LINE_HINT, color="#8c8f94", anchor=(0.5, 0.5))
        self.addItem(self.hint)
        self.hint.setPos(0.5, 0.5)
        for t in (0.0, 1.0):
            self.addItem(
                pg.InfiniteLine(
                    t, angle=90, pen=pg.mkPen("#9aa0a6", style=QtCore.Qt.PenStyle.DashLine)
                )
            )

    def set_line(
        self,
        t: np.ndarray | None,
        loss: np.ndarray | None,
        axis: str = LINE_AXIS,
        has_run: bool = False,
    ) -> None:
        """The curve, along ``axis`` (by default the initial weights -> checkpoint line).
        With no curve, a hint: ``has_run`` (a run's JSON is loaded) says the line comes after
        the grid, rather than that it needs one."""
        runs = t is None and self.runs_mode()
        # several runs: this plot is for the line between A and B, not the initial weights
        self.setLabel("bottom", BARRIER_AXIS if runs else axis)
        self.hint.setText(RUNS_HINT if runs else LINE_LATER if has_run else LINE_HINT)
        self.barrier.clear()
        self.hint.setVisible(t is None)
        if t is None:
            self.curve.setData([], [])
            self.setRange(xRange=(-0.25, 1.25), yRange=(0, 1))
        else:
            self.curve.setData(t, loss)
            self.enableAutoRange()

    def set_barrier(self, barrier, names: list[str]) -> str:
        """The loss between two runs' end points with its barrier (core.landscape.multirun
        .Barrier); the barrier's words."""
        self.set_line(barrier.t, barrier.loss, BARRIER_AXIS)
        return self.barrier.show(barrier, names)

    def set_theme(self, dark: bool) -> None:
        style_plot(self, dark)


__all__ = ["LandscapeView", "LinePlot"]
