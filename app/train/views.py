"""What a run is learning, drawn live: the sine fit, the regression line, LeNet's digits.

Each view is told the latest figures of the runs it should show (``show(...)``) and draws them;
it never asks the training thread for anything.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.theme import style_legend, style_plot

WRONG = "#e6194b"
RIGHT = "#3cb44b"


def _cubic(coefficients, x: np.ndarray) -> np.ndarray:
    a, b, c, d = coefficients
    return a + b * x + c * x**2 + d * x**3


class Hover:
    """A read-out that follows the mouse over a plot: the nearest point of each series.

    ``series()`` returns ``[(name, x, y, colour), ...]`` in data units (not log units).
    """

    def __init__(self, plot: pg.PlotWidget, series, x_name: str, y_name: str) -> None:
        self.plot, self.series, self.x_name, self.y_name = plot, series, x_name, y_name
        self.text = pg.TextItem(anchor=(0, 1), fill=pg.mkBrush(30, 31, 34, 220), color="#f0f0f0")
        self.text.setZValue(100)
        self.text.hide()
        self.marker = pg.ScatterPlotItem(size=9, pen=pg.mkPen("w", width=1.5), brush=None)
        self.marker.setZValue(99)
        plot.addItem(self.text, ignoreBounds=True)
        plot.addItem(self.marker, ignoreBounds=True)
        plot.scene().sigMouseMoved.connect(self._moved)
        self.last: list[tuple[str, float, float]] = []  # (name, x, y) under the mouse: tests

    def _moved(self, pos) -> None:
        vb = self.plot.getPlotItem().vb
        if not self.plot.sceneBoundingRect().contains(pos) or not vb.sceneBoundingRect().contains(
            pos
        ):
            self.text.hide()
            self.marker.clear()
            return
        self.at(vb.mapSceneToView(pos).x())

    def at(self, x: float) -> None:
        """Show the values nearest to ``x`` (data units)."""
        item = self.plot.getPlotItem()
        log_x, log_y = item.getAxis("bottom").logMode, item.getAxis("left").logMode
        if log_x:
            x = 10**x
        lines, points, spots = [], [], []
        for name, xs, ys, colour in self.series():
            if len(xs) == 0:
                continue
            i = int(np.clip(np.searchsorted(xs, x), 1, len(xs) - 1)) if len(xs) > 1 else 0
            if len(xs) > 1 and abs(xs[i - 1] - x) <= abs(xs[i] - x):
                i -= 1
            xv, yv = float(xs[i]), float(ys[i])
            points.append((name, xv, yv))
            lines.append(
                f"<span style='color:{colour}'>\u25cf</span> {name}: "
                f"{self.x_name} {xv:g}, {self.y_name} {yv:.5g}"
            )
            if math.isfinite(yv) and (yv > 0 or not log_y):
                spots.append({"pos": (xv, math.log10(yv) if log_y else yv)})
        self.last = points
        if not lines:
            self.text.hide()
            return
        self.text.setHtml("<br>".join(lines))
        self.marker.setData(spots)
        (x0, x1), (y0, y1) = self.plot.getPlotItem().vb.viewRange()
        self.text.setPos(x0 + 0.02 * (x1 - x0), y0 + 0.02 * (y1 - y0))
        self.text.setAnchor((0, 1))
        self.text.show()


class PaintClock:
    """Seconds spent painting, summed over every :class:`Plot` that shares it."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def take(self) -> float:
        s, self.seconds = self.seconds, 0.0
        return s


class Plot(pg.PlotWidget):
    """A PlotWidget that adds the CPU time its paints take to a :class:`PaintClock`.

    Painting runs Python (pyqtgraph) on the GUI thread and holds the GIL that training threads
    need; the workspace uses the clock to space its redraws.
    """

    def __init__(self, clock: PaintClock | None = None, parent=None) -> None:
        super().__init__(parent, enableMenu=False)  # not built only to be dropped
        self.clock = clock

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        t0 = time.thread_time()
        super().paintEvent(event)
        if self.clock is not None:
            self.clock.seconds += time.thread_time() - t0


