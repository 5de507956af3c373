"""The Train workspace: real PyTorch training on worker threads, live curves, run comparison.

Each run's training generator (core.train.training) runs on its own QThread (app.workers.Job); its
events cross as signals into the run's record. The plots redraw on a timer (10 per second),
never per step, and only what changed is redrawn.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.colors import PALETTE
from app.theme import style_plot
from app.train.controls import FORM_LABELS, TrainControls
from app.train.runs import PANELS, Run, RunsTable, runs_csv, unique_name
from app.train.views import DigitsView, Hover, LineView, PaintClock, Plot, SineView
from app.workers import Job, describe
from app.workspace import Export
from core.optimizers import get_optimizer
from core.train import data as data_mod
from core.train.runs import RunFileError, RunRecord, load_runs, save_runs
from core.train.training import Finished, Started, TrainConfig, TrainControl, train

REDRAW_MS = 30  # the shortest gap between two redraw ticks (see _redraw)
MAX_REDRAW_MS = 1000
RUNS_ENV = "LOSSLAB_RUNS_DIR"


def runs_root() -> Path:
    """Where runs keep their checkpoints and records: ``$LOSSLAB_RUNS_DIR`` or the user's
    data folder."""
    env = os.environ.get(RUNS_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("losslab")) / "runs"


def leave_a_core() -> None:
    """Let torch use all cores but one: the window's thread paints on that one.

    With every core busy, each of torch's parallel regions waits for the thread the painting
    delayed: LeNet trained 1.8x slower behind a live window on this 2-core machine
    (bench/train_gui.py).
    """
    import torch

    cores = os.cpu_count() or 1
    if cores > 1 and torch.get_num_threads() >= cores:
        torch.set_num_threads(cores - 1)


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

    def __init__(self, ws: TrainWorkspace, run: Run) -> None:
        pen = pg.mkPen(run.colour, width=2)
        self.raw = ws.loss_plot.plot(pen=pg.mkPen(_tint(run.colour, ws.dark), width=1))
        self.smooth = ws.loss_plot.plot(pen=pen, name=run.name)
        self.val = ws.val_plot.plot(
            pen=pen, symbol="o", symbolSize=6, symbolBrush=run.colour, symbolPen=None
        )
        self.acc = ws.acc_plot.plot(
            pen=pen, symbol="o", symbolSize=6, symbolBrush=run.colour, symbolPen=None
        )
        self.lr = ws.lr_plot.plot(pen=pen)
        for item in (self.raw, self.smooth, self.lr):
            item.setClipToView(True)
            item.setDownsampling(auto=True, method="peak")
        self.items = (self.raw, self.smooth, self.val, self.acc, self.lr)

    def remove(self, ws: TrainWorkspace) -> None:
        for plot, item in zip(
            (ws.loss_plot, ws.loss_plot, ws.val_plot, ws.acc_plot, ws.lr_plot),
            self.items,
            strict=True,
        ):
            plot.removeItem(item)


class TrainWorkspace(QtWidgets.QWidget):
    message = QtCore.Signal(str)
    landscape_requested = QtCore.Signal(object)  # a Run with a checkpoint

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.runs: list[Run] = []
        self.curves: dict[Run, _Curves] = {}
        self.forms_group: list[Run] = []
        self.dark = False
        self.download_job: Job | None = None
        self.save_jobs: list[Job] = []
        self._download_state: dict = {}
        self._colour_index = 0
        self._cursor = 0  # the next panel _redraw looks at
        self._build()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self._redraw)
        self._show_task_view(self.controls.task_key())

    # --- layout ---------------------------------------------------------------------------

    def _plot(self, x: str, y: str) -> Plot:
        p = Plot(self.paint_clock)
        # a fixed axis width: tick labels that grow would re-layout and repaint the plot again
        p.getAxis("left").setWidth(58)
        p.setLabel("bottom", x)
        p.setLabel("left", y)
        return p

    def _build(self) -> None:
        self.paint_clock = PaintClock()
        self.controls = TrainControls()
        self.controls.task_changed.connect(self._task_changed)
        self.controls.download_requested.connect(self.download_mnist)
        self.start_btn = QtWidgets.QPushButton("Start")
        self.start_btn.setToolTip("Train with these settings (a new run)")
        self.start_btn.clicked.connect(self.start)
        self.pause_btn = QtWidgets.QPushButton("Pause")
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.stop_btn = QtWidgets.QPushButton("Stop")
        self.stop_btn.clicked.connect(self.stop)
        self.progress = QtWidgets.QProgressBar()
        self.status = QtWidgets.QLabel("Choose a task and press Start.")
        self.status.setWordWrap(True)
        self.error = QtWidgets.QLabel("")
        self.error.setStyleSheet("color: #e6194b;")
        self.error.setWordWrap(True)
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.start_btn, self.pause_btn, self.stop_btn):
            buttons.addWidget(b)
        inner = QtWidgets.QWidget()
        il = QtWidgets.QVBoxLayout(inner)
        il.addWidget(self.controls)
        il.addStretch(1)
        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(inner)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        side = QtWidgets.QWidget()
        sl = QtWidgets.QVBoxLayout(side)
        sl.setContentsMargins(4, 0, 0, 0)
        sl.addWidget(scroll, 1)
        sl.addLayout(buttons)
        sl.addWidget(self.progress)
        sl.addWidget(self.status)
        sl.addWidget(self.error)
        side.setMinimumWidth(370)

        # plots
        self.loss_plot = self._plot("step", "training loss")
        self.legend = self.loss_plot.addLegend(offset=(-8, 8))
        self.val_plot = self._plot("epoch", "validation loss")
        # accuracy gets its own plot: beside a loss it would be a flat line
        self.acc_plot = self._plot("epoch", "validation accuracy (%)")
        self.lr_plot = self._plot("step", "learning rate")
        self.lr_plot.enableAutoRange(y=False)
        self.sine_view = SineView(self.paint_clock)
        self.line_view = LineView(self.paint_clock)
        self.digits_view = DigitsView()
        self.no_view = QtWidgets.QLabel("")
        self.no_view.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.no_view.setWordWrap(True)
        self.task_view = QtWidgets.QStackedWidget()
        for w in (self.no_view, self.sine_view, self.line_view, self.digits_view):
            self.task_view.addWidget(w)
        self.task_title = QtWidgets.QLabel("")
        self.plots = (self.loss_plot, self.val_plot, self.acc_plot, self.lr_plot)
        self.hover = Hover(self.loss_plot, self._loss_series, "step", "loss")
        self.val_hover = Hover(
            self.val_plot, lambda: self._epoch_series("val_loss"), "epoch", "loss"
        )
        self.acc_hover = Hover(
            self.acc_plot, lambda: self._epoch_series("val_accuracy", 100), "epoch", "%"
        )
        self.lr_hover = Hover(self.lr_plot, self._lr_series, "step", "lr")

        self.smoothing = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(60)
        self.smoothing.setToolTip("Debiased exponential moving average, as TensorBoard's")
        self.smoothing.valueChanged.connect(self._smoothing_changed)
        self.smoothing_label = QtWidgets.QLabel("0.60")
        self.log_y = QtWidgets.QCheckBox("log y")
        self.log_y.toggled.connect(self._log_toggled)
        self.details = QtWidgets.QLabel("")
        self.details.setWordWrap(True)
        # fixed height: a label that grows re-lays out (and repaints) every plot above it
        self.details.setFixedHeight(2 * self.details.fontMetrics().lineSpacing() + 4)
        self.details.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop)
        self.details.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Smoothing"))
        row.addWidget(self.smoothing, 1)
        row.addWidget(self.smoothing_label)
        row.addSpacing(12)
        row.addWidget(self.log_y)
        tv = QtWidgets.QWidget()
        tvl = QtWidgets.QVBoxLayout(tv)
        tvl.setContentsMargins(0, 0, 0, 0)
        tvl.addWidget(self.task_title)
        tvl.addWidget(self.task_view, 1)
        grid = self.grid = QtWidgets.QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.loss_plot, 0, 0, 1, 2)
        grid.addWidget(tv, 0, 2)
        grid.addLayout(row, 1, 0, 1, 2)
        grid.addWidget(self.val_plot, 2, 0)
        grid.addWidget(self.acc_plot, 2, 1)
        grid.addWidget(self.lr_plot, 2, 2)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(2, 2)
        for col in range(3):
            grid.setColumnStretch(col, 1)
        self.plots_area = QtWidgets.QWidget()
        pa = QtWidgets.QVBoxLayout(self.plots_area)
        pa.setContentsMargins(0, 0, 0, 0)
        pa.addLayout(grid, 1)
        pa.addWidget(self.details)

        # runs
        self.table = RunsTable()
        self.table.renamed.connect(self.rename_run)
        self.table.toggled.connect(self._toggled)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        run_buttons = QtWidgets.QHBoxLayout()
        self.open_btn = self._button("Open...", "Reopen runs saved as JSON", self.open_dialog)
        self.save_btn = self._button(
            "Save run...", "Save the selected run (JSON, with its trajectory)", self.save_dialog
        )
        self.remove_btn = self._button("Remove", "Remove the selected runs", self.remove_selected)
        self.csv_btn = self._button(
            "Export CSV...", "The shown runs' curves as CSV", lambda: self.export_dialog("csv")
        )
        self.json_btn = self._button(
            "Export JSON...", "The shown runs' curves as JSON", lambda: self.export_dialog("json")
        )
        self.image_btn = self._button(
            "Export plots...", "The plots as PNG or SVG", lambda: self.export_dialog("image")
        )
        self.landscape_btn = self._button(
            "Open in Landscape",
            "Hand the selected run's best checkpoint and trajectory to the Landscape tab",
            self.send_to_landscape,
        )
        for b in (
            self.open_btn,
            self.save_btn,
            self.remove_btn,
            self.csv_btn,
            self.json_btn,
            self.image_btn,
        ):
            run_buttons.addWidget(b)
        run_buttons.addStretch(1)
        run_buttons.addWidget(self.landscape_btn)
        runs_box = QtWidgets.QWidget()
        rl = QtWidgets.QVBoxLayout(runs_box)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.table, 1)
        rl.addLayout(run_buttons)

        centre = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        centre.addWidget(self.plots_area)
        centre.addWidget(runs_box)
        centre.setStretchFactor(0, 4)
        centre.setStretchFactor(1, 1)
        centre.setSizes([620, 170])
        split = QtWidgets.QSplitter()
        split.addWidget(centre)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setSizes([1040, 380])
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)
        self._set_running(False)

    def _button(self, text: str, tip: str, slot) -> QtWidgets.QPushButton:
        b = QtWidgets.QPushButton(text)
        b.setToolTip(tip)
        b.clicked.connect(slot)
        return b

    # --- series for the hover read-outs ----------------------------------------------------

    def _shown(self) -> list[Run]:
        return [r for r in self.runs if r.shown]

    def _loss_series(self):
        w = self.smoothing.value() / 100
        return [(r.name, r.steps(), r.smoothed(w), r.colour) for r in self._shown()]

    def _epoch_series(self, key: str, scale: float = 1.0):
        out = []
        for r in self._shown():
            x, y = r.epoch_curve(key)
            out.append((r.name, x, y * scale, r.colour))
        return out

    def _lr_series(self):
        return [(r.name, r.steps(), r.lrs(), r.colour) for r in self._shown()]

    # --- runs -----------------------------------------------------------------------------

    @property
    def running(self) -> list[Run]:
        return [r for r in self.runs if r.running]

    @property
    def current(self) -> Run | None:
        """The run the detailed views show: the selected one, else the newest."""
        sel = self.table.current_run()
        return sel if sel is not None else (self.runs[-1] if self.runs else None)

    def _next_colour(self) -> str:
        used = {r.colour for r in self.runs}
        for i in range(len(PALETTE)):
            colour = PALETTE[(self._colour_index + i) % len(PALETTE)]
            if colour not in used:
                self._colour_index += i + 1
                return colour
        self._colour_index += 1
        return PALETTE[self._colour_index % len(PALETTE)]

    def _add_run(self, record: RunRecord, status: str) -> Run:
        record.name = unique_name(record.name, {r.name for r in self.runs})
        run = Run(record, self._next_colour(), status)
        self.runs.append(run)
        self.curves[run] = _Curves(self, run)
        self._refresh_table()
        self.table.selectRow(len(self.runs) - 1)
        return run

    def _refresh_table(self) -> None:
        self.table.blockSignals(True)
        self.table.set_runs(self.runs)
        self.table.blockSignals(False)
        self._update_run_buttons()

    @staticmethod
    def _run_name(c: TrainConfig, forms: bool) -> str:
        if forms:
            return f"{FORM_LABELS[c.form]} form"
        opt = get_optimizer(c.optimizer.name).label
        lr = c.optimizer.resolved().get("lr")
        return f"{opt} {lr:g}" if lr is not None else opt

    def rename_run(self, run: Run, name: str) -> None:
        name = unique_name(name, {r.name for r in self.runs if r is not run})
        run.record.name = name
        curves = self.curves[run]
        self.legend.removeItem(curves.smooth)
        curves.smooth.opts["name"] = name
        if run.shown:
            self.legend.addItem(curves.smooth, name)
        self.table.refresh(run)
        if run.file is not None or run.folder is not None:
            self._autosave(run)

    def _toggled(self, run: Run, on: bool) -> None:
        run.shown = on
        curves = self.curves[run]
        for item in curves.items:
            item.setVisible(on)
        self.legend.removeItem(curves.smooth)
        if on:
            self.legend.addItem(curves.smooth, run.name)
        run.touch()
        self._redraw(force=True)

    def _selection_changed(self) -> None:
        for r in self.runs:
            r.touch()
        self._update_run_buttons()
        self._redraw(force=True)

    def _update_run_buttons(self) -> None:
        sel = self.table.selected_runs()
        idle = [r for r in sel if not r.running]
        self.remove_btn.setEnabled(bool(idle))
        self.save_btn.setEnabled(len(sel) == 1 and not sel[0].running)
        have = bool(self._shown())
        for b in (self.csv_btn, self.json_btn, self.image_btn):
            b.setEnabled(have)
        cur = self.current
        ok = cur is not None and not cur.running and cur.checkpoint is not None
        self.landscape_btn.setEnabled(ok)
        self.landscape_btn.setToolTip(
            "Hand this run's best checkpoint and trajectory to the Landscape tab"
            if ok
            else "Select a finished run that saved a checkpoint"
        )

    def remove_runs(self, runs: list[Run]) -> None:
        for run in runs:
            if run.running or run not in self.runs:
                continue
            self.curves.pop(run).remove(self)
            self.runs.remove(run)
            if run in self.forms_group:
                self.forms_group.remove(run)
        self._refresh_table()
        self._redraw(force=True)

    def remove_selected(self) -> None:
        self.remove_runs(self.table.selected_runs())

    # --- starting and controlling runs ---------------------------------------------------------

    def start(self) -> None:
        if self.running:
            return
        try:
            configs = self.controls.configs()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        if self.controls.mnist_missing():
            self.error.setText(
                f"{data_mod.mnist_status()[1]}. Press Download MNIST, copy the four MNIST .gz "
                f"files into that folder (or set {data_mod.ENV_VAR} to a folder that has them), "
                "or choose the synthetic digits as the source."
            )
            return
        self.error.setText("")
        leave_a_core()
        forms = len(configs) > 1
        started = [self._launch(c, self._run_name(c, forms)) for c in configs]
        if forms:
            self.forms_group = started
        self._set_running(True)
        self.status.setText("Starting...")
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.timer.start()

    def _launch(self, config: TrainConfig, name: str) -> Run:
        run = self._add_run(RunRecord.for_config(config, name), "running")
        if config.form == "module":
            folder = runs_root() / (
                time.strftime("%Y%m%d-%H%M%S-") + re.sub(r"[^A-Za-z0-9.]+", "-", run.name)
            )
            try:
                folder.mkdir(parents=True, exist_ok=True)
                run.folder = folder
                config = dataclasses.replace(config, checkpoint=str(folder / "best.pt"))
                run.record.config = config.to_dict()
            except OSError as exc:
                self.message.emit(f"No checkpoint for this run: cannot create {folder} ({exc})")
        control = TrainControl()
        job = Job(lambda: train(config, control), self)
        run.job, run.control, run.t0 = job, control, time.monotonic()
        job.item.connect(lambda e, r=run: self._event(r, e))
        job.failed.connect(lambda exc, r=run: self._failed(r, describe(exc)))
        job.finished.connect(lambda ok, r=run: self._job_done(r))
        job.start()
        return run

    def toggle_pause(self) -> None:
        runs = self.running
        if not runs:
            return
        pausing = not runs[0].control.paused
        for r in runs:
            if pausing:
                r.control.pause()
                r.status = "paused"
            else:
                r.control.resume()
                r.status = "running"
            self.table.refresh(r)
        self.pause_btn.setText("Resume" if pausing else "Pause")
        self.message.emit("Training paused" if pausing else "Training resumed")

    def stop(self) -> None:
        for r in self.running:
            r.control.stop()

    def shutdown(self) -> None:
        """Stop and join every training thread (the window is closing)."""
        for r in self.running:
            r.control.stop()
            r.job.stop()
            r.job = None
        for job in list(self.save_jobs):
            job.stop(30_000)  # a save is not interrupted: let it finish
        if self.download_job is not None:
            self._download_state["cancel"].set()
            self.download_job.stop()
            self.download_job = None
        self.timer.stop()

    def _event(self, run: Run, e) -> None:
        if run not in self.runs:
            return
        run.add(e)
        if isinstance(e, Started):
            self.status.setText(
                f"<b>{e.label}</b>: {e.n_params:,} parameters on {e.device}.<br>Data: {e.source}"
            )
            if run.folder is None and run.record.config.get("form", "module") == "module":
                self.status.setText(self.status.text() + "<br>(no checkpoint folder)")
        elif isinstance(e, Finished):
            text = f"{run.name}: {e.reason} after {e.epochs} epochs, {e.steps} steps"
            if e.message:
                text += f" ({e.message})"
            self.message.emit(text)
            if e.reason == "diverged":
                self.error.setText(f"{run.name} diverged: {e.message}")

    def _failed(self, run: Run, msg: str) -> None:
        run.status, run.error = "failed", msg
        self.error.setText(f"Training failed ({run.name}): {msg}")
        self.message.emit("Training failed")
        self.table.refresh(run)

    def _job_done(self, run: Run) -> None:
        if run.job is None:
            return
        run.job = run.control = None
        run.seconds = time.monotonic() - run.t0
        if run.status in ("running", "paused"):
            run.status = "stopped"
        run.touch()
        self._autosave(run)
        self.table.refresh(run)
        if not self.running:
            self._set_running(False)  # the timer draws what is left, then stops
            fin = run.record.finished
            if fin:
                if fin.get("reason") == "completed":
                    self.progress.setValue(100)
                self.progress.setFormat(f"{fin.get('reason')}: {fin.get('steps')} steps")
            else:
                self.progress.setFormat(run.status)
        self._update_run_buttons()

    def _autosave(self, run: Run) -> None:
        """Keep a finished run's record beside its checkpoint (what Landscape reads).

        On a worker thread: LeNet's trajectory is ~25 MB, and the GUI must not wait for a disk.
        """
        if run.folder is None:
            return
        path = run.folder / "run.json"

        def save():
            yield run.record.save(path)

        job = Job(save, self)
        self.save_jobs.append(job)

        def done(ok: bool) -> None:
            if ok:
                run.file = path
                self._update_run_buttons()
            if job in self.save_jobs:
                self.save_jobs.remove(job)

        job.failed.connect(
            lambda exc: self.message.emit(f"Could not save the run record: {describe(exc)}")
        )
        job.finished.connect(done)
        job.start()

    def _set_running(self, on: bool) -> None:
        self.start_btn.setEnabled(not on)
        self.pause_btn.setEnabled(on)
        self.stop_btn.setEnabled(on)
        self.open_btn.setEnabled(True)
        self.pause_btn.setText("Pause")
        self.controls.set_running(on)
        self._update_run_buttons()

    # --- MNIST download --------------------------------------------------------------------

    def download_mnist(self) -> None:
        if self.download_job is not None:
            return
        folder = data_mod.data_dir()
        state: dict = {"cancel": threading.Event(), "progress": ("", 0, 0)}

        def progress(name: str, done: int, total: int) -> None:
            if state["cancel"].is_set():
                raise InterruptedError("download cancelled")
            state["progress"] = (name, done, total)

        def fetch():
            yield data_mod.download(
                folder,
                names=tuple(data_mod.FILES),
                mirrors=data_mod.MIRRORS,
                checksums=data_mod.FILES,
                progress=progress,
                timeout=10.0,
            )

        self._download_state = state
        job = Job(fetch, self)
        self.download_job = job
        bar = QtCore.QTimer(self)
        bar.setInterval(100)

        def tick() -> None:
            name, done, total = state["progress"]
            if name:
                self.controls.data_status.setText(
                    f"Downloading {name}: {done / 1e6:.1f}"
                    + (f" of {total / 1e6:.1f} MB" if total else " MB")
                )

        bar.timeout.connect(tick)
        bar.start()
        self.controls.download_btn.setEnabled(False)
        self.controls.data_status.setText(f"Downloading MNIST into {folder}...")

        def failed(exc: BaseException) -> None:
            state["error"] = describe(exc)

        def done(ok: bool) -> None:
            bar.stop()
            self.download_job = None
            self.controls.download_btn.setEnabled(True)
            self.controls.refresh_data_status()
            if "error" in state:
                self.error.setText(f"Download failed: {state['error']}")
                self.message.emit("MNIST download failed")
            else:
                self.error.setText("")
                self.message.emit(f"MNIST downloaded into {folder}")

        job.failed.connect(failed)
        job.finished.connect(done)
        job.start()

    # --- files ----------------------------------------------------------------------------

    def open_runs(self, path: str) -> list[Run]:
        """Reopen the runs in a JSON file; a bad file gets a message, never an exception."""
        try:
            records = load_runs(path)
        except RunFileError as exc:
            self.error.setText(str(exc))
            self.message.emit("Could not open the run file")
            return []
        out = []
        for rec in records:
            run = self._add_run(rec, "opened")
            run.file = Path(path)
            if rec.finished:
                run.status = f"{rec.finished.get('reason', 'opened')} (file)"
            run.touch()
            out.append(run)
        self._refresh_table()
        self.error.setText("")
        self.message.emit(f"Opened {len(out)} run(s) from {path}")
        self._redraw(force=True)
        return out

    def save_run(self, run: Run, path: str) -> bool:
        try:
            run.file = run.record.save(path)
        except OSError as exc:
            self._export_failed(exc)
            return False
        self.message.emit(f"Saved {run.name} to {path}")
        return True

    def export_csv(self, path: str) -> bool:
        from app import export

        data = runs_csv(self._shown(), self.smoothing.value() / 100)
        return self._write(lambda: export.atomic_write(path, data), path)

    def export_json(self, path: str) -> bool:
        return self._write(lambda: save_runs([r.record for r in self._shown()], path), path)

    def export_image(self, path: str) -> bool:
        """The plots as PNG (pixels, at 2x) or SVG (vectors)."""
        from app import export

        self._redraw(force=True)
        if path.lower().endswith(".svg"):
            return self._write(
                lambda: export.atomic_write(
                    path, export.widget_svg(self.plots_area, "LossLab training")
                ),
                path,
            )
        return self._write(lambda: export.write_png(path, export.widget_png(self.plots_area)), path)

    def _write(self, action, path: str) -> bool:
        from app import export

        try:
            action()
        except (OSError, export.ExportError) as exc:
            self._export_failed(exc)
            return False
        self.message.emit(f"Exported {path}")
        return True

    def _export_failed(self, exc: Exception) -> None:
        self.error.setText(f"Export failed: {exc}")
        self.message.emit("Export failed")

    def open_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open runs", "", "LossLab runs (*.json)"
        )
        if path:
            self.open_runs(path)

    def save_dialog(self) -> None:
        sel = self.table.selected_runs()
        if len(sel) != 1:
            return
        name = re.sub(r"[^A-Za-z0-9.]+", "-", sel[0].name) + ".json"
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save run", name, "JSON (*.json)")
        if path:
            self.save_run(sel[0], path if path.endswith(".json") else path + ".json")

    def export_dialog(self, kind: str) -> None:
        filters = {
            "csv": ("runs.csv", "CSV (*.csv)"),
            "json": ("runs.json", "JSON (*.json)"),
            "image": ("training.png", "PNG image (*.png);;SVG image (*.svg)"),
        }
        name, filt = filters[kind]
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(self, "Export", name, filt)
        if not path:
            return
        if kind == "image":
            if not path.lower().endswith((".png", ".svg")):
                path += ".svg" if "svg" in chosen else ".png"
            self.export_image(path)
        elif kind == "csv":
            self.export_csv(path if path.endswith(".csv") else path + ".csv")
        else:
            self.export_json(path if path.endswith(".json") else path + ".json")

    def exports(self) -> list[Export]:
        return [
            Export("Plots as &PNG...", "PNG (*.png)", "training.png", self.export_image),
            Export("Plots as &SVG...", "SVG (*.svg)", "training.svg", self.export_image),
            Export("Curves as &CSV...", "CSV (*.csv)", "runs.csv", self.export_csv),
            Export("Curves as &JSON...", "JSON (*.json)", "runs.json", self.export_json),
        ]

    def send_to_landscape(self) -> None:
        run = self.current
        if run is None or run.running or run.checkpoint is None:
            return
        self.landscape_requested.emit(run)

    # --- drawing --------------------------------------------------------------------------

    def set_theme(self, dark: bool) -> None:
        self.dark = dark
        for plot in (*self.plots, self.sine_view, self.line_view):
            style_plot(plot, dark)
        self.digits_view.set_theme(dark)
        for run, curves in self.curves.items():
            curves.raw.setPen(pg.mkPen(_tint(run.colour, dark), width=1))

    def _task_changed(self, key: str) -> None:
        if not self.runs:
            self._show_task_view(key)

    def _show_task_view(self, key: str) -> None:
        view = {
            "sine": self.sine_view,
            "linreg": self.line_view,
            "linreg_noisy": self.line_view,
            "lenet": self.digits_view,
        }.get(key, self.no_view)
        self.task_view.setCurrentWidget(view)
        self.task_title.setText(
            {
                "sine": "<b>The fit</b>: sin(x) and the current cubic",
                "linreg": "<b>The fit</b>: the points and the current line",
                "linreg_noisy": "<b>The fit</b>: the points and the current line",
                "lenet": "<b>Validation digits</b> (prediction; wrong ones in red, true label "
                "in brackets)",
            }.get(key, "")
        )
        self.no_view.setText(
            "This task has no picture of its fit: watch the loss fall." if key == "cnn" else ""
        )
        acc = key == "lenet" or any(r.task == "lenet" and r.shown for r in self.runs)
        if acc != self.acc_plot.isVisibleTo(self) or self.grid.indexOf(self.val_plot) < 0:
            self.grid.removeWidget(self.val_plot)
            self.grid.addWidget(self.val_plot, 2, 0, 1, 1 if acc else 2)
        self.acc_plot.setVisible(acc)

    def _smoothing_changed(self, value: int) -> None:
        self.smoothing_label.setText(f"{value / 100:.2f}")
        for r in self.runs:
            r.touch()
        self._redraw(force=True)

    def _log_toggled(self, on: bool) -> None:
        for plot in (self.loss_plot, self.val_plot):
            plot.setLogMode(y=on)
        for r in self.runs:
            r.touch()
        self._redraw(force=True)

    def _redraw(self, force: bool = False) -> None:
        """Redraw what changed, one panel per tick (``force``: everything now).

        Drawing holds the GUI thread (and, in pyqtgraph's Python, the GIL the training thread
        needs), so a tick draws one panel, keeping every pause short, and the next tick waits
        4x as long as this one's update and paint took: drawing uses <= 20% of the time.
        """
        if force:
            for name in PANELS:
                self._panel(name, force=True)
            return
        t0 = time.perf_counter()
        for _ in range(len(PANELS)):
            name = PANELS[self._cursor]
            self._cursor = (self._cursor + 1) % len(PANELS)
            if any(name in r.dirty for r in self.runs):
                self._panel(name)
                break
        else:
            if not self.running:
                self.timer.stop()
            return
        cost = time.perf_counter() - t0 + self.paint_clock.take()
        self.timer.setInterval(int(min(MAX_REDRAW_MS, max(REDRAW_MS, 4000 * cost))))

    def _panel(self, name: str, force: bool = False) -> None:
        current = self.current
        log = self.log_y.isChecked()

        def positive(y: np.ndarray) -> np.ndarray:
            return np.where(y > 0, y, np.nan) if log else y

        todo = []
        for run in self.runs:
            if force or name in run.dirty:
                run.dirty.discard(name)
                todo.append(run)
        shown = [r for r in todo if r.shown]
        if name == "loss":
            weight = self.smoothing.value() / 100
            for run in shown:
                curves = self.curves[run]
                steps = run.steps()
                curves.raw.setVisible(run is current)
                if run is current:
                    curves.raw.setData(steps, positive(run.losses()), connect="finite")
                curves.smooth.setData(steps, positive(run.smoothed(weight)), connect="finite")
        elif name == "lr":
            for run in shown:
                self.curves[run].lr.setData(run.steps(), run.lrs(), connect="finite")
            # lr from 0: a constant lr is a flat line, not noise blown up by autoscaling
            tops = [np.nanmax(r.lrs()) for r in self._shown() if r.record.steps["lr"]]
            top = float(max(tops, default=0))
            if top > 0 and math.isfinite(top):
                self.lr_plot.setYRange(0, top * 1.1, padding=0)
        elif name in ("val", "acc"):
            key = "val_loss" if name == "val" else "val_accuracy"
            for run in shown:
                item = self.curves[run].val if name == "val" else self.curves[run].acc
                x, y = run.epoch_curve(key)
                symbol = "o" if len(x) <= 60 else None  # markers while they can be told apart
                if item.opts["symbol"] != symbol:
                    item.setSymbol(symbol)
                item.setData(x, positive(y) if name == "val" else 100 * y)
        elif name == "task":
            if current is not None and (force or current in todo):
                self._show_task_view(current.task)
                self._draw_task(current)
        elif name == "info":
            for run in todo:
                if run.running:
                    run.seconds = time.monotonic() - run.t0
                self.table.refresh(run)
            if current is not None:
                self._details(current)
            self._progress()

    def _draw_task(self, current: Run) -> None:
        task = current.task
        if task == "sine":
            fits = []
            group = [r for r in self.forms_group if r in self.runs]
            runs = group if current in group else [current]
            runs += [r for r in self._shown() if r.task == "sine" and r not in runs]
            for r in runs[:6]:
                coeffs = self._last(r, "coefficients")
                if coeffs is not None:
                    fits.append((r.name, r.colour, tuple(coeffs)))
            self.sine_view.show_fits(fits)
        elif task in ("linreg", "linreg_noisy"):
            if "x" in current.preview:
                self.line_view.set_points(current.preview["x"], current.preview["y"])
            lines = []
            for r in [current] + [x for x in self._shown() if x.task == task and x is not current]:
                w, b = self._last(r, "w"), self._last(r, "b")
                if w is not None and b is not None:
                    lines.append((r.colour, w, b))
            self.line_view.show_lines(lines)
        elif task == "lenet":
            grid = self.digits_view.grid
            images = current.preview.get("images")
            if images is not None and grid.images is not images:
                grid.set_samples(images, current.preview.get("labels"))
            if current.samples is not None and grid.predicted is not current.samples:
                grid.set_predictions(current.samples)
            confusion = current.confusion
            if confusion is None and current.record.epochs:
                confusion = current.record.epochs[-1].get("confusion")
            epoch = len(current.record.epochs)
            if confusion is not None and (
                self.digits_view.confusion.matrix is None
                or not np.array_equal(self.digits_view.confusion.matrix, confusion)
            ):
                self.digits_view.confusion.set_matrix(confusion)
            elif confusion is None:
                self.digits_view.confusion.set_matrix(None)
            if images is None:
                grid.set_samples(None, None)
            shown = 0 if images is None else len(images)
            self.digits_view.caption.setText(
                f"{grid.wrong()} of {shown} sample digits wrong. Confusion matrix after epoch "
                f"{epoch} (rows: true digit, columns: predicted):"
                if current.samples is not None and shown
                else (
                    "Reopened run: sample digits are not saved in run files."
                    if current.file and images is None
                    else ""
                )
            )

    @staticmethod
    def _last(run: Run, key: str):
        for row in reversed(run.record.epochs):
            if key in row and row[key] is not None:
                return row[key]
        return (run.record.finished.get("final") or {}).get(key)

    def _details(self, run: Run) -> None:
        parts = [f"<b style='color:{run.colour}'>{run.name}</b>"]
        if run.record.epochs:
            last = run.record.epochs[-1]
            parts.append(
                f"epoch {last['epoch']}: train loss {last['train_loss']:.5g}, "
                f"val loss {last['val_loss']:.5g}"
                if last.get("val_loss") is not None
                else f"epoch {last['epoch']}"
            )
            if last.get("val_accuracy") is not None:
                parts.append(f"val accuracy {100 * last['val_accuracy']:.2f}%")
            for key in ("polynomial", "line"):
                if last.get(key):
                    parts.append(last[key])
        group = [r for r in self.forms_group if r in self.runs]
        if run in group and len(group) > 1:
            k = min(len(r.record.epochs) for r in group)
            if k:
                cs = np.array([r.record.epochs[k - 1]["coefficients"] for r in group])
                diff = float(np.max(np.abs(cs - cs[0])))
                scale = float(np.max(np.abs(cs))) or 1.0
                parts.append(
                    f"the three forms after {k} steps: largest coefficient difference "
                    f"{diff:.2g} ({diff / scale:.1g} relative)"
                )
        if run.error:
            parts.append(f"<span style='color:#e6194b'>{run.error}</span>")
        self.details.setText(" &nbsp;|&nbsp; ".join(parts))

    def _progress(self) -> None:
        runs = self.running
        if not runs:
            return
        run = runs[-1]
        st = run.record.started
        steps = run.record.steps["step"]
        if not st or not steps:
            return
        total = max(1, st["epochs"] * st["steps_per_epoch"])
        done = min(1.0, steps[-1] / total)
        self.progress.setValue(int(100 * done))
        elapsed = time.monotonic() - run.t0
        eta = elapsed * (1 - done) / done if done > 0 else math.inf
        epoch = run.record.steps["epoch"][-1]
        self.progress.setFormat(
            f"epoch {epoch}/{st['epochs']}, step {steps[-1]:,}/{total:,}  "
            f"({done:.0%}, ETA {eta:.0f} s)"
        )
