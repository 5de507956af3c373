"""The Train workspace: real PyTorch training on worker threads, live curves, run comparison.

The layout only: the controls column (scrolls), the plots (app.train.plots), the runs table and
its buttons. The runs and their jobs live in app.train.controller, the MNIST download in
app.train.download, the file writers in app.train.exports.
"""

from __future__ import annotations

import html
import math
import re
import time

from PySide6 import QtCore, QtWidgets

from app.train import exports
from app.train.controller import (
    TrainController,
    continued,
    leave_a_core,
    run_name,
    runs_root,
)
from app.train.controls import FORM_LABELS, TrainControls
from app.train.download import MnistDownload
from app.train.plots import TrainPlots
from app.train.resume_check import optimizer_refusal
from app.train.runs import Run, RunsTable, plural
from app.widgets import error_label
from app.workspace import Export
from core.train import data as data_mod
from core.train.tasks import EXPERIMENT

__all__ = ["TrainWorkspace", "leave_a_core", "runs_root"]


class TrainWorkspace(QtWidgets.QWidget):
    message = QtCore.Signal(str)
    # a Run with a checkpoint, or a list of 2 or more of them (to share one landscape plane)
    landscape_requested = QtCore.Signal(object)
    file_opened = QtCore.Signal(str, str)  # (kind, path): "run" after a runs file opened/saved

    def __init__(self, parent=None, settings: QtCore.QSettings | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("train_workspace")
        self.settings = settings if settings is not None else QtCore.QSettings()
        self._after_check = None  # what Start or Continue does once the model file is checked
        self.controller = c = TrainController(self)
        self.download = MnistDownload(self)
        self._progress_at = 0.0  # when the progress bar last changed (see _progress)
        self._build()
        c.added.connect(self._added)
        c.removed.connect(self._removed)
        c.changed.connect(self._changed)
        c.running_changed.connect(self._set_running)
        c.run_done.connect(self._run_done)
        c.started.connect(self._started)
        c.message.connect(self.message)
        c.error.connect(self.error.setText)
        c.file_opened.connect(self.file_opened)
        self.download.progress.connect(self.controls.data_status.setText)
        self.download.done.connect(self._downloaded)
        self.plots.show_task_view(self.controls.task_key())

    # --- what the main window and the tests use ---------------------------------------------

    @property
    def runs(self) -> list[Run]:
        return self.controller.runs

    @property
    def running(self) -> list[Run]:
        return self.controller.running

    @property
    def save_jobs(self) -> list:
        return self.controller.save_jobs

    @property
    def current(self) -> Run | None:
        """The run the detailed views show: the selected one, else the newest."""
        sel = self.table.current_run()
        return sel if sel is not None else (self.runs[-1] if self.runs else None)

    # --- layout ---------------------------------------------------------------------------

    def _button(self, text: str, name: str, tip: str, slot) -> QtWidgets.QPushButton:
        b = QtWidgets.QPushButton(text)
        b.setObjectName(name)
        b.setToolTip(tip)
        b.clicked.connect(slot)
        return b

    def _build(self) -> None:
        self.controls = TrainControls(settings=self.settings)
        self.controls.task_changed.connect(self._task_changed)
        self.controls.edited.connect(self._edited)
        self._refusal_shown = False  # the error label says why Start refused: kept current
        self.controls.own.busy.connect(self._own_busy)
        self.controls.download_requested.connect(self.download_mnist)
        self.start_btn = self._button(
            "Start", "start", "Train with these settings (a new run)", self.start
        )
        self.pause_btn = self._button(
            "Pause", "pause", "Pause the running runs, or resume them", self.toggle_pause
        )
        self.stop_btn = self._button(
            "Stop", "stop", "End the running runs (their records are kept)", self.stop
        )
        self.progress = QtWidgets.QProgressBar()
        self.progress.setObjectName("progress")
        self.status = QtWidgets.QLabel("Choose a task and press Start.")
        self.status.setObjectName("status")
        self.status.setWordWrap(True)
        self.error = error_label("train_error")
        self.error.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.start_btn, self.pause_btn, self.stop_btn):
            buttons.addWidget(b)
        # the controls column scrolls: the window works at 1280x720 without a minimum height
        inner = QtWidgets.QWidget()
        il = QtWidgets.QVBoxLayout(inner)
        il.setContentsMargins(0, 0, 6, 0)
        il.addWidget(self.controls)
        il.addStretch(1)
        scroll = QtWidgets.QScrollArea()
        scroll.setObjectName("controls_scroll")
        scroll.setWidget(inner)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        scroll.setMinimumHeight(80)
        scroll.setMinimumWidth(inner.minimumSizeHint().width() + 12)
        side = QtWidgets.QWidget()
        sl = QtWidgets.QVBoxLayout(side)
        sl.setContentsMargins(4, 0, 0, 0)
        sl.addWidget(scroll, 1)
        sl.addWidget(self.controls.conflict)
        sl.addLayout(buttons)
        sl.addWidget(self.progress)
        sl.addWidget(self.status)
        sl.addWidget(self.error)

        self.plots = TrainPlots(
            lambda: self.controller.runs, lambda: self.current, lambda: self.controller.forms_group
        )
        self.plots.info_drawn.connect(self._info_drawn)

        # runs
        self.table = RunsTable()
        self.table.setMinimumHeight(60)
        self.table.renamed.connect(self.rename_run)
        self.table.toggled.connect(self._toggled)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.open_btn = self._button(
            "Open...", "open_runs", "Reopen runs saved as JSON", self.open_dialog
        )
        self.save_btn = self._button(
            "Save run...",
            "save_run",
            "Save the selected run (JSON, with its trajectory)",
            self.save_dialog,
        )
        self.remove_btn = self._button(
            "Remove", "remove_runs", "Remove the selected runs", self.remove_selected
        )
        self.export_btn = QtWidgets.QPushButton("Export")
        self.export_btn.setObjectName("export")
        self.export_btn.setToolTip("The drawn runs' curves as CSV or JSON, or the plots")
        menu = QtWidgets.QMenu(self.export_btn)
        menu.addAction("Curves as CSV...", lambda: self.export_dialog("csv"))
        menu.addAction("Curves as JSON...", lambda: self.export_dialog("json"))
        menu.addAction("Plots as PNG or SVG...", lambda: self.export_dialog("image"))
        self.export_btn.setMenu(menu)
        self.continue_btn = self._button(
            "Continue...",
            "continue_run",
            "Train the selected run further from its best checkpoint, with the settings in the "
            "controls (its task's), for the controls' number of epochs",
            self.continue_selected,
        )
        self.landscape_btn = self._button(
            "Open in Landscape",
            "open_in_landscape",
            "Hand the selected run's best checkpoint and trajectory to the Landscape tab",
            self.send_to_landscape,
        )
        run_buttons = QtWidgets.QHBoxLayout()
        for b in (self.open_btn, self.save_btn, self.remove_btn, self.export_btn):
            run_buttons.addWidget(b)
        run_buttons.addStretch(1)
        run_buttons.addWidget(self.continue_btn)
        run_buttons.addWidget(self.landscape_btn)
        runs_box = QtWidgets.QWidget()
        rl = QtWidgets.QVBoxLayout(runs_box)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.table, 1)
        rl.addLayout(run_buttons)

        self.centre = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.centre.setObjectName("centre_split")
        self.centre.addWidget(self.plots)
        self.centre.addWidget(runs_box)
        self.centre.setStretchFactor(0, 4)
        self.centre.setStretchFactor(1, 1)
        self.centre.setChildrenCollapsible(False)
        self.centre.setSizes([620, 150])
        self.split = QtWidgets.QSplitter()
        self.split.setObjectName("train_split")
        self.split.addWidget(self.centre)
        self.split.addWidget(side)
        self.split.setStretchFactor(0, 3)
        self.split.setChildrenCollapsible(False)
        self.split.setSizes([1040, 380])
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.split)
        self._set_running(False)

    # --- the runs list ----------------------------------------------------------------------

    def _added(self, run: Run) -> None:
        self.plots.add(run)
        self._refresh_table()
        self.table.selectRow(len(self.runs) - 1)

    def _removed(self, runs: list[Run]) -> None:
        for run in runs:
            self.plots.remove(run)
        self._refresh_table()
        self.plots.update_visibility()

    def _changed(self, run: Run) -> None:
        self.table.refresh(run)
        self._update_run_buttons()

    def _refresh_table(self) -> None:
        self.table.blockSignals(True)
        self.table.set_runs(self.runs)
        self.table.blockSignals(False)
        self._update_run_buttons()

    def rename_run(self, run: Run, name: str) -> None:
        self.controller.rename(run, name)
        self.plots.rename(run)

    def _toggled(self, run: Run, on: bool) -> None:
        run.shown = on
        self.plots.update_visibility()
        self._update_run_buttons()

    def _selection_changed(self) -> None:
        for r in self.runs:
            r.touch()
        self._update_run_buttons()
        self.plots.update_visibility()

    def _update_run_buttons(self) -> None:
        sel = self.table.selected_runs()
        self.remove_btn.setEnabled(any(not r.running for r in sel))
        self.save_btn.setEnabled(len(sel) == 1 and not sel[0].running)
        self.export_btn.setEnabled(bool(self.plots.drawn()))
        cur = self.current
        ok = cur is not None and not cur.running and cur.checkpoint is not None
        several = self._landscape_runs()
        self.landscape_btn.setEnabled(ok or len(several) >= 2)
        if len(several) >= 2:
            tip = (
                f"Put the {len(several)} selected runs on one landscape plane (same task or "
                "model file), with the barrier on the line between two of their end points"
            )
        elif ok:
            tip = (
                "Hand this run's best checkpoint and trajectory to the Landscape tab (select "
                "2 or more finished runs to put them on one plane)"
            )
        else:
            tip = "Select a finished run that saved a checkpoint (or several, for one plane)"
        self.landscape_btn.setToolTip(tip)
        self.continue_btn.setEnabled(ok and not self.running)

    def _landscape_runs(self) -> list[Run]:
        """The selected runs that can go to the Landscape: finished, with a checkpoint."""
        sel = self.table.selected_runs()
        return [r for r in sel if not r.running and r.checkpoint is not None]

    def remove_runs(self, runs: list[Run]) -> None:
        self.controller.remove(runs)

    def remove_selected(self) -> None:
        self.remove_runs(self.table.selected_runs())

    # --- starting and controlling runs -------------------------------------------------------

    def _refusal(self) -> str:
        """What stops a start (a red box, a conflict, missing data), else ""."""
        problems = self.controls.problems()
        if problems:
            return "Fix the marked values first:<br>" + "<br>".join(
                html.escape(p, quote=False) for p in problems
            )
        conflict = self.controls.conflict_text()
        if conflict:
            return html.escape(conflict, quote=False)
        if self.controls.mnist_missing():
            return (
                f"{data_mod.mnist_status()[1]}. Press Download MNIST, copy the four MNIST .gz "
                f"files into that folder (or set {data_mod.ENV_VAR} to a folder that has them), "
                "or choose the synthetic digits as the source."
            )
        return ""

    def _refused(self) -> bool:
        """Say what stops a start, or return False."""
        text = self._refusal()
        if text:
            self.error.setText(text)
            self._refusal_shown = True
        return bool(text)

    def _edited(self) -> None:
        # a refusal follows the values: it lists only what is still wrong, or goes
        if self._refusal_shown:
            text = self._refusal()
            self.error.setText(text)
            self._refusal_shown = bool(text)

    def _own_model_ready(self, then) -> bool:
        """Whether the chosen model file is checked and unchanged since; if it is not checked
        yet (or was edited), it is checked on the worker thread and ``then`` runs after; a bad
        file's message refuses the start."""
        own = self.controls.own
        state = own.state()
        if state == "ready":
            return True
        self._after_check = None
        if state == "none":
            self.error.setText("Choose your model file first: press Model file...")
        elif state == "bad":
            self.error.setText(
                "Cannot start: " + html.escape(own.message, quote=False) + "<br>Fix the file and "
                "press Reload (or Start again)."
            )
        elif state in ("unchecked", "checking"):
            self._after_check = then
            if state == "unchecked":
                own.start_check()
            self.error.setText("")
            self.status.setText("Importing and checking the model file; training starts next.")
        else:
            raise ValueError(f"Unknown model file state: {state!r}")
        return False

    def _own_busy(self, busy: bool) -> None:
        then, self._after_check = self._after_check, None
        if busy:
            self._after_check = then
            return
        if then is not None:
            then()
        elif self.controls.own.message and self.controls.task_key() == EXPERIMENT:
            self.status.setText("Fix the model file and press Reload.")

    def start(self) -> None:
        if self.running or self._refused():
            return
        if self.controls.task_key() == EXPERIMENT and not self._own_model_ready(self.start):
            return
        try:
            configs = self.controls.configs()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        forms = len(configs) > 1
        self._launch([(c, run_name(c, FORM_LABELS[c.form] if forms else None)) for c in configs])

    def continue_selected(self) -> None:
        run = self.current
        if run is not None:
            self.continue_run(run)

    def continue_run(self, run: Run) -> Run | None:
        """A new run that resumes ``run``'s best checkpoint with the controls' settings and
        trains the controls' number of epochs more."""
        if self.running or run.running:
            return None
        ckpt = run.checkpoint
        if ckpt is None:
            self.error.setText(f"{run.name} has no checkpoint to continue from")
            return None
        if run.task != self.controls.task_key():
            self.error.setText(
                f"{run.name} trained another task: choose it in the controls (Task) to continue "
                "it with settings that fit"
            )
            return None
        if self._refused():
            return None
        model_file = run.record.config.get("model_file")
        own = self.controls.own
        if model_file and model_file == own.path and own.state() != "ready":
            # the controls' file, not checked yet or edited: check it, then continue
            self._own_model_ready(lambda: self.continue_run(run))
            return None
        try:
            # an own model continues with its own file, whichever file the controls show
            config = self.controls.config(model_file=model_file)
        except ValueError as exc:
            self.error.setText(str(exc))
            return None
        saved_with = (run.record.config.get("optimizer") or {}).get("name")
        refusal = optimizer_refusal(str(ckpt), config.optimizer, saved_with=saved_with)
        if refusal:
            self.error.setText(refusal)
            return None
        config, name, resumed = continued(run, ckpt, config)
        started = self._launch([(config, name)])
        if not started:
            return None
        started[0].resumed = resumed
        return started[0]

    def _launch(self, configs) -> list[Run]:
        self.error.setText("")
        self._refusal_shown = False
        leave_a_core()
        started = self.controller.start(configs)
        if started:
            self.status.setText("Starting...")
            self.progress.setValue(0)
            self.progress.setFormat("%p%")
            self.plots.start()
        return started

    def toggle_pause(self) -> None:
        pausing = self.controller.toggle_pause()
        if pausing is not None:
            self.pause_btn.setText("Resume" if pausing else "Pause")
            self._progress(force=True)

    def stop(self) -> None:
        self.controller.stop()

    def shutdown(self) -> None:
        """Stop and join every thread (the window is closing)."""
        self.controller.shutdown()
        self.controls.own.shutdown()
        self.download.shutdown()
        self.plots.timer.stop()

    def _started(self, run: Run, e) -> None:
        text = f"<b>{e.label}</b>: {e.n_params:,} parameters on {e.device}.<br>Data: {e.source}"
        if e.start_epoch > 1:
            text += f"<br>Resumed at epoch {e.start_epoch}"
        if run.folder is None and run.record.config.get("form", "module") == "module":
            text += "<br>(no checkpoint folder)"
        self.status.setText(text)

    def _run_done(self, run: Run) -> None:
        if self.running:
            return
        fin = run.record.finished
        if fin:
            status = run.status
            if status == "completed":
                self.progress.setValue(100)
            self.progress.setFormat(f"{status}: {plural(fin.get('steps', 0), 'step')}")
        else:
            self.progress.setFormat(run.status)

    def _set_running(self, on: bool) -> None:
        self.start_btn.setEnabled(not on)
        self.pause_btn.setEnabled(on)
        self.stop_btn.setEnabled(on)
        self.pause_btn.setText("Pause")
        self.controls.set_running(on)
        self._update_run_buttons()

    # --- drawing ----------------------------------------------------------------------------

    def set_theme(self, dark: bool) -> None:
        self.plots.set_theme(dark)

    def _task_changed(self, key: str) -> None:
        self._after_check = None  # a start waiting for the model file is for that task only
        if not self.runs:
            self.plots.show_task_view(key)

    def _info_drawn(self, runs: list[Run]) -> None:
        for run in runs:
            if run.running:
                run.seconds = time.monotonic() - run.t0
            self.table.refresh(run)
        self._progress()

    def _progress(self, force: bool = False) -> None:
        runs = self.running
        # at most twice a second: QProgressBar repaints at once on every new text
        if not runs or (not force and time.monotonic() - self._progress_at < 0.5):
            return
        self._progress_at = time.monotonic()
        run = runs[-1]
        st = run.record.started
        steps = run.record.steps["step"]
        if not st or not steps:
            return
        first = steps[0] - 1  # a continued run starts where its checkpoint ended
        total = max(1, st["epochs"] * st["steps_per_epoch"] - first)
        done = min(1.0, (steps[-1] - first) / total)
        self.progress.setValue(int(100 * done))
        elapsed = time.monotonic() - run.t0
        eta = elapsed * (1 - done) / done if done > 0 else math.inf
        epoch = run.record.steps["epoch"][-1]
        where = f"epoch {epoch}/{st['epochs']}, step {steps[-1]:,}/{first + total:,}"
        paused = run.status == "paused"  # no ETA: it is not moving
        self.progress.setFormat(
            f"paused at {where}  ({done:.0%})"
            if paused
            else f"{where}  ({done:.0%}, ETA {eta:.0f} s)"
        )

    # --- files ------------------------------------------------------------------------------

    def download_mnist(self) -> None:
        if self.download.running:
            return
        self.controls.download_btn.setEnabled(False)
        self.download.start()

    def _downloaded(self, error: str) -> None:
        self.controls.download_btn.setEnabled(True)
        self.controls.refresh_data_status()
        if error:
            self.error.setText(f"Download failed: {error}")
            self.message.emit("MNIST download failed")
        else:
            self.error.setText("")
            self.message.emit(f"MNIST downloaded into {data_mod.data_dir()}")

    def open_runs(self, path: str) -> list[Run]:
        """Reopen the runs in a JSON file; a bad file gets a message, never an exception."""
        opened = self.controller.open_runs(path)
        if opened:
            self.plots.update_visibility()
        return opened

    def save_run(self, run: Run, path: str) -> bool:
        return self.controller.save_run(run, path)

    def export_csv(self, path: str) -> bool:
        return exports.write(self, lambda: exports.csv(self, path), path)

    def export_json(self, path: str) -> bool:
        return exports.write(self, lambda: exports.json(self, path), path)

    def export_image(self, path: str) -> bool:
        """The plots as PNG (pixels, at 2x) or SVG (vectors)."""
        self.plots.redraw(force=True)
        return exports.write(self, lambda: exports.image(self, path), path)

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
        exports.dialog(self, kind)

    def exports(self) -> list[Export]:
        return [
            Export("Plots as &PNG...", "PNG (*.png)", "training.png", self.export_image),
            Export("Plots as &SVG...", "SVG (*.svg)", "training.svg", self.export_image),
            Export("Curves as &CSV...", "CSV (*.csv)", "runs.csv", self.export_csv),
            Export("Curves as &JSON...", "JSON (*.json)", "runs.json", self.export_json),
        ]

    def send_to_landscape(self) -> None:
        """One run (a Run), or the selected runs (a list of 2 or more) for one plane."""
        several = self._landscape_runs()
        if len(several) >= 2:
            self.landscape_requested.emit(several)
            return
        run = self.current
        if run is None or run.running or run.checkpoint is None:
            return
        self.landscape_requested.emit(run)
