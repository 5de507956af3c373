"""The run list: every training run of the session, live or reopened from a file."""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.widgets import swatch_item
from core.optimizers import get_optimizer
from core.train.runs import RunRecord
from core.train.smoothing import DebiasedEMA
from core.train.tasks import TASKS
from core.train.training import Epoch, Finished, Started, Step

# The workspace's views in groups redrawn separately, and which events change which.
PANELS = ("loss", "val", "lr", "acc", "task", "info")
_REDRAWS = {Step: {"loss", "lr", "info"}, Epoch: {"val", "acc", "task", "info"}}
STATUS_COLOURS = {"failed": "#e6194b", "diverged": "#e6194b", "stopped": "#f58231"}


@dataclass(eq=False)
class Run:
    """One run: its record (what is saved), its colour, and its live state."""

    record: RunRecord
    colour: str
    status: str = "waiting"  # running, paused, completed, stopped, diverged, failed, opened
    shown: bool = True  # drawn in the comparison plots
    job: object | None = None  # app.workers.Job while training
    control: object | None = None  # core.train.training.TrainControl while training
    folder: Path | None = None  # where its checkpoint and record are kept
    file: Path | None = None  # the record's JSON, once saved
    error: str = ""
    resumed: str = ""  # for a continued run: from where, with which settings
    hyper_in_use: dict = field(default_factory=dict)  # the optimizer's, as its first step
    t0: float = field(default_factory=time.monotonic)
    paused_at: float = 0.0  # time.monotonic() when paused; 0 while not paused
    seconds: float = 0.0
    preview: dict = field(default_factory=dict)
    samples: np.ndarray | None = None  # latest predictions for preview["images"]
    confusion: np.ndarray | None = None
    dirty: set = field(default_factory=lambda: set(PANELS))  # panels that must redraw it
    _ema: DebiasedEMA | None = None
    _smoothed: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def running(self) -> bool:
        return self.job is not None

    @property
    def task(self) -> str:
        return str(self.record.config.get("task", ""))

    @property
    def checkpoint(self) -> Path | None:
        """The best checkpoint, if one was written and is still there."""
        from core.landscape.multirun import find_checkpoint

        for row in reversed(self.record.checkpoints):
            path = find_checkpoint(row["path"], self.file)  # relative: also next to the JSON
            if path is not None:
                return path
        return None

    def add(self, event) -> None:
        self.record.add(event)
        if isinstance(event, Started):
            self.preview = dict(event.preview)
            self.hyper_in_use = dict(getattr(event, "hyper", None) or {})
        elif isinstance(event, Epoch):
            if "samples" in event.details:
                self.samples = np.asarray(event.details["samples"])
            if "confusion" in event.details:
                self.confusion = np.asarray(event.details["confusion"])
        elif isinstance(event, Finished):
            self.status = finished_status(event)
            d = getattr(event, "divergence", None)
            if d is not None and "divergence" not in self.record.finished:
                self.record.finished["divergence"] = dataclasses.asdict(d)
        self.dirty |= _REDRAWS.get(type(event), set(PANELS))

    def touch(self) -> None:
        """Redraw everything of this run."""
        self.dirty = set(PANELS)

    # --- curves as arrays ----------------------------------------------------------------

    def steps(self) -> np.ndarray:
        return np.asarray(self.record.steps["step"], dtype=np.float64)

    def losses(self) -> np.ndarray:
        return np.asarray(self.record.steps["loss"], dtype=np.float64)

    def lrs(self) -> np.ndarray:
        return np.asarray(self.record.steps["lr"], dtype=np.float64)

    def smoothed(self, weight: float) -> np.ndarray:
        """The debiased EMA of the step losses, extended incrementally as steps arrive."""
        if self._ema is None or self._ema.weight != weight:
            self._ema, self._smoothed = DebiasedEMA(weight), []
        loss = self.record.steps["loss"]
        done = sum(len(a) for a in self._smoothed)
        if done < len(loss):
            self._smoothed.append(self._ema.extend(loss[done:]))
            if len(self._smoothed) > 1:
                self._smoothed = [np.concatenate(self._smoothed)]
        return self._smoothed[0] if self._smoothed else np.empty(0)

    def epoch_curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        rows = [r for r in self.record.epochs if r.get(key) is not None]
        x = np.array([r["epoch"] for r in rows], dtype=np.float64)
        y = np.array([r[key] for r in rows], dtype=np.float64)
        return x, y

    # --- words ---------------------------------------------------------------------------

    def task_label(self) -> str:
        """What the run trained, data included: a synthetic-digits LeNet run is not "on
        MNIST" (files written before core named the data say so only in the config)."""
        started = self.record.started or {}
        task = TASKS.get(self.task)
        own = self.record.config.get("model_file")
        fallback = Path(own).name if own else (task.label if task else self.task)
        label = started.get("label") or fallback
        dataset = started.get("dataset") or self.record.config.get("dataset")
        if dataset == "synthetic" and "synthetic" not in label.lower():
            label = label.replace(" on MNIST", "") + " on synthetic digits"
        return label

    def config_text(self) -> str:
        c = self.record.config
        opt = c.get("optimizer") or {}
        hyper = dict(opt.get("hyper") or {})
        try:
            info = get_optimizer(opt.get("name", ""))
        except ValueError:
            label = str(opt.get("name", "?"))
        else:
            label = info.label
            # the lr in force: a config that left it at its default does not store it
            lr_param = next((p for p in info.params if p.name == "lr"), None)
            if "lr" not in hyper and lr_param is not None and lr_param.default is not None:
                hyper["lr"] = lr_param.default
        parts = [label]
        if isinstance(hyper.get("lr"), int | float):
            parts.append(f"lr {hyper['lr']:g}")
        if c.get("form", "module") != "module":
            parts.append(f"{c['form']} form")
        bs = c.get("batch_size")
        if c.get("model_file"):  # an own model: its file gives the batches (and the loss)
            parts.append("the file's batches")
        else:
            parts.append("full batch" if bs == 0 else f"batch {bs}")
        parts.append(f"{c.get('epochs')} ep")
        if c.get("resume"):
            parts.append("continued from a checkpoint")
        sched = c.get("scheduler")
        if sched:
            parts.append(f"{sched.get('name')} schedule")
        if c.get("clip_norm"):
            parts.append(f"clip {c['clip_norm']:g}")
        loss = (c.get("loss") or {}).get("name")
        if loss:
            parts.append(loss)
        return ", ".join(parts)

    def final(self, key: str) -> float | None:
        """The final value of a per-epoch metric, else the last epoch's."""
        v = (self.record.finished.get("final") or {}).get(key)
        if v is None and self.record.epochs:
            v = self.record.epochs[-1].get(key)
        return None if v is None or not math.isfinite(v) else float(v)