class SineView(Plot):
    """sin(x) and each run's current cubic, with the polynomial written out.

    The legend keeps to the upper left quarter, where sin(x) never goes (it is <= 0 for
    x < 0) and a good fit neither: names are elided to fit its width, and its background
    is the plot's, so a poor early fit passing under it leaves the names readable.
    objectName of the legend's item: ``sine_legend``."""

    def __init__(self, clock: PaintClock | None = None, parent=None) -> None:
        super().__init__(clock, parent)
        self.setLabel("bottom", "x")
        self.setLabel("left", "y")
        self.legend = self.addLegend(offset=(8, 8), verSpacing=-6)
        self.legend.setObjectName("sine_legend")
        self.names: list[str] = []  # the fits' full names (the legend may show them elided)
        style_legend(self.legend, False, backed=True)
        self.x = np.linspace(-math.pi, math.pi, 400)
        self.target = self.plot(
            self.x, np.sin(self.x), pen=pg.mkPen("#9aa0a6", width=5), name="sin(x)"
        )
        self.curves: list[pg.PlotDataItem] = []
        self.setYRange(-1.6, 1.6)
        self.setXRange(-math.pi, math.pi)

    def show_fits(self, fits: list[tuple[str, str, tuple]]) -> None:
        """``fits``: ``(name, colour, coefficients)`` per run; dashed when several coincide."""
        while len(self.curves) > len(fits):
            c = self.curves.pop()
            self.removeItem(c)
            self.plotItem.legend.removeItem(c)
        for i, (name, colour, coeffs) in enumerate(fits):
            style = [QtCore.Qt.PenStyle.SolidLine, QtCore.Qt.PenStyle.DashLine][i % 2]
            pen = pg.mkPen(colour, width=2.5 if i == 0 else 2, style=style)
            if i >= len(self.curves):
                self.curves.append(self.plot(pen=pen, name=name))
            else:
                self.curves[i].setPen(pen)
            self.curves[i].setData(self.x, _cubic(coeffs, self.x))
        self.names = [name for name, _, _ in fits]
        self._fit_legend()

    def legend_width(self) -> float:
        """The legend's width in pixels, at most half the plot area's (the free quarter)."""
        return self.legend.boundingRect().width()

    def _fit_legend(self) -> None:
        room = self.plotItem.vb.width() / 2 - 8 - 40  # less the offset and the line sample
        if room <= 0:
            return
        for curve, name in zip(self.curves, self.names, strict=True):
            label = self.legend.getLabel(curve)
            font = QtGui.QFont(label.item.font())
            font.setPointSizeF(9)  # the legend's labelTextSize
            text = QtGui.QFontMetrics(font).elidedText(
                name, QtCore.Qt.TextElideMode.ElideRight, int(room)
            )
            if label.text != text:
                label.setText(text)
        # from its smallest: the legend's layout stretches its labels to the legend's width
        self.legend.resize(0, 0)
        self.legend.layout.activate()
        self.legend.updateSize()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        if getattr(self, "names", None):  # PlotWidget resizes once before __init__ is done
            self._fit_legend()

    def set_theme(self, dark: bool) -> None:
        style_plot(self, dark)
        style_legend(self.legend, dark, backed=True)


class LineView(Plot):
    """The regression points and each run's current line."""

    def __init__(self, clock: PaintClock | None = None, parent=None) -> None:
        super().__init__(clock, parent)
        self.setLabel("bottom", "x")
        self.setLabel("left", "y")
        self.points = pg.ScatterPlotItem(
            size=7, pen=pg.mkPen("#606060"), brush=pg.mkBrush("#9aa0a6")
        )
        self.addItem(self.points)
        self.lines: list[pg.PlotDataItem] = []
        self._xy: tuple[np.ndarray, np.ndarray] | None = None

    def set_points(self, x: np.ndarray, y: np.ndarray) -> None:
        if self._xy is not None and np.array_equal(self._xy[0], x):
            return
        self._xy = (x, y)
        self.points.setData(x, y)
        pad = 0.1 * (x.max() - x.min() + 1)
        self.setXRange(x.min() - pad, x.max() + pad)

    def show_lines(self, lines: list[tuple[str, float, float]]) -> None:
        """``lines``: ``(colour, w, b)`` per run."""
        while len(self.lines) > len(lines):
            self.removeItem(self.lines.pop())
        if self._xy is None:
            return
        x = self._xy[0]
        pad = 0.1 * (x.max() - x.min() + 1)
        xs = np.array([x.min() - pad, x.max() + pad])
        for i, (colour, w, b) in enumerate(lines):
            if i >= len(self.lines):
                self.lines.append(self.plot())
            self.lines[i].setPen(pg.mkPen(colour, width=2.5))
            self.lines[i].setData(xs, w * xs + b)

    def set_theme(self, dark: bool) -> None:
        style_plot(self, dark)


