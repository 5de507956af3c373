"""Several runs drawn on one landscape: each path in its Train colour with its epoch markers and
end point, a legend, a hover read-out over all of them; and the loss along the line between two
end points with its barrier (core.landscape.multirun)."""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from app.colors import PALETTE

BARRIER_AXIS = "t  (0 = A's end point, 1 = B's end point)"


def colour_of(path, k: int) -> str:
    """The run's Train colour, else the palette's k-th (files from the CLI name theirs)."""
    return path.colour or PALETTE[k % len(PALETTE)]


class RunsLayer:
    """The runs' items on ``plot`` (a pyqtgraph PlotItem), made when the runs change and
    updated in place otherwise; ``legend`` names each run in its colour."""

    def __init__(self, plot: pg.PlotItem) -> None:
        self.plot = plot
        self.paths: list = []  # core.landscape.multirun.RunPath
        self.items: list[pg.GraphicsObject] = []
        self.legend = pg.LegendItem(
            offset=(8, 8),
            brush=pg.mkBrush(255, 255, 255, 215),
            pen=pg.mkPen("#606060"),
            labelTextColor="#101010",
            labelTextSize="10pt",
            verSpacing=-4,
        )
        self.legend.setParentItem(plot.vb)
        self.legend.setZValue(30)
        self.legend.setVisible(False)

    def clear(self) -> None:
        for item in self.items:
            self.plot.removeItem(item)
        self.items = []
        self.paths = []
        self.legend.clear()
        self.legend.setVisible(False)

    def set_runs(self, paths: list) -> None:
        from app.landscape.view import epoch_marks  # view imports this module

        self.clear()
        self.paths = list(paths)
        for k, p in enumerate(self.paths):
            colour = colour_of(p, k)
            c = p.coords  # (T, 2)
            line = pg.PlotDataItem(c[:, 0], c[:, 1], pen=pg.mkPen(colour, width=2.5))
            line.setZValue(10)
            self._add(line)
            idx = [i for _, i in epoch_marks(p.epoch_index, len(c))]
            if idx:
                marks = pg.ScatterPlotItem(
                    c[idx, 0], c[idx, 1], size=8, pen=pg.mkPen("k", width=1),
                    brush=pg.mkBrush(colour),
                )  # fmt: skip
                marks.setZValue(12)
                self._add(marks)
            end = pg.ScatterPlotItem(
                [p.end[0]], [p.end[1]], symbol="star" if p.trajectory else "d", size=17,
                pen=pg.mkPen("k", width=1.2), brush=pg.mkBrush(colour),
            )  # fmt: skip
            end.setZValue(14)
            self._add(end)
            label = pg.TextItem(
                _short(p.name.split(" · ")[0]),  # the name; the legend adds the optimizer
                color="#ffffff", anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 170),
            )  # fmt: skip
            label.setPos(float(p.end[0]), float(p.end[1]))
            label.setZValue(20)
            self._add(label)
            name = p.name if p.trajectory else f"{p.name} (end point only: no trajectory)"
            self.legend.addItem(line, html.escape(name))
        if self.paths:
            start = self.paths[0].coords[0] if self.paths[0].trajectory else None
            if start is not None:
                label = pg.TextItem(
                    "start", color="#ffffff", anchor=(1, 0), fill=pg.mkBrush(0, 0, 0, 170)
                )
                label.setPos(float(start[0]), float(start[1]))
                label.setZValue(20)
                self._add(label)
        self.legend.setVisible(bool(self.paths))

    def _add(self, item) -> None:
        self.plot.addItem(item)
        self.items.append(item)

    def nearest(self, a: float, b: float, tolerance) -> tuple[object, int] | None:
        """The run and point index near ``(a, b)`` (within ``tolerance`` in plane units)."""
        best, found = 1.0, None
        for p in self.paths:
            d = np.hypot((p.coords[:, 0] - a) / tolerance[0], (p.coords[:, 1] - b) / tolerance[1])
            i = int(np.argmin(d))
            if d[i] <= best:
                best, found = float(d[i]), (p, i)
        return found


def hover_text(path, i: int) -> str:
    """The read-out of a run's path point: as for one run, with the run's name first."""
    what = f"step {int(path.steps[i])}" if path.trajectory else "end point"
    return (
        f"{path.name}, {what}: true loss {path.true_loss[i]:.5g}, on the plane "
        f"{path.plane_loss[i]:.5g} (off the plane by {100 * path.off_plane[i]:.0f}% of its "
        "distance to the centre)"
    )


def _short(name: str, most: int = 24) -> str:
    return name if len(name) <= most else name[: most - 1] + "…"


class BarrierLayer:
    """On the line plot (a pyqtgraph PlotWidget): the loss from A's end point to B's, the chord
    between their losses (dashed) and the barrier, drawn and written."""

    def __init__(self, plot: pg.PlotWidget) -> None:
        self.plot = plot
        self.chord = plot.plot(
            pen=pg.mkPen("#9aa0a6", width=1.5, style=QtCore.Qt.PenStyle.DashLine)
        )
        self.rise = plot.plot(pen=pg.mkPen("#e6194b", width=2.5))
        self.text = pg.TextItem("", color="#e6194b", anchor=(0.5, 1.1))
        plot.addItem(self.text)
        self.title = ""

    def clear(self) -> None:
        self.chord.setData([], [])
        self.rise.setData([], [])
        self.text.setText("")
        self.title = ""
        self.plot.setTitle(None)

    def show(self, barrier, names: list[str]) -> str:
        """Draw ``barrier`` (core.landscape.multirun.Barrier); its one-line description."""
        t, loss = barrier.t, barrier.loss
        l0, l1 = float(loss[0]), float(loss[-1])
        chord = (1 - t) * l0 + t * l1
        self.chord.setData(t, chord)
        k = int(np.argmin(np.abs(t - barrier.t_max)))
        top = float(loss[k])
        self.rise.setData([t[k], t[k]], [chord[k], top])
        a = _short(names[barrier.a].split(" · ")[0], 14) if barrier.a < len(names) else "A"
        b = _short(names[barrier.b].split(" · ")[0], 14) if barrier.b < len(names) else "B"
        text = f"barrier height {barrier.height:.4g}"
        if barrier.height > 0:
            text += f" at t = {barrier.t_max:.2f}"
            # anchored towards the middle, so a barrier near an end stays inside the plot
            # beside the barrier's middle, on the side with more room: above the peak it was
            # cut off by the plot's top edge
            x = float(t[k])
            self.text.setAnchor((-0.05, 0.5) if x < 0.7 else (1.05, 0.5))
            self.text.setText(f"barrier {barrier.height:.4g}")
            self.text.setPos(x, (top + float(chord[k])) / 2)
        else:
            self.text.setText("")
        # short: a long title widens the plot past its room and cuts the curve off
        # "loss on the line A → B: barrier height 0.04937 at t = 0.78" was cut off at 1440 px
        self.title = f"{a} → {b}: {text}"
        self.plot.setTitle(html.escape(self.title), size="9pt")
        return text


__all__ = ["BARRIER_AXIS", "BarrierLayer", "RunsLayer", "colour_of", "hover_text"]
