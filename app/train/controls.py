"""The Train workspace's side panel: what to train and how, turned into a TrainConfig."""

from __future__ import annotations

import dataclasses
import html

import torch
from PySide6 import QtCore, QtWidgets

from app.train.own_model import OwnModelPanel, summary_html
from app.train.sharpness import SharpnessEdit
from app.train.spin_check import spin_problems, watch_spins
from app.widgets import NumberEdit, editor_for, error_label
from core.optimizers import (
    CATALOGUE,
    SCHEDULERS,
    OptimizerSpec,
    SchedulerSpec,
    build_optimizer,
    get_optimizer,
    get_scheduler,
)
from core.train import data as data_mod
from core.train.losses import LossSpec, get_loss, losses_for
from core.train.models import count_parameters, summary
from core.train.tasks import (
    EXPERIMENT,
    EXPERIMENT_INFO,
    TASKS,
    build_model,
    default_hyper,
    get_task,
)
from core.train.training import TrainConfig

FORMS = ("numpy", "autograd", "module")
_PROBE = torch.nn.Parameter(torch.zeros(1))  # what a trial optimizer is built on
FORM_LABELS = {"numpy": "NumPy", "autograd": "autograd", "module": "nn.Linear"}


def _form_layout() -> QtWidgets.QFormLayout:
    form = QtWidgets.QFormLayout()
    form.setContentsMargins(0, 0, 0, 0)
    form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    return form


