"""The Landscape workspace's own-model part: open an experiment file (the user's own Python
code), its weights, Reload after an edit; the file is imported and checked on a worker thread,
and its path remembered in the workspace's QSettings."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6 import QtWidgets

from app.landscape import source as own
from app.workers import Job, describe
from core.train.experiment import IMPORT_TIMEOUT


class OwnModelPanel:
    """Mixed into LandscapeWorkspace: needs ``settings``, ``model_file``, ``checkpoint``,
    ``model_check``, ``loader``, ``_loaders``, ``job``, ``set_source``, ``_show_source``,
    ``_set_running`` and the panel's ``status`` and ``error`` labels."""

    def remembered_model_file(self) -> str | None:
        """The model file opened last time (the path only: nothing is run until asked)."""
        value = self.settings.value(own.SETTINGS_KEY)
        return str(value) if value else None

    def open_model_dialog(self) -> None:
        start = self.model_file or self.remembered_model_file() or ""
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self,
            "Open a model file (your own Python code: LossLab runs it)",
            start,
            "Experiment files (*.py)",
        )
        if path:
            self.open_model_file(path)

    def open_weights_dialog(self) -> None:
        start = str(Path(self.checkpoint or self.model_file).parent) if self.model_file else ""
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self,
            "Weights for the model file",
            start,
            "Checkpoints (*.pt *.pth *.ckpt *.bin);;All files (*)",
        )
        if path:
            self.set_weights(path)

    def open_model_file(self, path: str, weights: str | None = None) -> bool:
        """The user's experiment file (and optionally its weights) as the source; it is
        imported and checked on a worker thread (``loader``), its message shown below when it
        cannot be used. False when a landscape is being computed."""
        if self.job is not None:
            self.error.setText("A landscape is being computed: cancel it first")
            return False
        path = str(path)
        self.set_source(None, weights, path)
        self.settings.setValue(own.SETTINGS_KEY, path)
        self.model_file_changed.emit(path)
        self._check_model()
        return True

    def set_weights(self, path: str | None) -> bool:
        """The model file's weights (any checkpoint format; None: as model() builds them)."""
        if not self.model_file:
            self.error.setText("Open a model file first: the weights are for its model")
            return False
        self.set_source(None, str(path) if path else None, self.model_file)
        self._check_model()
        return True

    def reload_model(self) -> bool:
        """Import the model file again (after an edit), or open the one used last time."""
        if self.model_file:
            self.set_source(None, self.checkpoint, self.model_file)
            self.model_check = None
            self._check_model()
            return True
        last = self.remembered_model_file()
        if last:
            return self.open_model_file(last)
        self.error.setText("No model file yet: open one with Model file...")
        return False

    def _check_model(self) -> None:
        path, weights = self.model_file, self.checkpoint

        def work():
            yield own.check_model(path, weights)

        job = self.loader = Job(work, self)
        self._loaders.add(job)
        job.item.connect(lambda c, j=job: j is self.loader and self._model_checked(c))
        job.failed.connect(
            lambda exc, j=job: j is self.loader and self._model_failed(describe(exc))
        )
        job.finished.connect(lambda ok, j=job: self._loader_done(j))
        job.thread.finished.connect(lambda j=job: self._loaders.discard(j))
        self.error.setText("")
        self.status.setText(
            f"Importing {html.escape(Path(path).name)} and evaluating its loss once..."
        )
        self._show_source()
        self._set_running(self.job is not None)
        job.start()

    def _model_checked(self, check: own.ModelCheck) -> None:
        self.model_check = check
        self.status.setText(f"{html.escape(Path(check.path).name)} is ready: press Compute")
        self.message.emit(f"Landscape: {Path(check.path).name} is ready; press Compute")

    def _model_failed(self, msg: str) -> None:
        self.model_check = None
        self.error.setText(f"Cannot use the model file: {msg}")
        self.status.setText("Fix the file and press Reload.")

    def _loader_done(self, job: Job) -> None:
        if job is not self.loader:
            return
        self.loader = None
        self._show_source()
        self._set_running(self.job is not None)


LOADER_WAIT_MS = int(IMPORT_TIMEOUT * 1000) + 5_000  # an import that hangs gives up by then

__all__ = ["LOADER_WAIT_MS", "OwnModelPanel"]
