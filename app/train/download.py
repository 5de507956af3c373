"""Fetching MNIST from the Train tab: a worker thread, a progress line, cancel on close."""

from __future__ import annotations

import threading

from PySide6 import QtCore

from app.workers import Job, describe
from core.train import data as data_mod


class MnistDownload(QtCore.QObject):
    """Downloads the four MNIST files (md5-verified) into the data folder.

    ``progress(text)`` every 100 ms while it runs; ``done(error)`` at the end (``""`` when the
    files are there).
    """

    progress = QtCore.Signal(str)
    done = QtCore.Signal(str)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self._cancel = threading.Event()
        self._state: dict = {}
        self._bar = QtCore.QTimer(self)
        self._bar.setInterval(100)
        self._bar.timeout.connect(self._tick)

    @property
    def running(self) -> bool:
        return self.job is not None

    def start(self) -> None:
        if self.job is not None:
            return
        folder = data_mod.data_dir()
        self._cancel = cancel = threading.Event()
        self._state = state = {"progress": ("", 0, 0), "folder": folder}

        def progress(name: str, done: int, total: int) -> None:
            if cancel.is_set():
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

        self.job = Job(fetch, self)
        self.job.failed.connect(lambda exc: state.__setitem__("error", describe(exc)))
        self.job.finished.connect(self._finished)
        self._bar.start()
        self.progress.emit(f"Downloading MNIST into {folder}...")
        self.job.start()

    def _tick(self) -> None:
        name, done, total = self._state["progress"]
        if name:
            self.progress.emit(
                f"Downloading {name}: {done / 1e6:.1f}"
                + (f" of {total / 1e6:.1f} MB" if total else " MB")
            )

    def _finished(self, ok: bool) -> None:
        self._bar.stop()
        self.job = None
        self.done.emit(self._state.get("error", ""))

    def shutdown(self) -> None:
        if self.job is not None:
            self._cancel.set()
            self.job.stop()
            self.job = None
        self._bar.stop()


__all__ = ["MnistDownload"]
