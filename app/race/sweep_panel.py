"""The Race's "Sweep map" window: two hyperparameters of one racer over a grid of cells.

The map is computed by :func:`core.race.sweep.sweep_map` on a worker thread (``app.workers.Job``)
with progress and Cancel. Hovering a cell describes it; clicking one gives the racer that
setting and replays the race.
"""

from __future__ import annotations

import math
import re

from PySide6 import QtCore, QtWidgets

from app.race.sweep_view import SweepView
from app.sweep_cli import current_setting
from app.widgets import fit_screen
from app.workers import Job, describe
from core.optimizers import get_optimizer
from core.race.sweep import (
    RACE_OPTIONS,
    SweepAxis,
    SweepError,
    SweepMap,
    SweepProgress,
    parse_axis,
    plan_sweep,
    sweep_map,
)
from core.race.sweep_theory import momentum_curves

# The second axis offered first for each optimizer class: what its lesson is about.
_PARTNER = {"SGD": "momentum", "RMSprop": "alpha", "Adagrad": "lr_decay", "Adadelta": "rho"}


def sweepable(racer) -> list[str]:
    """Names of the racer's real-valued hyperparameters, then noise and clip_value."""
    info = get_optimizer(racer.optimizer.name)
    names = [p.name for p in info.params if p.kind == "float"]
    return names + [n for n in RACE_OPTIONS if n != "clip_value" or racer.clip != "none"]


def default_axes(racer) -> tuple[SweepAxis, SweepAxis]:
    info = get_optimizer(racer.optimizer.name)
    values = racer.optimizer.resolved()
    lr = float(values["lr"])
    lr_param = info.param("lr")
    x = SweepAxis("lr", max(lr_param.low, lr / 30), min(lr_param.high, lr * 30), True)
    partner = _PARTNER.get(info.cls.__name__, "beta1")
    names = sweepable(racer)
    if partner not in names:
        partner = next(n for n in names if n != "lr")
    if partner == "noise":
        return x, SweepAxis("noise", 0.0, 1.0)
    p = info.param(partner)
    high = p.high if p.high <= 1 else max(p.low * 10, 1.0)
    return x, SweepAxis(partner, p.low, min(high, 0.99 if p.high < 1 else high), p.log)


class AxisRow(QtWidgets.QWidget):
    """Name, low, high and log of one axis, with its error message under it."""

    def __init__(self, which: str, parent=None) -> None:
        super().__init__(parent)
        self.name = QtWidgets.QComboBox()
        self.name.setObjectName(f"sweep_{which}_name")
        self.low = QtWidgets.QLineEdit()
        self.low.setObjectName(f"sweep_{which}_low")
        self.high = QtWidgets.QLineEdit()
        self.high.setObjectName(f"sweep_{which}_high")
        self.log = QtWidgets.QCheckBox("log")
        self.log.setObjectName(f"sweep_{which}_log")
        self.error = QtWidgets.QLabel()
        self.error.setObjectName(f"sweep_{which}_error")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #d62728")
        self.error.setVisible(False)
        for w in (self.low, self.high):
            w.setMaximumWidth(90)
        grid = QtWidgets.QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(QtWidgets.QLabel(f"{which}:"), 0, 0)
        grid.addWidget(self.name, 0, 1)
        grid.addWidget(self.low, 0, 2)
        grid.addWidget(QtWidgets.QLabel("to"), 0, 3)
        grid.addWidget(self.high, 0, 4)
        grid.addWidget(self.log, 0, 5)
        grid.addWidget(self.error, 1, 1, 1, 5)
        grid.setColumnStretch(1, 1)

    def set_axis(self, names: list[str], axis: SweepAxis) -> None:
        self.name.blockSignals(True)
        self.name.clear()
        self.name.addItems(names)
        self.name.setCurrentText(axis.name)
        self.name.blockSignals(False)
        self.low.setText(f"{axis.low:g}")
        self.high.setText(f"{axis.high:g}")
        self.log.setChecked(axis.log)

    def axis(self) -> SweepAxis:
        """The axis typed here; ``SweepError`` when a bound is not a number."""
        values = []
        for edit, what in ((self.low, "from"), (self.high, "to")):
            try:
                v = float(edit.text())
            except ValueError:
                text = f"{self.name.currentText()}: '{edit.text()}' is not a number"
                raise SweepError(text) from None
            if not math.isfinite(v):
                raise SweepError(f"{self.name.currentText()}: '{what}' must be finite")
            values.append(v)
        return SweepAxis(self.name.currentText(), values[0], values[1], self.log.isChecked())

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))


