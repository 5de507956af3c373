"""The Train controls' own-model part: the user's experiment file (their own Python code), picked
with a file chooser, imported and checked on a worker thread, reloaded after an edit, and its
path remembered in QSettings (restored without running anything until Reload or Start)."""

from __future__ import annotations

import hashlib
import html
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from app.widgets import error_label
from app.workers import Job, describe
from core.train.experiment import IMPORT_TIMEOUT, Defaults, Summary, load_experiment

SETTINGS_KEY = "train/model_file"  # the last model file picked in the Train tab (QSettings)
OWN_CODE_NOTE = (
    "The file is your own Python code: LossLab runs it as `python file.py` would "
    "(open only files you trust)."
)
LOADER_WAIT_MS = int(IMPORT_TIMEOUT * 1000) + 5_000  # an import that hangs gives up by then


def file_digest(path: str) -> str | None:
    """The file's sha256 (None when it cannot be read): an edit since the check is seen."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def check(path: str) -> tuple[Summary, Defaults, str]:
    """Import ``path``, check it (build the model, read the batches, evaluate the loss once)
    and read its suggested defaults. Slow: on a worker thread. ExperimentError otherwise."""
    exp = load_experiment(path)
    summary = exp.check()
    return summary, exp.defaults(), exp.digest


def summary_html(s: Summary, path: str) -> str:
    """The checked file as the Model box shows it."""
    n = s.batches
    samples = f", {s.samples:,} samples" if s.samples else ""
    loss = "its loss(model, batch)" if s.own_loss else "cross-entropy (the file has no loss())"
    train = "train_batches() per epoch" if s.own_train_batches else "the same batches"
    return (
        f"<b>{html.escape(s.model)}</b> from {html.escape(Path(path).name)}: "
        f"{s.parameters:,} parameters<br>"
        f"{n:,} batch{'es' if n != 1 else ''}{samples}; training on {train}<br>"
        f"loss at the initial weights: <b>{s.loss:.5g}</b><br>"
        f"<i>The loss is the mean of {loss} over the file's batches.</i>"
    )


class OwnModelPanel(QtWidgets.QGroupBox):
    """Model file..., Reload, the note that the file is the user's code, and its message.

    States: no file; a file not checked yet (restored, or edited since); checking; bad (its
    message); ready (its Summary). ``checked`` carries (summary, defaults, picked): picked is
    True for the first good check of a newly picked file, whose suggested defaults apply."""

    checked = QtCore.Signal(object, object, bool)  # Summary, Defaults, picked
    failed = QtCore.Signal(str)
    busy = QtCore.Signal(bool)  # a check started (True) or ended (False)

    def __init__(self, settings: QtCore.QSettings | None = None, parent=None) -> None:
        super().__init__("Model file", parent)
        self.settings = settings if settings is not None else QtCore.QSettings()
        self.path: str | None = None
        self.summary: Summary | None = None
        self.defaults: Defaults | None = None
        self.message = ""  # the last check's error ("" when none)
        self._digest: str | None = None  # the file's sha256 at the last check
        self._picked = False  # the next good check is the first of a newly picked file
        self.loader: Job | None = None
        self._loaders: set[Job] = set()
        self._build()
        last = self.settings.value(SETTINGS_KEY)
        if last:
            self.set_path(str(last), check=False, picked=True)  # the path only: nothing runs

    def _build(self) -> None:
        self.file_label = QtWidgets.QLabel("No model file yet: press Model file...")
        self.file_label.setObjectName("model_file_label")
        self.file_label.setWordWrap(True)
        self.file_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.choose_btn = QtWidgets.QPushButton("Model file...")
        self.choose_btn.setObjectName("train_open_model")
        self.choose_btn.setToolTip(
            OWN_CODE_NOTE + " Choose an experiment file (.py) defining model() and batches(), "
            "and optionally loss(model, batch), train_batches() and defaults; see "
            "the examples (losslab --examples prints their folder)"
        )
        self.choose_btn.clicked.connect(self.choose_dialog)
        self.reload_btn = QtWidgets.QPushButton("Reload")
        self.reload_btn.setObjectName("train_reload_model")
        self.reload_btn.setToolTip(
            OWN_CODE_NOTE + " Import the file again (after you edit it) and check it"
        )
        self.reload_btn.clicked.connect(self.reload)
        self.note = QtWidgets.QLabel(
            "Your own Python code: LossLab runs it as <code>python file.py</code> would, so "
            "open only files you trust."
        )
        self.note.setObjectName("train_model_note")
        self.note.setWordWrap(True)
        self.note.setToolTip(OWN_CODE_NOTE)
        self.error = error_label("model_file_error")
        self.error.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.choose_btn)
        row.addWidget(self.reload_btn)
        row.addStretch(1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.file_label)
        lay.addLayout(row)
        lay.addWidget(self.note)
        lay.addWidget(self.error)
        self._show()

    # --- the file ---------------------------------------------------------------------------

    def choose_dialog(self) -> bool:
        start = self.path or ""
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self,
            "Choose a model file (your own Python code: LossLab runs it)",
            start,
            "Experiment files (*.py)",
        )
        if path:
            self.set_path(path)
        return bool(path)

    def set_path(self, path: str, check: bool = True, picked: bool = True) -> None:
        """The user's experiment file; remembered, and checked on a worker thread."""
        self.path = str(Path(path).expanduser().resolve())
        self.summary = self.defaults = self._digest = None
        self.message = ""
        self._picked = picked
        self.settings.setValue(SETTINGS_KEY, self.path)
        self._show()
        if check:
            self.start_check()

    def reload(self) -> bool:
        """Import the file again (after an edit); False when there is none."""
        if not self.path:
            self.error.setText("No model file yet: choose one with Model file...")
            return False
        self.start_check()
        return True

    def state(self) -> str:
        """none, unchecked (or edited since its check), checking, bad, or ready."""
        if not self.path:
            return "none"
        if self.loader is not None:
            return "checking"
        if self._digest is None or file_digest(self.path) != self._digest:
            return "unchecked"
        if self.summary is None:
            return "bad"
        return "ready"

    @property
    def checking(self) -> bool:
        return self.loader is not None

    def start_check(self) -> None:
        path = self.path

        def work():
            digest = file_digest(path)  # before the import: an edit during it is seen later
            try:
                summary, defaults, _ = check(path)
            except ValueError as exc:
                yield (None, None, digest, describe(exc))
                return
            yield (summary, defaults, digest, "")

        job = self.loader = Job(work, self)
        self._loaders.add(job)
        job.item.connect(lambda out, j=job: j is self.loader and self._checked(*out))
        job.failed.connect(lambda exc, j=job: j is self.loader and self._failed(describe(exc)))
        job.finished.connect(lambda ok, j=job: self._loader_done(j))
        job.thread.finished.connect(lambda j=job: self._loaders.discard(j))
        self.error.setText("")
        self._show()
        self.busy.emit(True)
        job.start()

    def _checked(self, summary, defaults, digest, message) -> None:
        self._digest = digest
        if message:
            self._failed(message)
            return
        self.summary, self.defaults, self.message = summary, defaults, ""
        picked, self._picked = self._picked, False
        self.checked.emit(summary, defaults, picked)

    def _failed(self, message: str) -> None:
        self.summary, self.defaults = None, None
        self.message = message
        self.error.setText(html.escape(message, quote=False))
        self.failed.emit(message)

    def _loader_done(self, job: Job) -> None:
        if job is not self.loader:
            return
        self.loader = None
        self._show()
        self.busy.emit(False)

    def _show(self) -> None:
        if not self.path:
            self.file_label.setText("No model file yet: press Model file...")
            self.reload_btn.setEnabled(False)
            return
        name = html.escape(Path(self.path).name)
        where = html.escape(Path(self.path).parent.name or "/")  # the whole path: the tooltip
        state = {
            "checking": "importing and checking it...",
            "unchecked": "not imported yet: press Reload or Start",
            "bad": "cannot be used (below)",
            "ready": "ready",
        }[self.state()]
        self.file_label.setText(f"<b>{name}</b> in {where}/<br><i>{state}</i>")
        self.file_label.setToolTip(self.path)
        self.reload_btn.setEnabled(self.loader is None)

    def set_running(self, on: bool) -> None:
        self.choose_btn.setEnabled(not on)
        self.reload_btn.setEnabled(not on and bool(self.path) and self.loader is None)

    def shutdown(self) -> None:
        """Join the checks still running (the window is closing)."""
        for job in list(self._loaders):
            job.stop(LOADER_WAIT_MS)


__all__ = [
    "LOADER_WAIT_MS",
    "OWN_CODE_NOTE",
    "SETTINGS_KEY",
    "OwnModelPanel",
    "check",
    "file_digest",
    "summary_html",
]
