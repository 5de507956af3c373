"""Sharpness in the Train tab: the "Track sharpness every N steps" control, each run's series
(live from core.train.sharpness events, or from a reopened record), and its plot with the
optimizer's stability limit drawn over it."""

from __future__ import annotations

import html
import math
import weakref
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.train.runs import Run
from app.widgets import ERROR_RED, error_label
from core.optimizers import OptimizerSpec, get_optimizer
from core.train.sharpness import DEFAULT_EVERY, Limit, Sharpness, stability_limit

MAX_EVERY = 1_000_000


class SharpnessEdit(QtWidgets.QWidget):
    """A box to tick and the N of "Track sharpness every N steps", checked as it is typed: a
    value that is not a whole number 1 .. 1,000,000 turns the box red with the reason under
    it, and :meth:`every` keeps the last good one.

    objectNames: ``track_sharpness`` (the box), ``sharpness_every``, ``sharpness_error``.
    """

    changed = QtCore.Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.box = QtWidgets.QCheckBox("Track sharpness every")
        self.box.setObjectName("track_sharpness")
        self.box.setToolTip(
            "Every N steps, the top eigenvalue of the Hessian of the step's batch loss (a few "
            "power iterations, warm-started), plotted against the optimizer's stability limit "
            "(2/lr for SGD, 2(1+β)/lr with momentum β). It costs Hessian-vector products: "
            f"at N = {DEFAULT_EVERY}, LeNet trains about 15-20% slower."
        )
        self.text = QtWidgets.QLineEdit(str(DEFAULT_EVERY))
        self.text.setObjectName("sharpness_every")
        self.text.setFixedWidth(70)
        self.text.setToolTip(f"Steps between two measurements: 1 .. {MAX_EVERY:,}")
        self.text.setEnabled(False)
        self.error = error_label("sharpness_error")
        self.error.setVisible(False)
        self._good = DEFAULT_EVERY
        row = QtWidgets.QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.box)
        row.addWidget(self.text)
        row.addWidget(QtWidgets.QLabel("steps"))
        row.addStretch(1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        lay.addLayout(row)
        lay.addWidget(self.error)
        self.box.toggled.connect(self._toggled)
        self.text.textChanged.connect(self._typed)

    def every(self) -> int:
        """N when tracking is on, else 0 (the last good N while the box shows a bad one)."""
        return self._good if self.box.isChecked() else 0

    def set_every(self, n: int) -> None:
        """Tick the box with ``n`` (0: untick it)."""
        if n:
            self.text.setText(str(n))
        self.box.setChecked(bool(n))

    def error_text(self) -> str:
        return self.error.text() if self.box.isChecked() else ""

    def _toggled(self, on: bool) -> None:
        self.text.setEnabled(on)
        self._typed(self.text.text())

    def _typed(self, text: str) -> None:
        text = text.strip()
        problem = ""
        try:
            n = int(text)
        except ValueError:
            problem = f"'{text}' is not a whole number of steps"
        else:
            if not 1 <= n <= MAX_EVERY:
                problem = f"{n} is out of range: allowed 1 .. {MAX_EVERY:,}"
            else:
                self._good = n
        problem = problem if self.box.isChecked() else ""
        self.text.setStyleSheet(f"border: 1px solid {ERROR_RED};" if problem else "")
        self.error.setText(problem)
        self.error.setVisible(bool(problem))
        self.changed.emit()


# --- each run's series ----------------------------------------------------------------------


@dataclass
class Series:
    """A run's measurements so far: steps, values, and what tracking cost."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    share: float = 0.0
    message: str = ""  # tracking turned off, and why


# Live series, by run: the run record keeps the whole series only once the run ends
# (Finished.final["sharpness"]).
_LIVE: weakref.WeakKeyDictionary[Run, Series] = weakref.WeakKeyDictionary()


def add_event(run: Run, e: Sharpness) -> None:
    """File a measurement (or the news that tracking was turned off) under ``run``."""
    s = _LIVE.setdefault(run, Series())
    s.share = e.share
    if e.message:
        s.message = e.message
    else:
        s.steps.append(e.step)
        s.values.append(e.value)


def series(run: Run) -> Series | None:
    """The run's sharpness so far: live, or from its record's final metrics; None when it
    did not track sharpness."""
    live = _LIVE.get(run)
    if live is not None:
        return live
    done = (run.record.finished.get("final") or {}).get("sharpness")
    if not done:
        return None
    values = [math.nan if v is None else float(v) for v in done.get("values", [])]
    return Series(
        list(done.get("steps", [])), values, float(done.get("share", 0)), done.get("message", "")
    )


def tracks(run: Run) -> bool:
    return bool(run.record.config.get("track_sharpness")) or series(run) is not None


def limit_of(run: Run) -> Limit | None:
    try:
        return stability_limit(OptimizerSpec.from_dict(run.record.config.get("optimizer") or {}))
    except ValueError:  # a file from another version, an unknown optimizer: draw no line
        return None


def summary(run: Run) -> str:
    """A few words for the details line: the last sharpness, its limit, what it cost."""
    s = series(run)
    if s is None:
        return ""
    if s.message:
        return f"<span style='color:{ERROR_RED}'>{html.escape(s.message)}</span>"
    if not s.values:
        return "sharpness: waiting for the first measurement"
    text = f"sharpness {s.values[-1]:.4g}"
    limit, lrs = limit_of(run), run.lrs()
    if limit is not None and limit.factor is not None and len(lrs):
        text += f" (limit {html.escape(limit.label)} = {limit.at(float(lrs[-1])):.4g})"
    return text + f", tracking took {s.share:.0%} of the time"


# --- the plot -------------------------------------------------------------------------------


class SharpnessCurves:
    """Every run's sharpness curve and its limit line (dashed) on one plot, and a caption
    saying which limit is drawn."""

    def __init__(self, plot: pg.PlotWidget, caption: QtWidgets.QLabel) -> None:
        self.plot, self.caption = plot, caption
        self.items: dict[Run, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        self.fit = True  # the y range is ours to set, until the user pans or zooms
        self.limit_above: float | None = None  # the shown run's limit, when above the plot
        plot.getViewBox().sigRangeChangedManually.connect(lambda *_: setattr(self, "fit", False))

    def add(self, run: Run) -> None:
        curve = self.plot.plot(
            pen=pg.mkPen(run.colour, width=2),
            symbol="o",
            symbolSize=5,
            symbolBrush=run.colour,
            symbolPen=None,
        )
        line = self.plot.plot(pen=pg.mkPen(run.colour, width=1, style=QtCore.Qt.PenStyle.DashLine))
        line.setClipToView(True)
        line.setDownsampling(auto=True, method="peak")
        self.items[run] = (curve, line)

    def remove(self, run: Run) -> None:
        for item in self.items.pop(run, ()):
            self.plot.removeItem(item)

    def set_visible(self, run: Run, on: bool) -> None:
        for item in self.items.get(run, ()):
            item.setVisible(on)

    def draw(self, runs: list[Run], drawn: list[Run], current: Run | None) -> bool:
        """Update ``runs``' curves; caption for ``current``. True when any drawn run tracks."""
        for run in runs:
            curve, line = self.items[run]
            s = series(run)
            if s is None:  # most runs: nothing to draw, and nothing to clear
                if curve.xData is not None and len(curve.xData):
                    curve.setData([], [])
                    line.setData([], [])
                continue
            curve.setData(np.asarray(s.steps, float), np.asarray(s.values, float))
            limit = limit_of(run)
            if limit is None or limit.factor is None or not run.record.steps["lr"]:
                line.setData([], [])
            else:
                lrs = run.lrs()
                with np.errstate(divide="ignore", invalid="ignore"):
                    y = np.where(lrs > 0, limit.factor / lrs - limit.shift, np.nan)
                line.setData(run.steps(), y, connect="finite")
        shown = current if current in drawn else None
        self._fit_y(drawn, shown)
        self.caption.setText(self._caption(shown))
        limit = limit_of(shown) if shown is not None else None
        self.caption.setToolTip(limit.note if limit is not None else "")
        return any(tracks(r) for r in drawn)

    def _fit_y(self, drawn: list[Run], shown: Run | None) -> None:
        """The y range from 0 to the sharpness, with the limit line when it is near.

        Autorange failed both ways: a limit far above (LeNet at lr 0.001: 1.3 against 2/lr =
        2000) flattened the curve onto 0, and a constant sharpness (the sine fit's 5.6e5)
        zoomed into float32 noise of a few units that read as wild swings."""
        self.limit_above = None
        if not self.fit:
            return
        values, limits = [], {}
        for run in drawn:
            if run not in self.items or series(run) is None:
                continue
            curve, line = self.items[run]
            y = curve.getData()[1]
            if y is not None:
                values.extend(v for v in y if math.isfinite(v))
            ly = line.getData()[1]
            if ly is not None and len(ly) and np.isfinite(ly).any():
                limits[run] = float(np.nanmax(ly))
        if not values:
            self.plot.enableAutoRange(axis="y")
            return
        lo, hi = min(0.0, min(values)), max(0.0, max(values))
        near = [v for v in limits.values() if v <= 3 * hi]  # the climb to it stays readable
        hi = max([hi, *near])
        if shown in limits and limits[shown] > hi:
            self.limit_above = limits[shown]
        span = hi - lo or 1.0
        self.plot.setYRange(lo - 0.02 * span, hi + 0.08 * span, padding=0)

    def _caption(self, run: Run | None) -> str:
        if run is None or not tracks(run):
            return "<b>Sharpness</b> (top Hessian eigenvalue): tick Track sharpness"
        limit = limit_of(run)
        if limit is None:
            return "<b>Sharpness</b>; no limit line (unknown optimizer)"
        if limit.factor is None:
            name = (run.record.config.get("optimizer") or {}).get("name", "")
            label = get_optimizer(name).label
            return (
                f"<b>Sharpness</b>; no limit line for {html.escape(label)}: its stability "
                "depends on the preconditioned sharpness (Cohen et al. 2022)"
            )
        text = f"<b>Sharpness</b>; dashed: the limit {html.escape(limit.label)}"
        if self.limit_above is not None:
            text += f" (= {self.limit_above:.4g}, above the plot)"
        return text


__all__ = [
    "SharpnessCurves",
    "SharpnessEdit",
    "add_event",
    "limit_of",
    "series",
    "summary",
    "tracks",
]