def plural(n: int, word: str) -> str:
    """``1 epoch``, ``2 epochs``, ``1,875 steps``."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def finished_status(finished) -> str:
    """How a run ended, from a Finished event or a run record's ``finished`` dict:
    completed, stopped or diverged (core's ``status``; ``reason`` in older files)."""
    get = finished.get if isinstance(finished, dict) else lambda k: getattr(finished, k, None)
    return str(get("status") or get("reason") or "opened")


def divergence(record: RunRecord) -> dict | None:
    """Where and why a run diverged: ``{step, epoch, reason, advice}``, else None.

    From the record's ``finished`` (core.train.training.Divergence as a dict) or, for a file
    written before that existed, its message."""
    fin = record.finished or {}
    d = fin.get("divergence") or getattr(record, "divergence", None)
    if d is not None and not isinstance(d, dict):
        d = dataclasses.asdict(d) if dataclasses.is_dataclass(d) else None
    if d:
        return d
    if finished_status(fin) == "diverged":
        return {"reason": fin.get("message") or "the loss stopped being finite"}
    return None


def divergence_text(record: RunRecord) -> str:
    """One line: at which step, why, what to try."""
    d = divergence(record)
    if d is None:
        return ""
    reason = str(d.get("reason") or "").strip()
    step, epoch = d.get("step"), d.get("epoch")
    text = reason
    if step is not None and f"step {step}" not in reason:  # core's reason names its step
        text = f"at step {step:,}: {reason}"
    if epoch is not None:
        text += f" (epoch {epoch})"
    if d.get("advice"):
        text += f". Try: {d['advice']}"
    return text


def runs_csv(runs: list[Run], weight: float) -> bytes:
    """One table for every run: a row per step, the epoch's validation figures on the step that
    ended it. Columns: run, step, epoch, loss, smoothed_loss, lr, grad_norm, val_loss,
    val_accuracy."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(
        [
            "run",
            "step",
            "epoch",
            "loss",
            "smoothed_loss",
            "lr",
            "grad_norm",
            "val_loss",
            "val_accuracy",
        ]
    )

    def num(v) -> str:
        return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.9g}"

    for run in runs:
        s = run.record.steps
        ends = {r["step"]: r for r in run.record.epochs}
        sm = run.smoothed(weight)
        for i, step in enumerate(s["step"]):
            e = ends.get(step, {})
            w.writerow(
                [
                    run.name,
                    step,
                    s["epoch"][i],
                    num(s["loss"][i]),
                    num(float(sm[i])),
                    num(s["lr"][i]),
                    num(s["grad_norm"][i]),
                    num(e.get("val_loss")),
                    num(e.get("val_accuracy")),
                ]
            )
    return out.getvalue().encode()


class RunsTable(QtWidgets.QTableWidget):
    """Colour and show/hide, name (editable), task, configuration, status, final metrics."""

    renamed = QtCore.Signal(object, str)
    toggled = QtCore.Signal(object, bool)
    COLUMNS = ("", "Name", "Task", "Configuration", "Status", "Val loss", "Val acc", "Time")

    def __init__(self, parent=None) -> None:
        super().__init__(0, len(self.COLUMNS), parent)
        self.setObjectName("runs_table")
        self.setHorizontalHeaderLabels(self.COLUMNS)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.ExtendedSelection)
        self.verticalHeader().hide()
        self.setWordWrap(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 10)
        h = self.horizontalHeader()
        h.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Interactive)
        h.setSectionResizeMode(3, QtWidgets.QHeaderView.ResizeMode.Stretch)
        # Status fits "diverged (file)" and "completed (file)", the longest it says
        status = self.fontMetrics().horizontalAdvance("completed (file)") + 24
        # Name fits "SGD + momentum 0.05, c...": a continued run's lr tells it from its source
        widths = (44, 200, 170, max(90, status), 80, 70, 60)
        for col, width in zip((0, 1, 2, 4, 5, 6, 7), widths, strict=True):
            self.setColumnWidth(col, width)
        self.setTextElideMode(QtCore.Qt.TextElideMode.ElideRight)
        self.runs: list[Run] = []
        self._filling = False
        self.itemChanged.connect(self._changed)

    def set_runs(self, runs: list[Run]) -> None:
        self.runs = runs
        self._filling = True
        self.setRowCount(len(runs))
        for row, run in enumerate(runs):
            swatch = swatch_item(run.colour, run.shown, "Show this run in the comparison plots")
            self.setItem(row, 0, swatch)
            name = QtWidgets.QTableWidgetItem(run.name)
            name.setToolTip(f"{run.name}\nDouble-click to rename")  # the whole name
            self.setItem(row, 1, name)
            for col in range(2, len(self.COLUMNS)):
                item = QtWidgets.QTableWidgetItem()
                item.setFlags(
                    QtCore.Qt.ItemFlag.ItemIsEnabled | QtCore.Qt.ItemFlag.ItemIsSelectable
                )
                self.setItem(row, col, item)
            self.refresh_row(row)
        self._filling = False

    def refresh_row(self, row: int) -> None:
        run = self.runs[row]
        self._filling = True
        self.item(row, 2).setText(run.task_label())
        self.item(row, 3).setText(run.config_text())
        self.item(row, 3).setToolTip(run.config_text())
        status = self.item(row, 4)
        status.setText(run.status)
        why = run.error or divergence_text(run.record) or run.record.finished.get("message")
        # the full status first: a narrowed column elides it
        status.setToolTip(f"{run.status}: {why}" if why else run.status)
        colour = STATUS_COLOURS.get(run.status.removesuffix(" (file)"))
        status.setForeground(QtGui.QBrush(QtGui.QColor(colour)) if colour else QtGui.QBrush())
        loss, acc = run.final("val_loss"), run.final("val_accuracy")
        self.item(row, 5).setText("" if loss is None else f"{loss:.4g}")
        self.item(row, 6).setText("" if acc is None else f"{100 * acc:.2f}%")
        self.item(row, 7).setText(f"{run.seconds:.0f} s" if run.seconds else "")
        self._filling = False

    def refresh(self, run: Run) -> None:
        if run in self.runs:
            self.refresh_row(self.runs.index(run))

    def selected_runs(self) -> list[Run]:
        rows = sorted({i.row() for i in self.selectedIndexes()})
        return [self.runs[r] for r in rows if r < len(self.runs)]

    def current_run(self) -> Run | None:
        row = self.currentRow()
        return self.runs[row] if 0 <= row < len(self.runs) else None

    def _changed(self, item: QtWidgets.QTableWidgetItem) -> None:
        if self._filling or item.row() >= len(self.runs):
            return
        run = self.runs[item.row()]
        if item.column() == 0:
            self.toggled.emit(run, item.checkState() == QtCore.Qt.CheckState.Checked)
        elif item.column() == 1:
            text = item.text().strip()
            if not text:
                self._filling = True
                item.setText(run.name)
                self._filling = False
                return
            self.renamed.emit(run, text)


def unique_name(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    for i in itertools.count(2):
        name = f"{base} ({i})"
        if name not in taken:
            return name
    raise AssertionError("unreachable")


__all__ = [
    "PANELS",
    "Run",
    "RunsTable",
    "divergence",
    "divergence_text",
    "finished_status",
    "plural",
    "runs_csv",
    "unique_name",
]