class SweepWindow(QtWidgets.QDialog):
    """Controls on the left, the map on the right."""

    def __init__(self, controller, racer_index, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("sweep_window")
        self.setWindowTitle("Sweep map")
        self.c = controller
        self.racer_index = racer_index  # callable: the racer the map is about
        self.job: Job | None = None
        self._old_jobs: list[Job] = []
        self.result: SweepMap | None = None
        self.result_racer = None
        self.view = SweepView()
        self.racer_label = QtWidgets.QLabel()
        self.racer_label.setObjectName("sweep_racer")
        self.x_row, self.y_row = AxisRow("x"), AxisRow("y")
        self.grid = QtWidgets.QSpinBox()
        self.grid.setObjectName("sweep_grid")
        self.grid.setRange(4, 256)
        self.grid.setValue(64)
        self.steps = QtWidgets.QSpinBox()
        self.steps.setObjectName("sweep_steps")
        self.steps.setRange(10, 20_000)
        self.steps.setValue(500)
        self.colour = QtWidgets.QComboBox()
        self.colour.setObjectName("sweep_colour")
        self.colour.addItem("final loss (log)", "loss")
        self.colour.addItem("steps to converge", "steps")
        self.colour.currentIndexChanged.connect(lambda _i: self._redraw())
        self.run_button = QtWidgets.QPushButton("Compute map")
        self.run_button.setObjectName("sweep_run")
        self.run_button.clicked.connect(self._run_clicked)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setObjectName("sweep_progress")
        self.progress.setVisible(False)
        self.error = QtWidgets.QLabel()
        self.error.setObjectName("sweep_error")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #d62728")
        self.error.setVisible(False)
        self.hover = QtWidgets.QLabel("Hover a cell to read it; click it to race that setting.")
        self.hover.setObjectName("sweep_hover")
        self.hover.setWordWrap(True)
        self.hover.setMinimumHeight(3 * self.hover.fontMetrics().lineSpacing())
        self.hover.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop)
        self.legend = QtWidgets.QLabel(
            "Red: diverged. Grey (steps): never within reach of the minimum. "
            "Ring: the racer's current setting."
        )
        self.legend.setWordWrap(True)
        form = QtWidgets.QFormLayout()
        form.addRow("cells per axis", self.grid)
        form.addRow("steps", self.steps)
        form.addRow("colour by", self.colour)
        side = QtWidgets.QVBoxLayout()
        side.addWidget(self.racer_label)
        side.addWidget(self.x_row)
        side.addWidget(self.y_row)
        side.addLayout(form)
        side.addWidget(self.run_button)
        side.addWidget(self.progress)
        side.addWidget(self.error)
        side.addWidget(self.hover)
        side.addWidget(self.legend)
        side.addStretch(1)
        panel = QtWidgets.QWidget()
        panel.setLayout(side)
        panel.setFixedWidth(380)
        lay = QtWidgets.QHBoxLayout(self)
        lay.addWidget(panel)
        lay.addWidget(self.view, 1)
        self.view.cellHovered.connect(self._hovered)
        self.view.cellClicked.connect(self.apply_cell)
        self.c.racerChanged.connect(lambda _r: self._mark_current())
        self.c.racersChanged.connect(self.sync)
        self.c.surfaceChanged.connect(self._stale)
        fit_screen(self, 1200, 720)
        self.sync()

    # --- set-up ------------------------------------------------------------------------------

    @property
    def racer(self):
        return self.c.specs[max(0, min(self.racer_index(), len(self.c.specs) - 1))]

    def sync(self, axes: tuple[SweepAxis, SweepAxis] | None = None) -> None:
        """Show the selected racer's hyperparameters; default (or given) axes."""
        racer = self.racer
        self.racer_label.setText(f"<b>{racer.label}</b> on {self.c.surface.name}")
        names = sweepable(racer)
        x, y = axes or default_axes(racer)
        self.x_row.set_axis(names, x)
        self.y_row.set_axis(names, y)
        self._mark_current()

    def _stale(self) -> None:
        self.cancel()
        self.result = None
        self.view.set_curves([])
        self.sync()

    # --- running -----------------------------------------------------------------------------

    def _run_clicked(self) -> None:
        if self.job is not None:
            self.cancel()
        else:
            self.start()

    def start(self) -> bool:
        """Validate and start; False (with the reason shown next to the boxes) if invalid."""
        for row in (self.x_row, self.y_row):
            row.show_error("")
        self.error.setText("")
        self.error.setVisible(False)
        racer, surface = self.racer, self.c.surface
        grid, steps = self.grid.value(), self.steps.value()
        try:
            x, y = self.x_row.axis(), self.y_row.axis()
            plan_sweep(racer, x, y, grid)
        except SweepError as exc:
            self._show_error(str(exc))
            return False
        start = tuple(self.c.start)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.run_button.setText("Cancel")
        job = Job(lambda: sweep_map(surface, racer, x, y, grid, steps, start=start), self)
        job.item.connect(lambda item, j=job: self._item(j, item))
        job.failed.connect(lambda exc, j=job: j is self.job and self._show_error(describe(exc)))
        job.finished.connect(lambda ok, j=job: self._finished(j))
        self.job, self.result_racer = job, racer
        job.start()
        return True

    def _show_error(self, text: str) -> None:
        """Next to the axis it names, else under the button."""
        for row in (self.x_row, self.y_row):
            if re.search(rf"\b{re.escape(row.name.currentText())}\b", text):
                row.show_error(text)
                return
        self.error.setText(text)
        self.error.setVisible(True)

    def _item(self, job: Job, item) -> None:
        if job is not self.job:
            return  # a cancelled job's queued signal
        if isinstance(item, SweepProgress):
            self.progress.setValue(int(100 * item.steps_done / item.steps_total))
        elif isinstance(item, SweepMap):
            self.result = item
            self._redraw()

    def _finished(self, job: Job) -> None:
        if job is not self.job:
            return
        self.job = None
        self.progress.setVisible(False)
        self.run_button.setText("Compute map")

    def cancel(self) -> None:
        job, self.job = self.job, None
        if job is not None:
            job.stop()
            self._old_jobs = [j for j in self._old_jobs if j.running()] + [job]
        self.progress.setVisible(False)
        self.run_button.setText("Compute map")

    def shutdown(self) -> None:
        self.cancel()
        for j in self._old_jobs:
            j.stop()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.cancel()
        super().closeEvent(event)

    # --- showing -----------------------------------------------------------------------------

    def _redraw(self) -> None:
        r = self.result
        if r is None:
            return
        surface = self.c.surface
        self.view.set_map(r, self.colour.currentData(), surface.global_min_value)
        self.view.set_curves(momentum_curves(surface, self.result_racer, r.x_axis, r.y_axis))
        self._mark_current()

    def _mark_current(self) -> None:
        if self.result is not None:
            self.view.set_current(*current_setting(self.racer, self.result))

    def _hovered(self, text: str) -> None:
        self.hover.setText(text or "Hover a cell to read it; click it to race that setting.")

    def apply_cell(self, ix: int, iy: int) -> None:
        """Give the racer the cell's hyperparameters and replay the race from the start."""
        r = self.result
        if r is None:
            return
        index = max(0, min(self.racer_index(), len(self.c.specs) - 1))
        for axis, value in ((r.x_axis, r.x[ix]), (r.y_axis, r.y[iy])):
            if axis.name in RACE_OPTIONS:
                self.c.set_options(index, **{axis.name: float(value)})
            else:
                self.c.set_hyper(index, axis.name, float(value))
        self.c.reset()
        self.c.play()
        self.hover.setText("Racing " + self.view.describe(ix, iy))


def sweep_button(workspace) -> QtWidgets.QPushButton:
    """The "Sweep map" button of the Race workspace."""
    button = QtWidgets.QPushButton("Sweep map")
    button.setObjectName("sweep_map")
    button.setToolTip(
        "Map two hyperparameters of the selected racer: final loss or steps to converge "
        "for every pair; click a cell to race it"
    )
    button.clicked.connect(lambda: open_sweep(workspace))
    return button


def open_sweep(workspace, axes: tuple[str, ...] = (), start: bool = False) -> SweepWindow:
    """The workspace's sweep window for its selected racer (made on first use).

    ``axes``: two ``NAME=LOW:HIGH[:log]`` texts (a preset's); ``start`` computes at once.
    """
    if workspace.sweep_window is None:
        workspace.sweep_window = SweepWindow(
            workspace.c, lambda: max(0, workspace.selected()), workspace
        )
    window = workspace.sweep_window
    window.view.set_theme(workspace.dark)
    window.sync(tuple(parse_axis(t) for t in axes) if axes else None)
    window.show()
    window.raise_()
    if start:
        window.start()
    return window


__all__ = ["SweepWindow", "default_axes", "open_sweep", "sweep_button", "sweepable"]
