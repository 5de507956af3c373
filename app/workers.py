"""Long work off the GUI thread: a core generator driven by a worker on a QThread.

Lifecycle as superqt does it: the worker is moved to a new QThread; ``started`` runs it;
``finished`` quits the thread; both are deleted later. ``stop()`` asks the generator to end
between two of its items, then quits and waits, so closing never leaves a thread behind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from PySide6 import QtCore


def describe(exc: BaseException) -> str:
    """An exception as a one-line message: domain errors (ValueError and the named errors
    derived from it, OSError) speak for themselves; anything else names its type."""
    if isinstance(exc, ValueError | OSError) and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class GeneratorWorker(QtCore.QObject):
    """Iterates ``make()`` on its thread; every item crosses as ``item``; an error crosses as
    ``failed(exception)`` (``describe`` turns it into a message)."""

    item = QtCore.Signal(object)
    failed = QtCore.Signal(object)
    finished = QtCore.Signal(bool)  # True when it ran to the end, False when cancelled

    def __init__(self, make: Callable[[], Iterator]) -> None:
        super().__init__()
        self._make = make
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @QtCore.Slot()
    def run(self) -> None:
        completed = False
        try:
            for value in self._make():
                if self._cancel.is_set():
                    break
                self.item.emit(value)
            else:
                completed = True
        except Exception as exc:  # the thread boundary: every error becomes a message
            self.failed.emit(exc)
        finally:
            # what the work closed over (a Train run and its trajectory) is not kept with
            # the worker's Python object after the work is done
            self._make = None
        self.finished.emit(completed)


class Job(QtCore.QObject):
    """One worker on one thread, with start, stop and a clean join."""

    item = QtCore.Signal(object)
    failed = QtCore.Signal(object)  # the exception
    finished = QtCore.Signal(bool)

    def __init__(self, make: Callable[[], Iterator], parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.thread = QtCore.QThread()
        self.worker = GeneratorWorker(make)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        self.worker.item.connect(self.item)
        self.worker.failed.connect(self.failed)
        self.worker.finished.connect(self.finished)
        self.worker.finished.connect(self.thread.quit)
        self.thread.finished.connect(self.worker.deleteLater)

    def start(self) -> None:
        self.thread.start()

    def running(self) -> bool:
        return self.thread.isRunning()

    def stop(self, wait_ms: int = 10_000) -> bool:
        """Cancel, quit and join; True when the thread is gone."""
        self.worker.cancel()
        self.thread.quit()
        return self.thread.wait(wait_ms)
