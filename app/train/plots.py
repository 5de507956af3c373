"""The Train workspace's plots: loss, validation loss and accuracy, learning rate, and the view
of what the current run is learning, with hover read-outs and a cost-spaced redraw.

Which runs are drawn: the ticked ones, of the current run's task unless "all tasks" is chosen
(a sine fit's loss of 70,000 flattened LeNet's 0.1 to a line on the floor).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.theme import plot_background, style_legend, style_plot
from app.train.details import details, last_value
from app.train.runs import PANELS, Run
from app.train.sharpness import SharpnessCurves, series
from app.train.views import DigitsView, Hover, LineView, PaintClock, Plot, SineView

REDRAW_MS = 30  # the shortest gap between two redraw ticks (see redraw)
MAX_REDRAW_MS = 1000
DRAW_SHARE = 0.05  # of the GUI thread's time, at most, spent drawing while runs train
AXIS_TEXT = 34  # px for a left axis's tick labels at first ("0.004"); wider ones widen it
TASK_TITLES = {
    "sine": "<b>The fit</b>: sin(x) and the current cubic",
    "linreg": "<b>The fit</b>: the points and the current line",
    "linreg_noisy": "<b>The fit</b>: the points and the current line",
    "lenet": "<b>Validation digits</b>: predicted labels; wrong in red (true label)",
}


def _tint(colour: str, dark: bool, amount: float = 0.65) -> str:
    """``colour`` mixed towards the background: a faint but opaque pen (alpha pens are slow in
    software rendering)."""
    c = QtGui.QColor(colour)
    bg = QtGui.QColor("#1e1f22" if dark else "#ffffff")
    mix = [
        round(a * (1 - amount) + b * amount)
        for a, b in zip(c.getRgb()[:3], bg.getRgb()[:3], strict=True)
    ]
    return QtGui.QColor(*mix).name()


class _Curves:
    """The plot items of one run."""

    def __init__(self, plots: TrainPlots, run: Run) -> None:
        pen = pg.mkPen(run.colour, width=2)
        self.raw = plots.loss_plot.plot(pen=pg.mkPen(_tint(run.colour, plots.dark), width=1))
        self.smooth = plots.loss_plot.plot(pen=pen, name=run.name)
        dots = {"symbol": "o", "symbolSize": 6, "symbolBrush": run.colour, "symbolPen": None}
        self.val = plots.val_plot.plot(pen=pen, **dots)
        self.acc = plots.acc_plot.plot(pen=pen, **dots)
        self.lr = plots.lr_plot.plot(pen=pen)
        for item in (self.raw, self.smooth, self.lr):
            item.setClipToView(True)
            item.setDownsampling(auto=True, method="peak")
        self.items = (self.raw, self.smooth, self.val, self.acc, self.lr)
        self.owners = (
            plots.loss_plot,
            plots.loss_plot,
            plots.val_plot,
            plots.acc_plot,
            plots.lr_plot,
        )
        self.visible = True
        self.in_legend = True
        self.sharp = plots.sharp
        self.sharp.add(run)
        self.run = run

    def remove(self) -> None:
        for plot, item in zip(self.owners, self.items, strict=True):
            plot.removeItem(item)
        self.sharp.remove(self.run)


class TrainPlots(QtWidgets.QWidget):
    """Every plot of the Train tab; draws the runs of ``runs()``, details of ``current()``."""

    info_drawn = QtCore.Signal(list)  # runs whose table rows and progress should refresh

    def __init__(
        self,
        runs: Callable[[], list[Run]],
        current: Callable[[], Run | None],
        forms_group: Callable[[], list[Run]],
        parent=None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("train_plots")
        self.runs, self.current, self.forms_group = runs, current, forms_group
        self.curves: dict[Run, _Curves] = {}
        self.dark = False
        self.task = ""  # the task whose runs are drawn (the current run's)
        self._cursor = 0  # the next panel _redraw looks at (after the loss curve)
        self._last_panel = ""  # the panel the last tick drew
        self._x_span: tuple[int, int] | None = None  # fixed x ranges while runs train
        self.paint_clock = PaintClock()
        self._build()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self._redraw)

    # --- layout ---------------------------------------------------------------------------

    def _plot(self, name: str, x: str, y: str) -> Plot:
        p = Plot(self.paint_clock)
        p.setObjectName(name)
        # a left axis as wide as its widest tick label: "0.0008" under a fixed 54 px ran into
        # the title. It widens only (never narrows), so live curves re-lay it out rarely.
        p.getAxis("left").setStyle(
            tickTextWidth=AXIS_TEXT, autoExpandTextSpace=True, autoReduceTextSpace=False
        )
        for name in ("left", "bottom"):
            # labels take at most half an axis's length (pyqtgraph: 80%): a short plot shows
            # 0, 0.005, 0.01 rather than six labels touching each other
            p.getAxis(name).setStyle(textFillLimits=[(0, 0.5), (2, 0.4), (4, 0.3), (6, 0.2)])
        p.setLabel("bottom", x)
        p.setLabel("left", y)
        # below ~120 px the tick labels of a y axis run into each other and its title is cut
        p.setMinimumSize(140, 120)
        style_plot(p, False)
        return p

    def _build(self) -> None:
        self.loss_plot = self._plot("loss_plot", "step", "training loss")
        self.legend = self.loss_plot.addLegend(offset=(-8, 8))
        self.val_plot = self._plot("val_plot", "epoch", "validation loss")
        # accuracy gets its own plot: beside a loss it would be a flat line
        self.acc_plot = self._plot("acc_plot", "epoch", "val. accuracy (%)")
        self.lr_plot = self._plot("lr_plot", "step", "learning rate")
        self.lr_plot.enableAutoRange(y=False)
        # the top Hessian eigenvalue, with the optimizer's stability limit (app.train.sharpness)
        self.sharp_plot = self._plot("sharpness_plot", "step", "sharpness")
        self.sharp_caption = QtWidgets.QLabel("")
        self.sharp_caption.setObjectName("sharpness_caption")
        self.sharp_caption.setWordWrap(True)
        self.sharp = SharpnessCurves(self.sharp_plot, self.sharp_caption)
        self.sharp_box = QtWidgets.QWidget()
        sb = QtWidgets.QVBoxLayout(self.sharp_box)
        sb.setContentsMargins(0, 0, 0, 0)
        sb.setSpacing(0)
        sb.addWidget(self.sharp_caption)
        sb.addWidget(self.sharp_plot, 1)
        self.sharp_box.setVisible(False)
        self.sine_view = SineView(self.paint_clock)
        self.line_view = LineView(self.paint_clock)
        for view in (self.sine_view, self.line_view):
            style_plot(view, False)
        self.digits_view = DigitsView()
        self.no_view = QtWidgets.QLabel("")
        self.no_view.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.no_view.setWordWrap(True)
        self._emptied: set = set()  # plots set to an empty range because they draw nothing
        self.task_view = QtWidgets.QStackedWidget()
        self.task_view.setObjectName("task_view")
        for w in (self.no_view, self.sine_view, self.line_view, self.digits_view):
            self.task_view.addWidget(w)
        self.task_title = QtWidgets.QLabel("")
        self.task_title.setWordWrap(True)
        self.plots = (self.loss_plot, self.val_plot, self.acc_plot, self.lr_plot, self.sharp_plot)
        self.hover = Hover(self.loss_plot, self._loss_series, "step", "loss")
        self.val_hover = Hover(
            self.val_plot, lambda: self._epoch_series("val_loss"), "epoch", "loss"
        )
        self.acc_hover = Hover(
            self.acc_plot, lambda: self._epoch_series("val_accuracy", 100), "epoch", "%"
        )
        self.lr_hover = Hover(self.lr_plot, self._lr_series, "step", "lr")
        self.sharp_hover = Hover(self.sharp_plot, self._sharp_series, "step", "sharpness")

        self.smoothing = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.smoothing.setObjectName("smoothing")
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(60)
        self.smoothing.setToolTip(
            "Smoothing of the training loss curve, 0 .. 0.99: the weight of a debiased "
            "exponential moving average, as TensorBoard's (0 = the raw losses)"
        )
        self.smoothing.setMinimumWidth(60)
        self.smoothing.valueChanged.connect(self._smoothing_changed)
        self.smoothing_label = QtWidgets.QLabel("0.60")
        self.log_y = QtWidgets.QCheckBox("log y")
        self.log_y.setObjectName("log_y")
        self.log_y.setToolTip("A logarithmic loss axis (training and validation loss)")
        self.log_y.toggled.connect(self._log_toggled)
        self.which = QtWidgets.QComboBox()
        self.which.setObjectName("show_runs")
        self.which.addItem("this task", "task")
        self.which.addItem("all tasks", "all")
        self.which.setToolTip(
            "Which ticked runs the plots draw: those of the selected run's task (a sine fit's "
            "loss of 70,000 would flatten LeNet's 0.1), or every task's"
        )
        self.which.currentIndexChanged.connect(lambda _: self.update_visibility())
        self.details = QtWidgets.QLabel("")
        self.details.setObjectName("run_details")
        self.details.setWordWrap(True)
        self.details.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop)
        self.details.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        # fixed height: a label that grows re-lays out (and repaints) every plot above it; a
        # third line (a divergence, a continued run) scrolls instead of being cut in half
        self.details_box = QtWidgets.QScrollArea()
        self.details_box.setObjectName("run_details_box")
        self.details_box.setWidget(self.details)
        self.details_box.setWidgetResizable(True)
        self.details_box.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.details_box.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.details_box.setFixedHeight(2 * self.details.fontMetrics().lineSpacing() + 2)

        self.options = QtWidgets.QWidget()
        self.options.setObjectName("plot_options")
        row = QtWidgets.QHBoxLayout(self.options)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QtWidgets.QLabel("Smoothing"))
        row.addWidget(self.smoothing, 1)
        row.addWidget(self.smoothing_label)
        row.addSpacing(8)
        row.addWidget(self.log_y)
        row.addSpacing(8)
        row.addWidget(QtWidgets.QLabel("Show runs of"))
        row.addWidget(self.which)
        loss_box = QtWidgets.QWidget()
        ll = QtWidgets.QVBoxLayout(loss_box)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.loss_plot, 1)
        ll.addWidget(self.options)
        tv = QtWidgets.QWidget()
        tvl = QtWidgets.QVBoxLayout(tv)
        tvl.setContentsMargins(0, 0, 0, 0)
        tvl.addWidget(self.task_title)
        tvl.addWidget(self.task_view, 1)
        # splitters, not minimum sizes: at 1280x720 the user decides what gets the room
        self.top = QtWidgets.QSplitter()
        self.top.addWidget(loss_box)
        self.top.addWidget(tv)
        self.top.setStretchFactor(0, 3)
        self.top.setStretchFactor(1, 2)
        bottom = QtWidgets.QWidget()
        bl = QtWidgets.QHBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        for p in (self.val_plot, self.acc_plot, self.lr_plot, self.sharp_box):
            bl.addWidget(p, 1)
        self.split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.split.setObjectName("plots_split")
        self.split.addWidget(self.top)
        self.split.addWidget(bottom)
        self.split.setStretchFactor(0, 3)
        self.split.setStretchFactor(1, 2)
        self.split.setChildrenCollapsible(False)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.split, 1)
        lay.addWidget(self.details_box)

    # --- which runs are drawn ------------------------------------------------------------

    def visible(self, run: Run) -> bool:
        return run.shown and (self.which.currentData() == "all" or run.task == self.task)

    def drawn(self) -> list[Run]:
        """The runs the comparison plots show (and the exports write)."""
        return [r for r in self.runs() if self.visible(r)]

    def add(self, run: Run) -> None:
        self.curves[run] = _Curves(self, run)

    def remove(self, run: Run) -> None:
        curves = self.curves.pop(run, None)
        if curves is not None:
            self.legend.removeItem(curves.smooth)
            curves.remove()

    def rename(self, run: Run) -> None:
        curves = self.curves[run]
        curves.smooth.opts["name"] = run.name
        if curves.in_legend:
            self.legend.removeItem(curves.smooth)
            self.legend.addItem(curves.smooth, run.name)

    def update_visibility(self) -> None:
        """Show the runs that should be drawn, hide the rest; then draw what changed."""
        current = self.current()
        self.task = current.task if current is not None else self.task
        for run in self.runs():
            curves = self.curves[run]
            on = self.visible(run)
            if on and not curves.visible:
                run.touch()  # it missed redraws while hidden
            curves.visible = on
            for item in curves.items:
                item.setVisible(on)
            curves.raw.setVisible(on and run is current)
            self.sharp.set_visible(run, on)
            if on != curves.in_legend:
                if on:
                    self.legend.addItem(curves.smooth, run.name)
                else:
                    self.legend.removeItem(curves.smooth)
                curves.in_legend = on
        # ranges follow what is shown: another task's runs left the val plot at 0..1800
        self._emptied.clear()
        fixed_x = self._x_span is not None
        for plot in self.plots:
            plot.enableAutoRange(x=not fixed_x, y=plot is not self.lr_plot)
        self.redraw(force=True)

    def _fit(self, plot: Plot, has_data: bool) -> None:
        """An empty plot spans 0..1 (autoscaling keeps the last range it had); once it has
        data again it autoscales."""
        if has_data:
            if plot in self._emptied:
                self._emptied.discard(plot)
                plot.enableAutoRange(x=self._x_span is None, y=plot is not self.lr_plot)
        elif plot not in self._emptied:
            self._emptied.add(plot)
            plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)

    # --- series for the hover read-outs ----------------------------------------------------

    def _loss_series(self):
        w = self.smoothing.value() / 100
        return [(r.name, r.steps(), r.smoothed(w), r.colour) for r in self.drawn()]

    def _epoch_series(self, key: str, scale: float = 1.0):
        out = []
        for r in self.drawn():
            x, y = r.epoch_curve(key)
            out.append((r.name, x, y * scale, r.colour))
        return out

    def _lr_series(self):
        return [(r.name, r.steps(), r.lrs(), r.colour) for r in self.drawn()]

    def _sharp_series(self):
        out = []
        for r in self.drawn():
            s = series(r)
            if s is not None:
                out.append((r.name, np.asarray(s.steps, float), np.asarray(s.values), r.colour))
        return out

    # --- drawing --------------------------------------------------------------------------

    def set_theme(self, dark: bool) -> None:
        self.dark = dark
        for plot in (*self.plots, self.line_view):
            style_plot(plot, dark)
        self.sine_view.set_theme(dark)  # its legend too
        style_legend(self.legend, dark, backed=True)
        self.digits_view.set_theme(dark)
        for run, curves in self.curves.items():
            curves.raw.setPen(pg.mkPen(_tint(run.colour, dark), width=1))

    def show_task_view(self, key: str) -> None:
        view = {
            "sine": self.sine_view,
            "linreg": self.line_view,
            "linreg_noisy": self.line_view,
            "lenet": self.digits_view,
        }.get(key, self.no_view)
        self.task_view.setCurrentWidget(view)
        self.task_title.setText(TASK_TITLES.get(key, ""))
        self.no_view.setText(
            {
                "cnn": "This task has no picture of its fit: watch the loss fall.",
                "experiment": "Your own model: its loss curves are the picture.",
            }.get(key, "")
        )
        # accuracy where there is one: LeNet, or an own model whose batches are classified
        acc = key == "lenet" or any(
            r.task == "lenet" or r.final("val_accuracy") is not None for r in self.drawn()
        )
        self.acc_plot.setVisible(acc)

    def _smoothing_changed(self, value: int) -> None:
        self.smoothing_label.setText(f"{value / 100:.2f}")
        for r in self.runs():
            r.touch()
        self.redraw(force=True)

    def _log_toggled(self, on: bool) -> None:
        for plot in (self.loss_plot, self.val_plot):
            plot.setLogMode(y=on)
        for r in self.runs():
            r.touch()
        self.redraw(force=True)

    def start(self) -> None:
        self.timer.start()

    def redraw(self, force: bool = False) -> None:
        """Redraw what changed, one panel per tick (``force``: everything now).

        Drawing holds the GUI thread (and, in pyqtgraph's Python, the GIL the training thread
        needs), so a tick draws one panel, keeping every pause short, and the next tick waits
        until drawing has used no more than DRAW_SHARE of the time. On 2 cores every 1% of
        the GUI thread's time spent drawing cost LeNet's training ~1.5-2% (torch's two threads
        wait for each other, and for the GIL): at 20% it trained at 64% of its speed without a
        window, at 10% at ~82%, at 5% at ~90% (bench/train_gui.py --variants app,draw-10%),
        and the loss curve still moves a few times a second (it takes every other tick). The
        cost is CPU time, the thread's own: on a busy machine the wall time of a paint grows
        with the waits for a core and for the GIL, which cost the training nothing.
        """
        if force:
            for name in PANELS:
                self._panel(name, force=True)
            return
        t0 = time.thread_time()
        runs = self.runs()
        n = len(PANELS)
        order = [PANELS[(self._cursor + i) % n] for i in range(n)]
        dirty = [name for name in order if any(name in r.dirty for r in runs)]
        if not dirty:
            if not any(r.running for r in runs):
                self.timer.stop()
            return
        # the loss curve is what a learner watches: while it has news it takes every other
        # tick, the other panels take turns in between
        if "loss" in dirty and self._last_panel != "loss":
            name = "loss"
        else:
            name = next((d for d in dirty if d != "loss"), "loss")
            self._cursor = (PANELS.index(name) + 1) % n
        self._last_panel = name
        self._panel(name)
        cost = time.thread_time() - t0 + self.paint_clock.take()
        self.timer.setInterval(int(min(MAX_REDRAW_MS, max(REDRAW_MS, 1000 * cost / DRAW_SHARE))))

    _redraw = redraw  # the timer's slot

    def _panel(self, name: str, force: bool = False) -> None:
        current = self.current()
        log = self.log_y.isChecked()

        def positive(y: np.ndarray) -> np.ndarray:
            return np.where(y > 0, y, np.nan) if log else y

        todo = []
        for run in self.runs():
            if force or name in run.dirty:
                run.dirty.discard(name)
                todo.append(run)
        shown = [r for r in todo if self.visible(r)]
        if name in ("loss", "lr", "val", "acc"):
            self._fix_x_range()
        if name == "loss":
            weight = self.smoothing.value() / 100
            for run in shown:
                curves = self.curves[run]
                steps = run.steps()
                curves.raw.setVisible(run is current)
                if run is current:
                    curves.raw.setData(steps, positive(run.losses()), connect="finite")
                curves.smooth.setData(steps, positive(run.smoothed(weight)), connect="finite")
            self._fit(self.loss_plot, any(r.record.steps["step"] for r in self.drawn()))
        elif name == "lr":
            for run in shown:
                self.curves[run].lr.setData(run.steps(), run.lrs(), connect="finite")
            # lr from 0: a constant lr is a flat line, not noise blown up by autoscaling
            tops = [np.nanmax(r.lrs()) for r in self.drawn() if r.record.steps["lr"]]
            self._fit(self.lr_plot, bool(tops))
            top = float(max(tops, default=0))
            if top > 0 and math.isfinite(top):
                self.lr_plot.setYRange(0, top * 1.1, padding=0)
            # the sharpness arrives with the steps (and its limit follows the lr)
            tracked = self.sharp.draw(shown, self.drawn(), current)
            if tracked != self.sharp_box.isVisibleTo(self):
                self.sharp_box.setVisible(tracked)
        elif name in ("val", "acc"):
            key = "val_loss" if name == "val" else "val_accuracy"
            for run in shown:
                item = self.curves[run].val if name == "val" else self.curves[run].acc
                x, y = run.epoch_curve(key)
                symbol = "o" if len(x) <= 60 else None  # markers while they can be told apart
                if item.opts["symbol"] != symbol:
                    item.setSymbol(symbol)
                item.setData(x, positive(y) if name == "val" else 100 * y)
            plot = self.val_plot if name == "val" else self.acc_plot
            self._fit(plot, any(len(r.epoch_curve(key)[0]) for r in self.drawn()))
        elif name == "task":
            if current is not None and (force or current in todo):
                self.show_task_view(current.task)
                self._draw_task(current)
        elif name == "info":
            if current is not None:
                self.details.setText(details(current, self.forms_group(), self.runs()))
                self.details.setToolTip(self.details.text())
            self.info_drawn.emit(todo)
        else:
            raise ValueError(f"Unknown panel: {name!r} (choose {', '.join(PANELS)})")

    def export_view(self):
        """A context in which the widget shows only the plots, their legend and the fit's
        view on a plain background: what Export > Plots writes (no splitter handles, no
        smoothing and run controls, no details line)."""
        return _ExportView(self)

    def _fix_x_range(self) -> None:
        """While runs train, the step and epoch axes span their whole length.

        Autoscaled, they changed with every redraw, and pyqtgraph redrew the axes' labels each
        time: half the painting of a live LeNet run. Fixed, the curves grow across them."""
        live = [r for r in self.drawn() if r.running and r.record.started]
        if not live:
            if self._x_span is not None:
                self._x_span = None
                for plot in self.plots:
                    plot.enableAutoRange(x=True)
            return
        epochs = max(r.record.started["epochs"] for r in self.drawn() if r.record.started)
        steps = max(
            [r.record.started["epochs"] * r.record.started["steps_per_epoch"] for r in live]
            + [r.record.steps["step"][-1] for r in self.drawn() if r.record.steps["step"]]
        )
        if self._x_span == (steps, epochs):
            return
        self._x_span = (steps, epochs)
        for plot in (self.loss_plot, self.lr_plot, self.sharp_plot):
            plot.setXRange(0, steps, padding=0.02)
        for plot in (self.val_plot, self.acc_plot):
            plot.setXRange(1, max(2, epochs), padding=0.05)

    def _draw_task(self, current: Run) -> None:
        task = current.task
        if task == "sine":
            fits = []
            group = [r for r in self.forms_group() if r in self.runs()]
            runs = group if current in group else [current]
            runs += [r for r in self.drawn() if r.task == "sine" and r not in runs]
            for r in runs[:6]:
                coeffs = last_value(r, "coefficients")
                if coeffs is not None:
                    fits.append((r.name, r.colour, tuple(coeffs)))
            self.sine_view.show_fits(fits)
        elif task in ("linreg", "linreg_noisy"):
            if "x" in current.preview:
                self.line_view.set_points(current.preview["x"], current.preview["y"])
            lines = []
            for r in [current] + [x for x in self.drawn() if x.task == task and x is not current]:
                w, b = last_value(r, "w"), last_value(r, "b")
                if w is not None and b is not None:
                    lines.append((r.colour, w, b))
            self.line_view.show_lines(lines)
        elif task == "lenet":
            self.digits_view.show_run(current)


class _ExportView:
    """See TrainPlots.export_view."""

    def __init__(self, plots: TrainPlots) -> None:
        self.plots = plots

    def __enter__(self) -> TrainPlots:
        p = self.plots
        self.handles = [(s, s.handleWidth()) for s in (p.split, p.top)]
        self.fill = p.autoFillBackground()
        self.palette = p.palette()
        for split, _ in self.handles:
            split.setHandleWidth(0)
        p.options.setVisible(False)
        p.details_box.setVisible(False)
        pal = QtGui.QPalette(self.palette)
        pal.setColor(QtGui.QPalette.ColorRole.Window, QtGui.QColor(plot_background(p.dark)))
        p.setPalette(pal)
        p.setAutoFillBackground(True)
        p.layout().activate()
        QtWidgets.QApplication.sendPostedEvents()
        return p

    def __exit__(self, *exc) -> None:
        p = self.plots
        for split, width in self.handles:
            split.setHandleWidth(width)
        p.options.setVisible(True)
        p.details_box.setVisible(True)
        p.setPalette(self.palette)
        p.setAutoFillBackground(self.fill)


__all__ = ["TrainPlots"]