class DigitsGrid(QtWidgets.QWidget):
    """Sample validation digits with the model's predicted label; wrong ones framed in red."""

    COLS = 8

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.images: np.ndarray | None = None  # (N, 28, 28) uint8
        self.labels: np.ndarray | None = None
        self.predicted: np.ndarray | None = None
        self.dark = False
        self.placeholder = "Sample digits and their predicted labels appear after the first epoch."
        self.setMinimumSize(120, 60)

    def set_samples(self, images, labels) -> None:
        self.images = None if images is None else np.asarray(images, dtype=np.uint8)
        self.labels = None if labels is None else np.asarray(labels)
        self.predicted = None
        self.update()

    def set_predictions(self, predicted) -> None:
        self.predicted = None if predicted is None else np.asarray(predicted)
        self.update()

    def wrong(self) -> int:
        if self.predicted is None or self.labels is None:
            return 0
        n = min(len(self.predicted), len(self.labels))
        return int((self.predicted[:n] != self.labels[:n]).sum())

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        p = QtGui.QPainter(self)
        fg = QtGui.QColor("#d0d0d0" if self.dark else "#202020")
        if self.images is None or len(self.images) == 0:
            p.setPen(fg)
            p.drawText(
                self.rect(),
                QtCore.Qt.AlignmentFlag.AlignCenter | QtCore.Qt.TextFlag.TextWordWrap,
                self.placeholder,
            )
            return
        n = len(self.images)
        cols = self.COLS
        rows = math.ceil(n / cols)
        cell = min(self.width() / cols, (self.height() - 4) / rows)
        # the label's line is taken from the cell first: small cells shrink the digit, and
        # a label never runs into the next row's digit
        label_px = max(7, min(14, int(cell * 0.24)))
        size = max(6, min(int(cell * 0.66), int(cell - label_px - 5)))
        font = p.font()
        font.setPixelSize(label_px)
        font.setBold(True)
        p.setFont(font)
        for i in range(n):
            r, c = divmod(i, cols)
            x0, y0 = int(c * cell), int(r * cell)
            img = QtGui.QImage(
                np.ascontiguousarray(255 - self.images[i] if not self.dark else self.images[i]),
                28,
                28,
                28,
                QtGui.QImage.Format.Format_Grayscale8,
            )
            target = QtCore.QRect(x0 + int((cell - size) / 2), y0 + 2, size, size)
            p.drawImage(target, img)
            if self.predicted is None or i >= len(self.predicted):
                continue
            pred = int(self.predicted[i])
            ok = self.labels is not None and pred == int(self.labels[i])
            colour = QtGui.QColor(RIGHT if ok else WRONG)
            text = f"{pred}" if ok else f"{pred} ({int(self.labels[i])})"
            if not ok:
                p.setPen(QtGui.QPen(colour, 2))
                p.drawRect(target.adjusted(-1, -1, 1, 1))
            p.setPen(colour)
            p.drawText(
                QtCore.QRect(x0, y0 + size + 3, int(cell), label_px + 2),
                QtCore.Qt.AlignmentFlag.AlignHCenter | QtCore.Qt.AlignmentFlag.AlignTop,
                text,
            )