class TrainControls(QtWidgets.QWidget):
    """Task, data, model, loss, optimizer, schedule, clipping, sizes, seed and device."""

    task_changed = QtCore.Signal(str)
    download_requested = QtCore.Signal()
    edited = QtCore.Signal()  # a value changed (after the settings were checked again)

    def __init__(self, parent=None, settings: QtCore.QSettings | None = None) -> None:
        super().__init__(parent)
        self.hyper: dict = {}  # the optimizer's hyperparameters as edited
        self.sched_hyper: dict = {}
        self.own = OwnModelPanel(settings)  # the user's own model file (task "experiment")
        self.own.setObjectName("own_model_box")
        self.own.checked.connect(self._own_checked)
        self.own.failed.connect(lambda _: self._show_model())
        self.own.busy.connect(lambda _: self._show_model())
        # the whole config is checked as it is edited; a zero timer folds the burst of signals
        # a task change sends (a half-updated form would report a passing conflict)
        self._check_timer = QtCore.QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(0)
        self._check_timer.timeout.connect(self.check)
        self._build()
        self._task_changed()
        self._watch()

    def _build(self) -> None:
        self.task = QtWidgets.QComboBox()
        self.task.setToolTip("What to train: each task brings its model, data and defaults")
        for key, t in TASKS.items():
            self.task.addItem(t.label, key)
        # the dots: choosing it opens a file chooser (when no file is known yet)
        self.task.addItem(EXPERIMENT_INFO.label + "...", EXPERIMENT)
        self.task.currentIndexChanged.connect(lambda _: self._task_changed())
        self.task.activated.connect(self._task_activated)
        self.caption = QtWidgets.QLabel()
        self.caption.setWordWrap(True)

        # data (LeNet)
        self.dataset = QtWidgets.QComboBox()
        self.dataset.addItem("MNIST", "mnist")
        self.dataset.addItem("Synthetic digits (offline demo, not MNIST)", "synthetic")
        self.dataset.setToolTip(
            "MNIST's test set (downloaded once), or synthetic digits that need no download"
        )
        self.dataset.currentIndexChanged.connect(lambda _: self.refresh_data_status())
        self.data_status = QtWidgets.QLabel()
        self.data_status.setWordWrap(True)
        self.data_status.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.download_btn = QtWidgets.QPushButton("Download MNIST")
        self.download_btn.setToolTip("Fetch the four MNIST files (11 MB) into the data folder")
        self.download_btn.clicked.connect(self.download_requested)
        self.limit = QtWidgets.QSpinBox()
        self.limit.setRange(0, 60_000)
        self.limit.setSingleStep(500)
        self.limit.setSpecialValueText("all")
        self.limit.setToolTip(
            "Train on only this many images (a quicker demo): 0 (all) .. 60,000, in steps of 500"
        )
        self.activation = QtWidgets.QComboBox()
        self.activation.addItems(["relu", "tanh"])
        self.activation.setToolTip("LeNet-5's activation: relu (modern) or tanh (the 1998 paper)")
        self.activation.currentIndexChanged.connect(lambda _: self._show_model())
        self.data_box = QtWidgets.QGroupBox("Data")
        dl = _form_layout()
        dl.addRow("Source", self.dataset)
        dl.addRow(self.data_status)
        dl.addRow(self.download_btn)
        dl.addRow("Images", self.limit)
        dl.addRow("Activation", self.activation)
        self.data_box.setLayout(dl)

        # model
        self.model_box = QtWidgets.QGroupBox("Model")
        self.model_text = QtWidgets.QLabel()
        self.model_text.setTextFormat(QtCore.Qt.TextFormat.RichText)
        ml = QtWidgets.QVBoxLayout(self.model_box)
        ml.addWidget(self.model_text)

        # the sine fit's three forms
        self.forms = QtWidgets.QCheckBox("Run the three forms side by side")
        self.forms.setToolTip(
            "NumPy by hand, autograd by hand and nn.Linear + torch.optim.SGD, from the same "
            "start: plain gradient descent on the summed squared error. They coincide."
        )
        self.forms.toggled.connect(self._forms_toggled)

        # training
        self.loss = QtWidgets.QComboBox()
        self.loss.setToolTip("The loss minimised; only losses that fit the task are offered")
        self.optimizer = QtWidgets.QComboBox()
        self.optimizer.setToolTip(
            "A torch.optim optimizer; its hyperparameters appear below with their defaults"
        )
        for key, o in CATALOGUE.items():
            self.optimizer.addItem(o.label, key)
        self.optimizer.currentIndexChanged.connect(lambda _: self._optimizer_changed())
        self.hyper_box = QtWidgets.QWidget()
        self.hyper_form = _form_layout()
        self.hyper_box.setLayout(self.hyper_form)
        self.hyper_error = error_label("hyper_error")
        self.scheduler = QtWidgets.QComboBox()
        self.scheduler.addItem("none (constant lr)", None)
        self.scheduler.setToolTip("How the learning rate changes during the run")
        for key, s in SCHEDULERS.items():
            self.scheduler.addItem(s.label, key)
        self.scheduler.currentIndexChanged.connect(lambda _: self._scheduler_changed())
        self.interval = QtWidgets.QComboBox()
        self.interval.addItem("each epoch", "epoch")
        self.interval.addItem("each step", "step")
        self.interval.setToolTip("When the schedule steps: after each epoch or each batch")
        self.sched_box = QtWidgets.QWidget()
        self.sched_form = _form_layout()
        self.sched_box.setLayout(self.sched_form)
        self.clip = QtWidgets.QCheckBox("clip gradient norm to")
        self.clip.setToolTip("Rescale the gradient when its norm is larger (clip_grad_norm_)")
        self.clip_value = NumberEdit(1e-3, 100.0, True, 1.0)
        self.clip_value.setToolTip("The largest gradient norm allowed: 0.001 .. 100")
        self.clip_value.setEnabled(False)
        self.clip.toggled.connect(self.clip_value.setEnabled)
        self.epochs = QtWidgets.QSpinBox()
        self.epochs.setRange(1, 1_000_000)
        self.epochs.setToolTip(
            "Passes over the training data: 1 .. 1,000,000 (Continue: this many more)"
        )
        self.batch = QtWidgets.QSpinBox()
        self.batch.setRange(0, 1_000_000)
        self.batch.setSpecialValueText("full batch")
        self.batch.setToolTip("Samples per step: 0 (full batch) .. 1,000,000")
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip(
            "Seeds the initial weights and the batch order: 0 .. 2,147,483,647; the same seed "
            "and settings give the same run"
        )
        self.device = QtWidgets.QComboBox()
        self.device.addItem("CPU", "cpu")
        self.device.addItem("CUDA", "cuda")
        self.device.setToolTip("Where the model trains: the CPU, or an NVIDIA GPU (CUDA)")
        if not torch.cuda.is_available():
            item = self.device.model().item(1)
            item.setEnabled(False)
            item.setToolTip("no CUDA device on this machine")
            self.device.setItemText(1, "CUDA (not available here)")

        form = _form_layout()
        form.addRow("Task", self.task)
        form.addRow(self.caption)
        form.addRow(self.forms)
        self.train_form = tl = _form_layout()
        train_box = QtWidgets.QGroupBox("Training")
        tl.addRow("Loss", self.loss)
        tl.addRow("Optimizer", self.optimizer)
        tl.addRow(self.hyper_box)
        tl.addRow(self.hyper_error)
        tl.addRow("LR schedule", self.scheduler)
        tl.addRow("  step it", self.interval)
        tl.addRow(self.sched_box)
        clip_row = QtWidgets.QHBoxLayout()
        clip_row.addWidget(self.clip)
        clip_row.addWidget(self.clip_value, 1)
        tl.addRow(clip_row)
        tl.addRow("Epochs", self.epochs)
        tl.addRow("Batch size", self.batch)
        tl.addRow("Seed", self.seed)
        tl.addRow("Device", self.device)
        self.sharpness = SharpnessEdit()
        tl.addRow(self.sharpness)
        # a conflict between settings (L-BFGS with batches, the numpy form with Adam), live;
        # the workspace shows it above Start, where it stays in view as the controls scroll
        self.conflict = error_label("config_error")
        train_box.setLayout(tl)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(form)
        lay.addWidget(self.own)
        lay.addWidget(self.data_box)
        lay.addWidget(self.model_box)
        lay.addWidget(train_box)
        for name in (
            "task",
            "dataset",
            "limit",
            "activation",
            "forms",
            "loss",
            "optimizer",
            "scheduler",
            "interval",
            "clip",
            "clip_value",
            "epochs",
            "batch",
            "seed",
            "device",
        ):
            getattr(self, name).setObjectName(name)
        self.download_btn.setObjectName("download_mnist")
        self.spins = dict(Epochs=self.epochs, Seed=self.seed, Images=self.limit)
        self.spins["Batch size"] = self.batch
        self.inputs = (
            self.task,
            self.forms,
            self.data_box,
            self.own,
            self.loss,
            self.optimizer,
            self.hyper_box,
            self.scheduler,
            self.interval,
            self.sched_box,
            self.clip,
            self.clip_value,
            self.epochs,
            self.batch,
            self.seed,
            self.device,
            self.sharpness,
        )

    # --- checking as values change ---------------------------------------------------------

    def _watch(self) -> None:
        """Check the settings again whenever a fixed control changes (the optimizer's and the
        schedule's rows are watched as they are built)."""
        for combo in (self.task, self.dataset, self.activation, self.loss, self.optimizer,
                      self.scheduler, self.interval, self.device):  # fmt: skip
            combo.currentIndexChanged.connect(self.changed)
        for spin in (self.limit, self.epochs, self.batch, self.seed):
            spin.valueChanged.connect(self.changed)
        for box in (self.forms, self.clip):
            box.toggled.connect(self.changed)
        self._watch_numbers(self.clip_value)
        watch_spins(self.spins, self.changed)  # an emptied box is marked and stops Start
        self.sharpness.changed.connect(self.changed)
        self.own.checked.connect(self.changed)

    def _watch_numbers(self, editor: QtWidgets.QWidget) -> None:
        # a NumberEdit calls back only with good values: its typed text is watched too, so a
        # fixed value clears the message and a bad one joins it
        if isinstance(editor, NumberEdit):
            editor.text.editingFinished.connect(self.changed)
            editor.committed.connect(self.changed)

    def changed(self, *_args) -> None:
        """Check the settings once the current burst of signals is over."""
        self._check_timer.start()

    def conflict_text(self) -> str:
        """Why the settings cannot run together (TrainConfig.resolved's reason), else "".

        Values marked in their boxes are theirs to report; an own model without its file is
        said by its panel. An emptied whole-number box is said here, as it is typed."""
        if spins := spin_problems(self.spins):
            return "; ".join(spins)
        if self.problems() or (self.task_key() == EXPERIMENT and not self.own.path):
            return ""
        if self.loss.currentData() is None:  # mid-rebuild
            return ""
        try:
            self.configs()
        except ValueError as exc:
            return str(exc)
        return ""

    def check(self) -> None:
        self._check_timer.stop()
        self.conflict.setText(html.escape(self.conflict_text(), quote=False))
        self.edited.emit()

    # --- choices ---------------------------------------------------------------------------

    def task_key(self) -> str:
        return self.task.currentData()

    def set_task(self, key: str) -> None:
        self.task.setCurrentIndex(self.task.findData(key))

    def _task_activated(self, _index: int) -> None:
        # the user chose it (not code): without a file yet, ask for one
        if self.task_key() == EXPERIMENT and not self.own.path:
            self.own.choose_dialog()

    def _task_changed(self) -> None:
        info = get_task(self.task_key())
        own = info.key == EXPERIMENT
        self.caption.setText(f"<i>{html.escape(info.caption)}</i>")
        self.data_box.setVisible(info.key == "lenet")
        self.own.setVisible(own)
        # the file decides its loss and its batches: those controls do not apply
        self.train_form.setRowVisible(self.loss, not own)
        self.train_form.setRowVisible(self.batch, not own)
        self.forms.setVisible(info.key == "sine")
        self.forms.setChecked(False)
        # only losses that fit the task can be chosen: a mismatch is prevented, not reported
        self.loss.clear()
        for key in losses_for(info.family):
            self.loss.addItem(get_loss(key).label, key)
        self.loss.setCurrentIndex(self.loss.findData(info.loss.name))
        self.hyper = dict(info.optimizer.hyper)
        self.set_optimizer(info.optimizer.name, dict(info.optimizer.hyper))
        self.scheduler.setCurrentIndex(0)
        self.clip.setChecked(False)
        self.epochs.setValue(info.epochs)
        self.batch.setValue(info.batch_size)
        if own and self.own.defaults is not None:
            self._apply_defaults(self.own.defaults)
        self.refresh_data_status()
        self._show_model()
        self.task_changed.emit(info.key)

    def _own_checked(self, summary, defaults, picked: bool) -> None:
        if picked and self.task_key() == EXPERIMENT:
            self._apply_defaults(defaults)
        self._show_model()

    def _apply_defaults(self, d) -> None:
        """The file's suggested optimizer (with its hyperparameters) and epochs."""
        if d.optimizer is not None:
            hyper = dict(d.optimizer.hyper)
            if d.optimizer.name == EXPERIMENT_INFO.optimizer.name and not hyper:
                hyper = dict(EXPERIMENT_INFO.optimizer.hyper)
            self.set_optimizer(d.optimizer.name, hyper)
        if d.epochs is not None:
            self.epochs.setValue(d.epochs)

    def set_optimizer(self, key: str, hyper: dict) -> None:
        self.hyper = dict(hyper)
        self.optimizer.blockSignals(True)
        self.optimizer.setCurrentIndex(self.optimizer.findData(key))
        self.optimizer.blockSignals(False)
        self._build_hyper_rows()

    def _optimizer_changed(self) -> None:
        self.hyper = default_hyper(self.task_key(), self.optimizer.currentData())
        self._build_hyper_rows()

    def _build_hyper_rows(self) -> None:
        info = get_optimizer(self.optimizer.currentData())
        while self.hyper_form.rowCount():
            self.hyper_form.removeRow(0)
        self.hyper_error.setText("")
        values = {p.name: p.default for p in info.params} | self.hyper
        editors: dict[str, QtWidgets.QWidget] = {}
        for p in info.params:

            def change(v, name=p.name):
                # checked as it is edited, as the Race does, by building the real optimizer:
                # a number torch refuses is marked at its box and the last good one stays; a
                # switch (Nesterov without momentum) is kept, with the reason under the rows
                try:
                    build_optimizer(OptimizerSpec(info.key, {**self.hyper, name: v}), [_PROBE])
                except ValueError as exc:
                    if hasattr(editors[name], "set_error"):
                        editors[name].set_error(str(exc))
                        return
                    self.hyper[name] = v
                    self.hyper_error.setText(str(exc))
                    self.changed()
                    return
                self.hyper[name] = v
                self.hyper_error.setText("")
                self.changed()

            editors[p.name] = editor_for(p, values[p.name], change)
            self._watch_numbers(editors[p.name])
            self.hyper_form.addRow(f"  {p.name}", editors[p.name])
        self.changed()

    def _scheduler_changed(self) -> None:
        self.sched_hyper = {}
        while self.sched_form.rowCount():
            self.sched_form.removeRow(0)
        key = self.scheduler.currentData()
        self.interval.setEnabled(key is not None)
        if key is None:
            self.scheduler.setToolTip("How the learning rate changes during the run")
            return
        info = get_scheduler(key)
        self.scheduler.setToolTip(info.caption)
        values = {p.name: p.default for p in info.params}
        editors: dict[str, QtWidgets.QWidget] = {}
        for p in info.params:

            def change(v, name=p.name):
                try:
                    SchedulerSpec(key, {**self.sched_hyper, name: v}).resolved()
                except ValueError as exc:
                    if hasattr(editors[name], "set_error"):
                        editors[name].set_error(str(exc))
                    return
                self.sched_hyper[name] = v
                self.changed()

            editor = editors[p.name] = editor_for(p, values[p.name], change)
            self._watch_numbers(editor)
            editor.setObjectName(f"sched_{p.name}")
            if key == "onecycle" and p.name == "total_steps":
                editor.setToolTip("left alone, it is the run's length (epochs x steps, or epochs)")
            self.sched_form.addRow(f"  {p.name}", editor)

    def _forms_toggled(self, on: bool) -> None:
        if not on:
            return
        # the three forms are the tutorial's plain gradient descent: set the controls to it
        self.loss.setCurrentIndex(self.loss.findData("mse"))
        self.set_optimizer("sgd", {"lr": 1e-6})
        self.scheduler.setCurrentIndex(0)
        self.clip.setChecked(False)
        self.batch.setValue(0)

    def refresh_data_status(self) -> None:
        if self.dataset.currentData() == "synthetic":
            self.data_status.setText(
                "Digits drawn with a font, jittered and noised: an offline demo, <b>not MNIST</b>."
            )
            self.download_btn.setVisible(False)
            return
        found, text = data_mod.mnist_status()
        self.data_status.setText(
            html.escape(text)
            + (
                ""
                if found
                else ". Press Download, copy the four MNIST .gz files there, or choose the "
                "synthetic digits."
            )
        )
        self.data_status.setStyleSheet("" if found else "color: #e6194b;")
        self.download_btn.setVisible(not found)

    def mnist_missing(self) -> bool:
        return (
            self.task_key() == "lenet"
            and self.dataset.currentData() == "mnist"
            and not data_mod.mnist_status()[0]
        )

    def _show_model(self) -> None:
        own_model = self.task_key() == EXPERIMENT
        self.model_text.setWordWrap(own_model)  # the built-ins' layer table keeps its rows
        if own_model:
            own = self.own
            if own.summary is not None:
                text = summary_html(own.summary, own.path)
            elif own.checking:
                text = "Importing the file and evaluating its loss once..."
            else:
                text = "The model, its data and its loss come from your file: Reload or Start "
                text += "imports and checks it."
            self.model_text.setText(text)
            return
        model = build_model(self.task_key(), self.activation.currentText())
        rows = "".join(
            f"<tr><td>{html.escape(name or '(model)')}</td><td>{kind}</td>"
            f"<td align='right'>{n:,}</td></tr>"
            for name, kind, n in summary(model)
        )
        self.model_text.setText(
            "<table cellspacing='0' cellpadding='3'>"
            "<tr><th align='left'>layer</th><th align='left'>type</th>"
            "<th align='right'>params</th></tr>"
            f"{rows}<tr><td colspan='2'><b>total</b></td>"
            f"<td align='right'><b>{count_parameters(model):,}</b></td></tr></table>"
        )

    # --- the run ---------------------------------------------------------------------------

    def config(self, model_file: str | None = None) -> TrainConfig:
        """The run the controls describe; ``ValueError`` says what is wrong. ``model_file``:
        an own model's file other than the chosen one (a run continued from its own file)."""
        task = get_task(self.task_key())
        sched = self.scheduler.currentData()
        if task.key == EXPERIMENT:
            path = model_file or self.own.path
            if not path:
                raise ValueError("Choose your model file first: press Model file...")
            # the file gives the model, the data, the batches and the loss
            return TrainConfig(
                task=EXPERIMENT,
                model_file=path,
                loss=None,
                batch_size=None,
                optimizer=OptimizerSpec(self.optimizer.currentData(), dict(self.hyper)),
                scheduler=SchedulerSpec(sched, dict(self.sched_hyper)) if sched else None,
                scheduler_interval=self.interval.currentData(),
                clip_norm=self.clip_value.value() if self.clip.isChecked() else None,
                epochs=self.epochs.value(),
                seed=self.seed.value(),
                device=self.device.currentData(),
                track_sharpness=self.sharpness.every(),
            ).resolved()
        loss_key = self.loss.currentData()
        reduction = task.loss.reduction if loss_key == task.loss.name else "mean"
        lenet = task.key == "lenet"
        return TrainConfig(
            task=task.key,
            loss=LossSpec(loss_key, reduction),
            optimizer=OptimizerSpec(self.optimizer.currentData(), dict(self.hyper)),
            scheduler=SchedulerSpec(sched, dict(self.sched_hyper)) if sched else None,
            scheduler_interval=self.interval.currentData(),
            clip_norm=self.clip_value.value() if self.clip.isChecked() else None,
            epochs=self.epochs.value(),
            batch_size=self.batch.value(),
            seed=self.seed.value(),
            device=self.device.currentData(),
            dataset=self.dataset.currentData() if lenet else "auto",
            activation=self.activation.currentText() if lenet else "relu",
            limit=(self.limit.value() or None) if lenet else None,
            track_sharpness=self.sharpness.every(),
        ).resolved()

    def configs(self) -> list[TrainConfig]:
        """One config, or the three forms of the sine fit when that box is ticked."""
        c = self.config()
        if not (self.task_key() == "sine" and self.forms.isChecked()):
            return [c]
        # by hand, the NumPy and autograd forms have no Hessian: the nn.Linear form tracks it
        return [
            dataclasses.replace(
                c, form=f, track_sharpness=c.track_sharpness * (f == "module")
            ).resolved()
            for f in FORMS
        ]

    def problems(self) -> list[str]:
        """What the red boxes say (a value not a number or out of its range), as
        ``"lr: ..."``; empty when every shown value is good."""
        out = []
        for box in self.findChildren(NumberEdit):
            text = box.error_text() if hasattr(box, "error_text") else ""
            if text and box.isEnabled():  # clipping off: its box does not count
                label = box.objectName().removeprefix("param_").removeprefix("sched_")
                out.append(f"{label}: {text}")
        if self.hyper_error.text():
            out.append(self.hyper_error.text())
        if self.sharpness.error_text():
            out.append(f"sharpness every: {self.sharpness.error_text()}")
        return out

    def set_running(self, on: bool) -> None:
        for w in self.inputs:
            w.setEnabled(not on)
        self.own.set_running(on)
        if not on:
            self.clip_value.setEnabled(self.clip.isChecked())
            self.interval.setEnabled(self.scheduler.currentData() is not None)


__all__ = ["FORMS", "FORM_LABELS", "TrainControls"]
