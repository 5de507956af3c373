"""The Train workspace's model: its runs, their jobs, and what happens to them.

Starting, pausing, stopping and continuing runs; each run's training generator
(core.train.training) on its own QThread (app.workers.Job); events into the run's record;
autosave beside the checkpoint; opening and saving run files. The views follow through signals
and each run's ``dirty`` panels; nothing here touches a widget.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from PySide6 import QtCore

from app.colors import PALETTE
from app.openmp import passive_waiting, use_threads
from app.train import sharpness
from app.train.runs import Run, divergence_text, finished_status, plural, unique_name
from app.workers import Job, describe
from core.optimizers import get_optimizer
from core.train.runs import RunFileError, RunRecord, load_runs
from core.train.training import (
    Finished,
    Sharpness,
    Started,
    Step,
    TrainConfig,
    TrainControl,
    train,
)

BATCH_S = 0.05  # steps cross to the GUI thread in bundles at most this often (see batched)


def runs_root() -> Path:
    """Where runs keep their checkpoints and records: ``$LOSSLAB_RUNS_DIR`` or the user's
    data folder."""
    from core.train.runs import runs_dir

    return runs_dir()


def batched(events: Iterator, control: TrainControl, every: float = BATCH_S) -> Iterator[list]:
    """``events`` in lists: Steps bundled for up to ``every`` seconds, anything else at once.

    One cross-thread signal per step (LeNet: ~130/s) woke the GUI thread and handed the GIL
    back and forth for each; a bundle per 50 ms keeps the curves live at a fraction of that.
    A pause or stop flushes at once, so a paused run shows every step it took.
    """
    pending: list = []
    last = time.monotonic()
    for e in events:
        pending.append(e)
        now = time.monotonic()
        if not isinstance(e, Step) or now - last >= every or control.paused or control.stopped:
            yield pending
            pending, last = [], now
    if pending:
        yield pending


def leave_a_core() -> None:
    """Set torch's thread count for training behind the window.

    Spinning OpenMP threads (libgomp's default) and the window's thread fight for the cores:
    each parallel region waits for the worker the painting delayed, and the spinning eats
    the core the other needs. On 2 cores LeNet ran 1.8x slower behind a live window, and
    6x slower with any other load (bench/train_gui.py). So: all cores when torch's threads
    wait passively, else all cores but one, which the window's thread paints on. With
    OMP_NUM_THREADS set, the count torch took from it stands.
    """
    cores = os.cpu_count() or 1
    use_threads(cores if passive_waiting() else max(1, cores - 1))


def continued(run: Run, checkpoint: Path, config: TrainConfig) -> tuple[TrainConfig, str, str]:
    """``config`` turned into the continuation of ``run`` from ``checkpoint``: it resumes there
    and trains ``config.epochs`` more. Returns the config, the new run's name, and one line
    saying from where and with which settings."""
    done = next(
        (
            int(r["epoch"])
            for r in reversed(run.record.checkpoints)
            if Path(r["path"]) == checkpoint
        ),
        0,
    )
    more = config.epochs
    config = dataclasses.replace(config, resume=str(checkpoint), epochs=done + more)
    # what it trains with is said by its name and, once it starts, by what core reports in
    # use (details.in_use): said here too, the details line ran to a third line, cut off
    text = f"continued from {run.name}'s epoch {done} checkpoint for {plural(more, 'epoch')}"
    # named after what it runs with: "SGD 0.1, continued from SGD 0.05"
    return config, f"{run_name(config)}, continued from {run.name}", text


def run_name(c: TrainConfig, form_label: str | None = None) -> str:
    if form_label:
        return f"{form_label} form"
    opt = get_optimizer(c.optimizer.name).label
    lr = c.optimizer.resolved().get("lr")
    return f"{opt} {lr:g}" if lr is not None else opt


class TrainController(QtCore.QObject):
    """Every run of the session, live or reopened, and the jobs that train them."""

    added = QtCore.Signal(object)  # a Run joined the list
    removed = QtCore.Signal(list)  # these Runs left it
    changed = QtCore.Signal(object)  # a Run's status, name or file changed
    running_changed = QtCore.Signal(bool)  # the first run started / the last one ended
    run_done = QtCore.Signal(object)  # a Run's job ended (completed, stopped, failed)
    started = QtCore.Signal(object, object)  # (Run, Started): what is being trained
    message = QtCore.Signal(str)  # the status bar
    error = QtCore.Signal(str)  # the error label ("" clears it)
    file_opened = QtCore.Signal(str, str)  # (kind, path): a runs file opened or saved

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.runs: list[Run] = []
        self.forms_group: list[Run] = []  # the sine fit's three forms, started together
        self.save_jobs: list[Job] = []
        self._colour_index = 0
        self.train = train  # the generator; tests replace it

    @property
    def running(self) -> list[Run]:
        return [r for r in self.runs if r.running]

    def _next_colour(self) -> str:
        used = {r.colour for r in self.runs}
        for i in range(len(PALETTE)):
            colour = PALETTE[(self._colour_index + i) % len(PALETTE)]
            if colour not in used:
                self._colour_index += i + 1
                return colour
        self._colour_index += 1
        return PALETTE[self._colour_index % len(PALETTE)]

    def add_run(self, record: RunRecord, status: str) -> Run:
        record.name = unique_name(record.name, {r.name for r in self.runs})
        run = Run(record, self._next_colour(), status)
        self.runs.append(run)
        self.added.emit(run)
        return run

    def rename(self, run: Run, name: str) -> None:
        run.record.name = unique_name(name, {r.name for r in self.runs if r is not run})
        self.changed.emit(run)
        if run.file is not None or run.folder is not None:
            self.autosave(run)

    def remove(self, runs: list[Run]) -> None:
        gone = [r for r in runs if r in self.runs and not r.running]
        for run in gone:
            self.runs.remove(run)
            if run in self.forms_group:
                self.forms_group.remove(run)
        if gone:
            self.removed.emit(gone)

    # --- starting and controlling runs -------------------------------------------------------

    def start(self, configs: list[tuple[TrainConfig, str]]) -> list[Run]:
        """Launch ``(config, name)`` runs together (the three forms are one start)."""
        if self.running:
            return []
        runs = [self._launch(c, name) for c, name in configs]
        if len(runs) > 1:
            self.forms_group = runs
        self.running_changed.emit(True)
        return runs

    def _launch(self, config: TrainConfig, name: str) -> Run:
        run = self.add_run(RunRecord.for_config(config, name), "running")
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
        make = self.train
        job = Job(lambda: batched(make(config, control), control), self)
        run.job, run.control, run.t0 = job, control, time.monotonic()
        job.item.connect(lambda events, r=run: self._events(r, events))
        job.failed.connect(lambda exc, r=run: self._failed(r, describe(exc)))
        job.finished.connect(lambda ok, r=run: self._job_done(r))
        job.start()
        return run

    def toggle_pause(self) -> bool | None:
        """Pause every running run, or resume them; True when now paused."""
        runs = self.running
        if not runs:
            return None
        pausing = not runs[0].control.paused
        now = time.monotonic()
        for r in runs:
            if pausing:
                r.control.pause()
                r.status = "paused"
                r.paused_at = now
            else:
                r.control.resume()
                r.status = "running"
                r.t0 += now - r.paused_at  # the clock (ETA, Time) counts training, not pauses
                r.paused_at = 0.0
            self.changed.emit(r)
        self.message.emit("Training paused" if pausing else "Training resumed")
        return pausing

    def stop(self) -> None:
        for r in self.running:
            r.control.stop()

    def shutdown(self) -> None:
        """Stop and join every training thread and let saves finish (the window is closing)."""
        for r in self.running:
            r.control.stop()
            r.job.stop()
            r.job = None
        for job in list(self.save_jobs):
            job.stop(30_000)  # a save is not interrupted: let it finish

    def _events(self, run: Run, events: list) -> None:
        if run not in self.runs:
            return
        for e in events:
            if isinstance(e, Sharpness):
                # the record gets the series at the end (Finished.final); until then it is
                # kept here, and only the plot that shows it redraws
                sharpness.add_event(run, e)
                run.dirty |= {"lr", "info"}
                if e.message:
                    self.message.emit(f"{run.name}: {e.message}")
                continue
            run.add(e)
            if isinstance(e, Started):
                self.started.emit(run, e)
            elif isinstance(e, Finished):
                self._finished(run, e)

    def _finished(self, run: Run, e: Finished) -> None:
        status = finished_status(e)
        text = f"{run.name}: {status} after {plural(e.epochs, 'epoch')}, {plural(e.steps, 'step')}"
        if e.message:
            text += f" ({e.message})"
        self.message.emit(text)
        if status == "diverged":
            self.error.emit(f"{run.name} diverged: {divergence_text(run.record)}")

    def _failed(self, run: Run, msg: str) -> None:
        run.status, run.error = "failed", msg
        self.error.emit(f"Training failed ({run.name}): {msg}")
        self.message.emit("Training failed")
        self.changed.emit(run)

    def _job_done(self, run: Run) -> None:
        if run.job is None:
            return
        # the job stays a child of this controller: its callbacks, which hold the run (and
        # its trajectory, 30-50 MB for LeNet), go now, or a removed run is never freed
        for signal in (run.job.item, run.job.failed, run.job.finished):
            signal.disconnect()
        run.job = run.control = None
        now = time.monotonic()
        if run.paused_at:  # stopped while paused: the pause is no training time either
            run.t0 += now - run.paused_at
            run.paused_at = 0.0
        run.seconds = now - run.t0
        if run.status in ("running", "paused"):
            run.status = "stopped"
        run.touch()
        self.autosave(run)
        self.changed.emit(run)
        self.run_done.emit(run)
        if not self.running:
            self.running_changed.emit(False)

    def autosave(self, run: Run) -> None:
        """Keep a finished run's record beside its checkpoint (what Landscape reads).

        On a worker thread: LeNet's trajectory is ~25 MB, and the GUI must not wait for a disk.
        """
        if run.folder is None or run.running:
            return
        path = run.folder / "run.json"

        def save():
            yield run.record.save(path)

        job = Job(save, self)
        self.save_jobs.append(job)

        def done(ok: bool) -> None:
            if ok:
                run.file = path
                self.changed.emit(run)
            if job in self.save_jobs:
                self.save_jobs.remove(job)
            job.failed.disconnect()  # the job stays our child; this closure and the run go
            job.finished.disconnect()

        job.failed.connect(
            lambda exc: self.message.emit(f"Could not save the run record: {describe(exc)}")
        )
        job.finished.connect(done)
        job.start()

    # --- files ----------------------------------------------------------------------------

    def open_runs(self, path: str) -> list[Run]:
        """Reopen the runs in a JSON file; a bad file gets a message, never an exception."""
        try:
            records = load_runs(path)
        except RunFileError as exc:
            self.error.emit(str(exc))
            self.message.emit("Could not open the run file")
            return []
        out = []
        for rec in records:
            run = self.add_run(rec, "opened")
            run.file = Path(path)
            if rec.finished:
                run.status = f"{finished_status(rec.finished)} (file)"
            run.touch()
            self.changed.emit(run)
            out.append(run)
        self.error.emit("")
        self.message.emit(f"Opened {plural(len(out), 'run')} from {path}")
        self.file_opened.emit("run", str(path))
        return out

    def save_run(self, run: Run, path: str) -> bool:
        try:
            run.file = run.record.save(path)
        except OSError as exc:
            self.error.emit(f"Could not save {run.name}: {exc}")
            self.message.emit("Save failed")
            return False
        self.message.emit(f"Saved {run.name} to {path}")
        self.changed.emit(run)
        self.file_opened.emit("run", str(path))
        return True


__all__ = [
    "TrainController",
    "batched",
    "continued",
    "leave_a_core",
    "run_name",
    "runs_root",
]
