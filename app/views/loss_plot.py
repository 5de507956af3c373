"""Loss against step for every racer."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from app.theme import style_plot

MIN_STEPS = 10  # the step axis shows at least 0..MIN_STEPS


class LossPlot(pg.PlotWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent, enableMenu=False)
        self.setLabel("bottom", "step")
        self.setLabel("left", "loss")
        # No grid: pyqtgraph draws it as part of the axes, which repaint whenever the range
        # grows (every step), and it cost 10-15 ms a frame in software rendering.
        self.set_theme(dark=False)
        self.curves: list[pg.PlotDataItem] = []
        self.offset = 0.0  # subtracted in log mode: the known minimum value
        self.log = False
        # Steps are never negative; before there are any, an empty 0..MIN_STEPS axis (auto
        # range around a single point showed -40..40).
        self.setLimits(xMin=0)
        self.setXRange(0, MIN_STEPS, padding=0)
        self.enableAutoRange(x=False, y=True)

    def set_theme(self, dark: bool) -> None:
        style_plot(self, dark)

    def set_racers(self, colours: list[str]) -> None:
        while len(self.curves) < len(colours):
            self.curves.append(self.plot(connect="finite"))
        while len(self.curves) > len(colours):
            self.removeItem(self.curves.pop())
        for c, colour in zip(self.curves, colours, strict=True):
            c.setPen(pg.mkPen(colour, width=2))

    def set_log(self, on: bool, offset: float | None) -> None:
        self.log = on
        self.offset = offset or 0.0
        self.setLogMode(y=on)
        label = "loss"
        if on:
            label = "loss - f*" if offset is not None else "loss (positive part)"
        self.setLabel("left", label)

    def update_curves(self, steps: np.ndarray, losses: list[np.ndarray], enabled: list[bool]):
        for c, loss, on in zip(self.curves, losses, enabled, strict=True):
            c.setVisible(on)
            if not on:
                continue
            y = loss - self.offset if self.log else loss
            if self.log:
                y = np.where(y > 0, y, np.nan)
            c.setData(steps, y)
        few = len(steps) == 0 or float(steps[-1]) < MIN_STEPS
        if few:
            self.setXRange(0, MIN_STEPS, padding=0)
        elif not self.getViewBox().autoRangeEnabled()[0]:
            self.enableAutoRange(x=True)
