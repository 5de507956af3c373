"""The Train workspace: real PyTorch training on a worker thread, with live curves.

The training generator of core.training runs on a QThread (app.workers.Job); its events cross
as signals and are collected here; the plots redraw on a timer, never per step.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.race.editors import editor_for
from app.theme import style_plot
from app.workers import Job
from core.losses import LossSpec, get_loss, losses_for
from core.optimizers import CATALOGUE, OptimizerSpec, get_optimizer
from core.smoothing import debiased_ema
from core.tasks import TASKS, get_task
from core.training import Epoch, Finished, Started, Step, TrainConfig, TrainControl, train

REDRAW_MS = 100


class TrainWorkspace(QtWidgets.QWidget):
    message = QtCore.Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self.control: TrainControl | None = None
        self.hyper: dict = {}  # the optimizer's hyperparameters as edited
        self._reset_data()
        self._build()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self._redraw)
        self._task_changed()

    # --- layout ---------------------------------------------------------------------------

    def _build(self) -> None:
        self.task = QtWidgets.QComboBox()
        for key, t in TASKS.items():
            self.task.addItem(t.label, key)
        self.task.currentIndexChanged.connect(lambda _: self._task_changed())
        self.caption = QtWidgets.QLabel()
        self.caption.setWordWrap(True)
        self.dataset = QtWidgets.QComboBox()
        self.dataset.addItem("MNIST (found locally)", "auto")
        self.dataset.addItem("Synthetic digits (offline demo, not MNIST)", "synthetic")
        self.loss = QtWidgets.QComboBox()
        self.optimizer = QtWidgets.QComboBox()
        for key, o in CATALOGUE.items():
            self.optimizer.addItem(o.label, key)
        self.optimizer.currentIndexChanged.connect(lambda _: self._optimizer_changed())
        self.hyper_box = QtWidgets.QWidget()
        self.hyper_form = QtWidgets.QFormLayout(self.hyper_box)
        self.hyper_form.setContentsMargins(0, 0, 0, 0)
        self.epochs = QtWidgets.QSpinBox()
        self.epochs.setRange(1, 100_000)
        self.batch = QtWidgets.QSpinBox()
        self.batch.setRange(0, 100_000)
        self.batch.setSpecialValueText("full batch")
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.start_btn = QtWidgets.QPushButton("Start")
        self.start_btn.clicked.connect(self.start)
        self.pause_btn = QtWidgets.QPushButton("Pause")
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.stop_btn = QtWidgets.QPushButton("Stop")
        self.stop_btn.clicked.connect(self.stop)
        self.progress = QtWidgets.QProgressBar()
        self.status = QtWidgets.QLabel("Ready")
        self.status.setWordWrap(True)
        self.error = QtWidgets.QLabel("")
        self.error.setStyleSheet("color: #e04040;")
        self.error.setWordWrap(True)
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.start_btn, self.pause_btn, self.stop_btn):
            buttons.addWidget(b)
        form = QtWidgets.QFormLayout()
        form.addRow("Task", self.task)
        form.addRow("", self.caption)
        form.addRow("Data", self.dataset)
        form.addRow("Loss", self.loss)
        form.addRow("Optimizer", self.optimizer)
        form.addRow(self.hyper_box)
        form.addRow("Epochs", self.epochs)
        form.addRow("Batch size", self.batch)
        form.addRow("Seed", self.seed)
        side = QtWidgets.QWidget()
        sl = QtWidgets.QVBoxLayout(side)
        sl.addLayout(form)
        sl.addLayout(buttons)
        sl.addWidget(self.progress)
        sl.addWidget(self.status)
        sl.addWidget(self.error)
        sl.addStretch(1)
        side.setMinimumWidth(380)
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setLabel("left", "training loss")
        self.loss_plot.addLegend(offset=(-8, 8))
        self.raw_curve = self.loss_plot.plot(pen=pg.mkPen("#7f8fa6", width=1), name="per step")
        self.smooth_curve = self.loss_plot.plot(pen=pg.mkPen("#e6194b", width=2), name="smoothed")
        self.val_plot = pg.PlotWidget()
        self.val_plot.setLabel("bottom", "epoch")
        self.val_plot.setLabel("left", "validation loss")
        self.val_loss_curve = self.val_plot.plot(pen=pg.mkPen("#4363d8", width=2))
        # accuracy (0..1) gets its own plot: beside a loss it would be a flat line
        self.acc_plot = pg.PlotWidget()
        self.acc_plot.setLabel("bottom", "epoch")
        self.acc_plot.setLabel("left", "validation accuracy (%)")
        self.val_acc_curve = self.acc_plot.plot(pen=pg.mkPen("#3cb44b", width=2))
        self.plots = (self.loss_plot, self.val_plot, self.acc_plot)
        self.smoothing = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(60)
        self.smoothing.valueChanged.connect(lambda _: self._redraw(force=True))
        self.log_y = QtWidgets.QCheckBox("log y")
        self.log_y.toggled.connect(lambda on: self.loss_plot.setLogMode(y=on))
        self.details = QtWidgets.QLabel("")
        self.details.setWordWrap(True)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Smoothing"))
        row.addWidget(self.smoothing, 1)
        row.addWidget(self.log_y)
        plots = QtWidgets.QWidget()
        pl = QtWidgets.QVBoxLayout(plots)
        pl.addWidget(self.loss_plot, 3)
        pl.addLayout(row)
        bottom = QtWidgets.QHBoxLayout()
        bottom.addWidget(self.val_plot)
        bottom.addWidget(self.acc_plot)
        pl.addLayout(bottom, 2)
        pl.addWidget(self.details)
        split = QtWidgets.QSplitter()
        split.addWidget(plots)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)
        self._set_running(False)

    # --- choices ---------------------------------------------------------------------------

    def _task_changed(self) -> None:
        info = get_task(self.task.currentData())
        self.caption.setText(f"<i>{info.caption}</i>")
        self.dataset.setEnabled(info.key == "lenet")
        # only losses that fit the task can be chosen: a mismatch is prevented, not reported
        self.loss.clear()
        for key in losses_for(info.family):
            self.loss.addItem(get_loss(key).label, key)
        self.loss.setCurrentIndex(self.loss.findData(info.loss.name))
        self.optimizer.setCurrentIndex(self.optimizer.findData(info.optimizer.name))
        self.hyper = dict(info.optimizer.hyper)
        self._optimizer_changed()
        self.epochs.setValue(info.epochs)
        self.batch.setValue(info.batch_size)
        self.acc_plot.setVisible(info.family == "classification")

    def _optimizer_changed(self) -> None:
        info = get_optimizer(self.optimizer.currentData())
        task = get_task(self.task.currentData())
        if info.key != task.optimizer.name:
            self.hyper = {}
        while self.hyper_form.rowCount():
            self.hyper_form.removeRow(0)
        values = {p.name: p.default for p in info.params} | self.hyper
        for p in info.params:

            def change(v, name=p.name):
                self.hyper[name] = v

            self.hyper_form.addRow(f"  {p.name}", editor_for(p, values[p.name], change))

    def config(self) -> TrainConfig:
        """The run the controls describe; ``ValueError`` says what is wrong."""
        task = get_task(self.task.currentData())
        loss_key = self.loss.currentData()
        reduction = task.loss.reduction if loss_key == task.loss.name else "mean"
        return TrainConfig(
            task=task.key,
            loss=LossSpec(loss_key, reduction),
            optimizer=OptimizerSpec(self.optimizer.currentData(), dict(self.hyper)),
            epochs=self.epochs.value(),
            batch_size=self.batch.value(),
            seed=self.seed.value(),
            dataset=self.dataset.currentData() if task.key == "lenet" else "auto",
        ).resolved()

    # --- running ---------------------------------------------------------------------------

    def _reset_data(self) -> None:
        self.steps: list[float] = []
        self.step_loss: list[float] = []
        self.epoch_rows: list[Epoch] = []
        self.started: Started | None = None
        self.finished: Finished | None = None
        self.t0 = 0.0
        self._dirty = False

    def start(self) -> None:
        if self.job is not None:
            return
        try:
            config = self.config()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        self.error.setText("")
        self._reset_data()
        for curve in (self.raw_curve, self.smooth_curve, self.val_loss_curve, self.val_acc_curve):
            curve.setData([], [])
        self.details.setText("")
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.control = TrainControl()
        control = self.control
        self.job = Job(lambda: train(config, control), self)
        job = self.job
        job.item.connect(lambda e, j=job: j is self.job and self._event(e))
        job.failed.connect(lambda msg, j=job: j is self.job and self._failed(msg))
        job.finished.connect(lambda ok, j=job: self._job_done(j))
        self._set_running(True)
        self.t0 = time.monotonic()
        self.status.setText("Starting...")
        job.start()
        self.timer.start()

    def toggle_pause(self) -> None:
        if self.control is None:
            return
        if self.control.paused:
            self.control.resume()
            self.pause_btn.setText("Pause")
            self.message.emit("Training resumed")
        else:
            self.control.pause()
            self.pause_btn.setText("Resume")
            self.message.emit("Training paused")

    def stop(self) -> None:
        if self.control is not None:
            self.control.stop()

    def shutdown(self) -> None:
        """Stop and join the training thread (the window is closing)."""
        job = self.job
        if job is not None:
            self.stop()
            job.stop()
            self.job = None
        self.timer.stop()

    def _event(self, e) -> None:
        if isinstance(e, Step):
            self.steps.append(e.step)
            self.step_loss.append(e.loss)
            total = (
                max(1, self.started.epochs * self.started.steps_per_epoch) if self.started else 1
            )
            self.progress.setValue(int(100 * e.step / total))
            self._dirty = True
        elif isinstance(e, Epoch):
            self.epoch_rows.append(e)
            self._dirty = True
        elif isinstance(e, Started):
            self.started = e
            self.status.setText(
                f"{e.label}: {e.n_params:,} parameters on {e.device}.<br>Data: {e.source}"
            )
        elif isinstance(e, Finished):
            self.finished = e
            text = f"Finished ({e.reason}) after {e.epochs} epochs, {e.steps} steps"
            if e.message:
                text += f": {e.message}"
            self.message.emit(text)
            self.status.setText(self.status.text() + f"<br><b>{text}</b>")

    def _failed(self, msg: str) -> None:
        self.error.setText(f"Training failed: {msg}")
        self.message.emit("Training failed")

    def _job_done(self, job: Job) -> None:
        if job is not self.job:
            return
        self.job = None
        self.control = None
        self._set_running(False)
        self.timer.stop()
        self._redraw(force=True)
        if self.finished is not None:
            if self.finished.reason == "completed":
                self.progress.setValue(100)
            self.progress.setFormat(f"{self.finished.reason}: {self.finished.steps} steps")

    def set_theme(self, dark: bool) -> None:
        for plot in self.plots:
            style_plot(plot, dark)

    def _set_running(self, on: bool) -> None:
        self.start_btn.setEnabled(not on)
        self.pause_btn.setEnabled(on)
        self.stop_btn.setEnabled(on)
        self.pause_btn.setText("Pause")
        for w in (
            self.task,
            self.dataset,
            self.loss,
            self.optimizer,
            self.hyper_box,
            self.epochs,
            self.batch,
            self.seed,
        ):
            w.setEnabled(not on and (w is not self.dataset or self.task.currentData() == "lenet"))

    def _redraw(self, force: bool = False) -> None:
        if not (self._dirty or force):
            return
        self._dirty = False
        if self.steps:
            x = np.asarray(self.steps, dtype=np.float64)
            y = np.asarray(self.step_loss, dtype=np.float64)
            self.raw_curve.setData(x, y)
            self.smooth_curve.setData(x, debiased_ema(y, self.smoothing.value() / 100))
        if self.epoch_rows:
            ep = np.array([e.epoch for e in self.epoch_rows], dtype=np.float64)
            few = len(ep) <= 100  # markers only while they can be told apart
            for curve in (self.val_loss_curve, self.val_acc_curve):
                curve.setSymbol("o" if few else None)
                curve.setSymbolSize(6)
            self.val_loss_curve.setData(ep, [e.val_loss for e in self.epoch_rows])
            acc = [e.val_accuracy for e in self.epoch_rows]
            if acc[0] is not None:
                self.val_acc_curve.setData(ep, [100 * a for a in acc])
            last = self.epoch_rows[-1]
            parts = [
                f"epoch {last.epoch}: train loss {last.train_loss:.5g}, "
                f"val loss {last.val_loss:.5g}"
            ]
            if last.val_accuracy is not None:
                parts.append(f"val accuracy {100 * last.val_accuracy:.2f}%")
            for key in ("polynomial", "line"):
                if key in last.details:
                    parts.append(last.details[key])
            self.details.setText(" | ".join(parts))
        if self.started and self.steps and self.job is not None:
            done = self.steps[-1] / max(1, self.started.epochs * self.started.steps_per_epoch)
            elapsed = time.monotonic() - self.t0
            eta = elapsed * (1 - done) / done if done > 0 else 0
            self.progress.setFormat(f"step {int(self.steps[-1])}  ({done:.0%}, ETA {eta:.0f} s)")