class ConfusionMatrix(QtWidgets.QWidget):
    """Rows: true class; columns: predicted. Cells coloured by the share of their row."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.matrix: np.ndarray | None = None
        self.dark = False
        self.setMinimumSize(120, 100)

    def set_matrix(self, matrix) -> None:
        self.matrix = None if matrix is None else np.asarray(matrix, dtype=np.int64)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        p = QtGui.QPainter(self)
        fg = QtGui.QColor("#d0d0d0" if self.dark else "#202020")
        p.setPen(fg)
        if self.matrix is None:
            p.drawText(
                self.rect(),
                QtCore.Qt.AlignmentFlag.AlignCenter | QtCore.Qt.TextFlag.TextWordWrap,
                "The confusion matrix appears after the first epoch.",
            )
            return
        m = self.matrix
        k = len(m)
        margin_l, margin_t = 34, 34
        side = max(10, min(self.width() - margin_l - 6, self.height() - margin_t - 6))
        cell = side / k
        font = p.font()
        font.setPixelSize(max(8, min(12, int(cell * 0.36))))
        p.setFont(font)
        p.drawText(
            QtCore.QRectF(margin_l, 0, side, 16),
            QtCore.Qt.AlignmentFlag.AlignCenter,
            "predicted \u2192",
        )
        p.save()
        p.translate(10, margin_t + side / 2)
        p.rotate(-90)
        p.drawText(
            QtCore.QRectF(-side / 2, -8, side, 16),
            QtCore.Qt.AlignmentFlag.AlignCenter,
            "true \u2193",
        )
        p.restore()
        rows = m.sum(axis=1, keepdims=True).clip(min=1)
        share = m / rows
        # the class labels shrink with the cells: at 1280x720 the cells are ~8 px and 8 px
        # labels ran into each other
        label_font = QtGui.QFont(font)
        label_font.setPixelSize(max(5, min(12, int(cell * 0.9))))
        for i in range(k):
            p.setPen(fg)
            p.setFont(label_font)
            p.drawText(
                QtCore.QRectF(margin_l + i * cell, 17, cell, 16),
                QtCore.Qt.AlignmentFlag.AlignCenter,
                str(i),
            )
            p.drawText(
                QtCore.QRectF(18, margin_t + i * cell, 14, cell),
                QtCore.Qt.AlignmentFlag.AlignCenter,
                str(i),
            )
            p.setFont(font)
            for j in range(k):
                s = float(share[i, j])
                if i == j:
                    colour = QtGui.QColor.fromRgbF(0.24, 0.70, 0.29, 0.15 + 0.85 * s)
                else:
                    colour = QtGui.QColor.fromRgbF(0.90, 0.10, 0.29, min(1.0, 0.1 + 4 * s))
                rect = QtCore.QRectF(margin_l + j * cell, margin_t + i * cell, cell, cell)
                p.fillRect(rect, colour if m[i, j] else QtGui.QColor(0, 0, 0, 0))
                p.setPen(QtGui.QColor("#80808080"))
                p.drawRect(rect)
                if m[i, j] and cell >= 14:
                    p.setPen(fg)
                    p.drawText(rect, QtCore.Qt.AlignmentFlag.AlignCenter, str(int(m[i, j])))


class DigitsView(QtWidgets.QWidget):
    """LeNet's view: sample digits above, the confusion matrix below."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.grid = DigitsGrid()
        self.caption = QtWidgets.QLabel("")
        self.caption.setObjectName("digits_caption")
        self.caption.setToolTip("Confusion matrix: rows are the true digit, columns the predicted")
        self.caption.setWordWrap(True)
        self.caption.setFixedHeight(2 * self.caption.fontMetrics().lineSpacing() + 4)
        self.confusion = ConfusionMatrix()
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.grid, 1)
        lay.addWidget(self.caption)
        lay.addWidget(self.confusion, 1)

    def set_theme(self, dark: bool) -> None:
        self.grid.dark = self.confusion.dark = dark
        self.update()

    def show_run(self, run) -> None:
        """The sample digits (live runs only: run files do not keep them) and the latest
        confusion matrix of ``run`` (an app.train.runs.Run), with one caption that says which
        epoch they are from."""
        grid = self.grid
        images = run.preview.get("images")
        if images is None:
            grid.set_samples(None, None)
        elif grid.images is not images:
            grid.set_samples(images, run.preview.get("labels"))
        if run.samples is not None and grid.predicted is not run.samples:
            grid.set_predictions(run.samples)
        rows = [r for r in run.record.epochs if r.get("confusion") is not None]
        epoch = rows[-1]["epoch"] if rows else None
        confusion = (
            run.confusion
            if run.confusion is not None
            else (rows[-1]["confusion"] if rows else None)
        )
        if confusion is None:
            self.confusion.set_matrix(None)
        elif self.confusion.matrix is None or not np.array_equal(self.confusion.matrix, confusion):
            self.confusion.set_matrix(confusion)
        grid.placeholder = (
            "Sample digits are not kept in run files: this run's are not available."
            if images is None and run.record.epochs
            else "Sample digits and their predicted labels appear after the first epoch."
        )
        parts = []
        if images is not None and run.samples is not None:
            parts.append(f"{grid.wrong()} of {len(images)} sample digits wrong.")
        if confusion is not None and epoch is not None:
            parts.append(f"Confusion matrix after epoch {epoch}:")
        self.caption.setText(" ".join(parts))
        grid.update()


__all__ = [
    "ConfusionMatrix",
    "DigitsGrid",
    "DigitsView",
    "Hover",
    "LineView",
    "PaintClock",
    "Plot",
    "SineView",
]
