"""The Landscape workspace: the loss landscape of a trained run, with its path on it.

A run arrives from the Train tab (its best checkpoint and its record with the recorded
trajectory) or from files. Computing runs on a worker thread (app.workers.Job) driving
core.landscape.job.run; the heatmap fills in row by row as the events arrive.
"""

from __future__ import annotations

import html
import os
import threading

import numpy as np
from PySide6 import QtCore, QtWidgets

from app.landscape.view import LandscapeView, LinePlot
from app.workers import Job, describe
from app.workspace import Export
from core.landscape import job as lj
from core.landscape.directions import LandscapeError
from core.landscape.plane import Landscape, Line, Row

DIRECTION_LABELS = {
    "random": "random, filter-normalised",
    "pca": "PCA of the training path",
    "init-final": "initial -> final weights",
}


class LandscapeWorkspace(QtWidgets.QWidget):
    message = QtCore.Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.run_file: str | None = None
        self.checkpoint: str | None = None
        self.job: Job | None = None
        self._cancel = threading.Event()
        self.landscape: Landscape | None = None
        self.path: lj.PathResult | None = None
        self.finished_ok = False
        self._build()
        self._show_source()

    # --- layout ---------------------------------------------------------------------------

    def _build(self) -> None:
        self.view = LandscapeView()
        self.line = LinePlot()
        self.facts = QtWidgets.QLabel("")
        self.facts.setWordWrap(True)
        self.facts.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        bottom = QtWidgets.QHBoxLayout()
        bottom.addWidget(self.line, 3)
        bottom.addWidget(self.facts, 2)
        centre = self.centre = QtWidgets.QWidget()
        cl = QtWidgets.QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        self.view_stack = QtWidgets.QStackedWidget()
        self.view_stack.addWidget(self.view)
        self.view3d = None  # app.views.surface3d.Surface3DView, made when first asked for
        cl.addWidget(self.view_stack, 1)
        self.line.setMaximumHeight(240)
        cl.addLayout(bottom)

        self.source = QtWidgets.QLabel("")
        self.source.setWordWrap(True)
        self.source.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        open_run = QtWidgets.QPushButton("Open run...")
        open_run.setToolTip("A run's JSON (saved by the Train tab or losslab train --out)")
        open_run.clicked.connect(self.open_run_dialog)
        open_ck = QtWidgets.QPushButton("Open checkpoint...")
        open_ck.setToolTip("A checkpoint alone: random directions only (no trajectory)")
        open_ck.clicked.connect(self.open_checkpoint_dialog)
        open_land = QtWidgets.QPushButton("Open landscape...")
        open_land.setToolTip("A landscape saved as .npz")
        open_land.clicked.connect(self.open_landscape_dialog)
        src_buttons = QtWidgets.QHBoxLayout()
        for b in (open_run, open_ck, open_land):
            src_buttons.addWidget(b)

        self.directions = QtWidgets.QComboBox()
        for key, label in DIRECTION_LABELS.items():
            self.directions.addItem(label, key)
        self.span = QtWidgets.QDoubleSpinBox()
        self.span.setRange(0.0, 1000.0)
        self.span.setSingleStep(0.25)
        self.span.setSpecialValueText("auto")
        self.span.setValue(0.0)
        self.span.setToolTip(
            "The grid covers -range .. range along both directions. auto: 1 for random "
            "directions, else the projected training path with a margin"
        )
        self.resolution = QtWidgets.QSpinBox()
        self.resolution.setRange(5, 201)
        self.resolution.setValue(41)
        self.samples = QtWidgets.QSpinBox()
        self.samples.setRange(10, 10_000)
        self.samples.setSingleStep(250)
        self.samples.setValue(1000)
        self.samples.setToolTip(
            "Evaluation samples: spread evenly over the validation set, always the same ones"
        )
        self.precision = QtWidgets.QComboBox()
        self.precision.addItem("fp32 (exact)", "fp32")
        self.precision.addItem("bfloat16 preview (approximate, ~1% off)", "bf16")
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.eigen = QtWidgets.QSpinBox()
        self.eigen.setRange(0, 5)
        self.eigen.setValue(2)
        self.eigen.setToolTip("Top Hessian eigenvalues at the checkpoint (power iteration)")
        self.log = QtWidgets.QCheckBox("log colour scale")
        self.log.toggled.connect(self._log_toggled)
        self.view3d_box = QtWidgets.QCheckBox("3-D terrain")
        self.view3d_box.setToolTip("The landscape as terrain with the path on it (needs OpenGL)")
        self.view3d_box.toggled.connect(self.set_3d)
        form = QtWidgets.QFormLayout()
        form.addRow("Directions", self.directions)
        form.addRow("Range", self.span)
        form.addRow("Resolution", self.resolution)
        form.addRow("Samples", self.samples)
        form.addRow("Precision", self.precision)
        form.addRow("Seed", self.seed)
        form.addRow("Eigenvalues", self.eigen)
        form.addRow(self.log)
        form.addRow(self.view3d_box)
        self.compute_btn = QtWidgets.QPushButton("Compute")
        self.compute_btn.clicked.connect(self.compute)
        self.cancel_btn = QtWidgets.QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel)
        run_buttons = QtWidgets.QHBoxLayout()
        run_buttons.addWidget(self.compute_btn)
        run_buttons.addWidget(self.cancel_btn)
        self.progress = QtWidgets.QProgressBar()
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.error = QtWidgets.QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #e6194b;")
        exports = QtWidgets.QHBoxLayout()
        self.png_btn = QtWidgets.QPushButton("PNG...")
        self.png_btn.clicked.connect(lambda: self.export_dialog("png"))
        self.svg_btn = QtWidgets.QPushButton("SVG...")
        self.svg_btn.clicked.connect(lambda: self.export_dialog("svg"))
        self.npz_btn = QtWidgets.QPushButton(".npz...")
        self.npz_btn.clicked.connect(lambda: self.export_dialog("npz"))
        exports.addWidget(QtWidgets.QLabel("Export"))
        for b in (self.png_btn, self.svg_btn, self.npz_btn):
            exports.addWidget(b)
        side = QtWidgets.QWidget()
        sl = QtWidgets.QVBoxLayout(side)
        sl.setContentsMargins(4, 0, 0, 0)
        box = QtWidgets.QGroupBox("Run")
        bl = QtWidgets.QVBoxLayout(box)
        bl.addWidget(self.source)
        bl.addLayout(src_buttons)
        sl.addWidget(box)
        sl.addLayout(form)
        sl.addLayout(run_buttons)
        sl.addWidget(self.progress)
        sl.addWidget(self.status)
        sl.addWidget(self.error)
        sl.addStretch(1)
        sl.addLayout(exports)
        side.setMinimumWidth(360)
        split = QtWidgets.QSplitter()
        split.addWidget(centre)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setSizes([1060, 380])
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)
        self._set_running(False)

    # --- the source -----------------------------------------------------------------------

    def set_source(self, run_file: str | None, checkpoint: str | None) -> None:
        """What to compute on: a run's JSON and/or a checkpoint (loaded when computing)."""
        self.run_file, self.checkpoint = run_file, checkpoint
        self.error.setText("")
        self._show_source()
        has_path = bool(run_file)
        for i in range(self.directions.count()):
            item = self.directions.model().item(i)
            needs_path = self.directions.itemData(i) != "random"
            item.setEnabled(has_path or not needs_path)
        if not has_path and self.directions.currentData() != "random":
            self.directions.setCurrentIndex(0)

    def open_run(self, run) -> None:
        """A run handed over by the Train tab (app.train.runs.Run)."""
        self.set_source(str(run.file) if run.file else None, str(run.checkpoint))
        self.message.emit(f"Landscape: {run.name} is ready; press Compute")

    def _show_source(self) -> None:
        if not (self.run_file or self.checkpoint):
            self.source.setText(
                "No run yet. Train one in the Train tab and press <b>Open in Landscape</b>, or "
                "open a run's JSON or a checkpoint here."
            )
        else:
            parts = []
            if self.run_file:
                parts.append(f"run: {html.escape(self.run_file)}")
            if self.checkpoint:
                parts.append(f"checkpoint: {html.escape(self.checkpoint)}")
            self.source.setText("<br>".join(parts))
        self.compute_btn.setEnabled(bool(self.run_file or self.checkpoint) and self.job is None)

    def open_run_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open run", "", "Runs (*.json)")
        if path:
            self.set_source(path, None)

    def open_checkpoint_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open checkpoint", "", "Checkpoints (*.pt)"
        )
        if path:
            self.set_source(None, path)

    def open_landscape_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open landscape", "", "Landscapes (*.npz)"
        )
        if path:
            self.open_landscape(path)

    def open_landscape(self, path: str) -> bool:
        try:
            land = Landscape.load(path)
        except LandscapeError as exc:
            self.error.setText(str(exc))
            return False
        self.show_landscape(land)
        self.status.setText(f"Opened {html.escape(path)}")
        return True

    def show_landscape(self, land: Landscape) -> None:
        """Draw a computed (or loaded) landscape with everything that came with it."""
        self.landscape = land
        self.view.set_plane(land.alphas, land.betas)
        self.view.set_grid(land.loss)
        x = land.extras
        if "path" in x:
            self.path = lj.PathResult(
                x["path"],
                x["path_off"],
                x["path_steps"],
                x["path_loss"],
                x["path_plane_loss"],
                [int(i) for i in x["path_epochs"]],
            )
            self.view.set_path(self.path)
        self.line.set_line(x.get("line_t"), x.get("line_loss"))
        self._facts()
        self._update_3d()
        self._set_running(self.job is not None)

    # --- computing ------------------------------------------------------------------------

    def request(self) -> lj.Request:
        return lj.Request(
            directions=self.directions.currentData(),
            span=float(self.span.value()),
            resolution=int(self.resolution.value()),
            samples=int(self.samples.value()),
            precision=self.precision.currentData(),
            seed=int(self.seed.value()),
            eigenvalues=int(self.eigen.value()),
        )

    def compute(self) -> None:
        if self.job is not None or not (self.run_file or self.checkpoint):
            return
        req = self.request()
        run_file, checkpoint = self.run_file, self.checkpoint
        cancel = self._cancel = threading.Event()

        def work():
            subject = lj.load_subject(checkpoint, run_file)
            yield subject
            yield from lj.run(subject, req, should_stop=cancel.is_set)

        self.error.setText("")
        # all cores: the user is waiting on this (training, when it starts, leaves one free)
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        self.finished_ok = False
        self.landscape = None
        self.path = None
        self.line.set_line(None, None)
        self.facts.setText("")
        self._rows = 0
        self._req = req
        self.job = Job(work, self)
        job = self.job
        job.item.connect(lambda e, j=job: j is self.job and self._event(e))
        job.failed.connect(lambda exc, j=job: j is self.job and self._failed(describe(exc)))
        job.finished.connect(lambda ok, j=job: self._done(j, ok))
        self._set_running(True)
        self.progress.setValue(0)
        self.status.setText("Loading the model and its data...")
        job.start()

    def cancel(self) -> None:
        if self.job is not None:
            self._cancel.set()
            self.job.worker.cancel()
            self.status.setText("Cancelling...")

    def shutdown(self) -> None:
        if self.view3d is not None:
            self.view3d.release()
        if self.job is not None:
            self._cancel.set()
            self.job.stop(30_000)
            self.job = None

    def _event(self, e) -> None:
        if isinstance(e, lj.Subject):
            self.status.setText(
                f"<b>{html.escape(e.name)}</b> ({e.task}), checkpoint of epoch "
                f"{e.checkpoint_epoch}; data: {html.escape(e.source)}"
            )
            self.progress.setFormat("preparing (big grids compile the evaluator first)...")
        elif isinstance(e, lj.Planned):
            self.view.set_plane(e.alphas, e.betas)
            self.view.set_scale("log" if self.log.isChecked() else "linear")
        elif isinstance(e, Row):
            self._rows += 1
            self.view.set_row(e.index, e.loss)
            self.progress.setValue(int(80 * self._rows / self._req.resolution))
            self.progress.setFormat(f"grid row {self._rows}/{self._req.resolution}")
        elif isinstance(e, lj.PathResult):
            self.path = e
            self.view.set_grid(self.view.loss)
            self.view.set_path(e)
            self._update_3d()
            self.progress.setValue(85)
            self.progress.setFormat("training path projected")
        elif isinstance(e, Line):
            self.line.set_line(e.t, e.loss)
            self.progress.setValue(90)
            self.progress.setFormat("Hessian eigenvalues...")
        elif isinstance(e, lj.Curvature):
            self.progress.setValue(99)
        elif isinstance(e, lj.Done):
            self.landscape = e.landscape
            self.landscape.meta["seconds"] = round(e.seconds, 2)
            self.finished_ok = True
            self.view.set_grid(e.landscape.loss)
            self._update_3d()
            self.progress.setValue(100)
            self.progress.setFormat(f"done in {e.seconds:.1f} s")
            self._facts()
            self.message.emit(f"Landscape computed in {e.seconds:.1f} s")

    def _facts(self) -> None:
        land = self.landscape
        if land is None:
            return
        at_centre = float(land.loss[len(land.betas) // 2, len(land.alphas) // 2])
        lines = [
            f"<b>{DIRECTION_LABELS.get(land.directions, land.directions)}</b> directions, "
            f"{len(land.alphas)}x{len(land.betas)} grid over ±{land.alphas[-1]:.3g}, "
            f"{land.n_eval:,} evaluation images, {land.precision}"
            + (" <b>(preview: approximate)</b>" if land.precision == "bf16" else ""),
            f"loss at the checkpoint {at_centre:.5g}, "
            f"lowest on the plane {np.nanmin(land.loss):.5g}",
        ]
        if land.explained is not None:
            e = land.explained
            lines.append(
                f"PCA: the two directions explain {100 * e[0]:.1f}% and {100 * e[1]:.1f}% of "
                "the path's variance"
            )
        if "hessian" in land.extras:
            vals = ", ".join(f"{v:.4g}" for v in land.extras["hessian"])
            lines.append(f"top Hessian eigenvalues at the checkpoint: {vals}")
        if "path_off" in land.extras:
            off = land.extras["path_off"]
            lines.append(
                f"the start of the path lies off the plane by {100 * float(off[0]):.0f}% of "
                f"its distance to the centre (median over the path "
                f"{100 * float(np.median(off)):.0f}%): hover a point for its true loss and the "
                "loss at its projection"
            )
        self.facts.setText("<br>".join(lines))

    def _failed(self, msg: str) -> None:
        self.error.setText(f"Landscape failed: {msg}")
        self.status.setText("Stopped: see the message below.")
        self.progress.setFormat("failed")
        self.message.emit("Landscape failed")

    def _done(self, job: Job, ok: bool) -> None:
        if job is not self.job:
            return
        self.job = None
        self._set_running(False)
        if not self.finished_ok and not self.error.text():
            self.status.setText("Cancelled: the rows computed so far are shown.")
            self.progress.setFormat("cancelled")

    def _set_running(self, on: bool) -> None:
        self.compute_btn.setEnabled(not on and bool(self.run_file or self.checkpoint))
        self.cancel_btn.setEnabled(on)
        for b in (self.png_btn, self.svg_btn, self.npz_btn):
            b.setEnabled(not on and self.view.loss is not None)

    # --- exports --------------------------------------------------------------------------

    def export_png(self, path: str) -> bool:
        from app import export

        return self._write(lambda: export.write_png(path, export.widget_png(self.centre)), path)

    def export_svg(self, path: str) -> bool:
        from app import export

        return self._write(
            lambda: export.atomic_write(path, export.widget_svg(self.centre, "LossLab landscape")),
            path,
        )

    def export_npz(self, path: str) -> bool:
        if self.landscape is None:
            self.error.setText("Nothing to export yet: compute a landscape first")
            return False
        return self._write(lambda: self.landscape.save(path), path)

    def _write(self, action, path: str) -> bool:
        from app import export

        try:
            action()
        except (OSError, export.ExportError) as exc:
            self.error.setText(f"Export failed: {exc}")
            return False
        self.message.emit(f"Exported {path}")
        return True

    def export_dialog(self, kind: str) -> None:
        filters = {"png": "PNG (*.png)", "svg": "SVG (*.svg)", "npz": "NumPy archive (*.npz)"}
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export", f"landscape.{kind}", filters[kind]
        )
        if not path:
            return
        if not path.lower().endswith("." + kind):
            path += "." + kind
        {"png": self.export_png, "svg": self.export_svg, "npz": self.export_npz}[kind](path)

    def set_theme(self, dark: bool) -> None:
        self.view.set_theme(dark)
        self.line.set_theme(dark)

    def exports(self) -> list[Export]:
        return [
            Export("Landscape as &PNG...", "PNG (*.png)", "landscape.png", self.export_png),
            Export("Landscape as &SVG...", "SVG (*.svg)", "landscape.svg", self.export_svg),
            Export(
                "Landscape data as &npz...",
                "NumPy archive (*.npz)",
                "landscape.npz",
                self.export_npz,
            ),
        ]

    # --- 3-D ---------------------------------------------------------------------------------

    def _log_toggled(self, on: bool) -> None:
        self.view.set_scale("log" if on else "linear")
        self._update_3d()

    def set_3d(self, on: bool) -> bool:
        """The landscape as terrain; False (and a message) where OpenGL is missing."""
        self.view3d_box.blockSignals(True)
        self.view3d_box.setChecked(on)
        self.view3d_box.blockSignals(False)
        if not on:
            self.view_stack.setCurrentWidget(self.view)
            return True
        from app.views.surface3d import Surface3DView, gl_problem

        problem = gl_problem()
        if problem:
            self.view3d_box.blockSignals(True)
            self.view3d_box.setChecked(False)
            self.view3d_box.blockSignals(False)
            self.message.emit(f"3-D view unavailable: {problem}. Showing the 2-D view.")
            return False
        if self.view3d is None:
            self.view3d = Surface3DView()
            self.view_stack.addWidget(self.view3d)
        self.view_stack.setCurrentWidget(self.view3d)
        self._update_3d()
        return True

    def _update_3d(self) -> None:
        if self.view3d is None or self.view_stack.currentWidget() is not self.view3d:
            return
        v = self.view
        if v.loss is None or not np.isfinite(v.loss).any():
            return
        from app.views.surface_view import display_transform, display_values

        shown, lo, hi = display_values(v.loss, v.scale)
        to_shown = display_transform(np.where(np.isfinite(v.loss), v.loss, np.nan), v.scale)
        xs, ys, loss = v.alphas, v.betas, v.loss

        def height_of(points: np.ndarray) -> np.ndarray:
            return to_shown(_bilinear(xs, ys, loss, points))

        self.view3d.set_grid(xs, ys, shown, lo, hi, height_of)
        self.view3d.set_minima(np.zeros((1, 2)))  # the checkpoint, the plane's centre
        if self.path is not None:
            inside = np.all(np.abs(self.path.coords) <= max(xs[-1], ys[-1]), axis=1)
            self.view3d.set_paths([self.path.coords[inside]], ["#ff6e40"])
        else:
            self.view3d.set_paths([], [])


def _bilinear(xs: np.ndarray, ys: np.ndarray, grid: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``grid[iy, ix]`` interpolated at points ``(N, 2)`` (clamped to the grid)."""
    x = np.clip(pts[:, 0], xs[0], xs[-1])
    y = np.clip(pts[:, 1], ys[0], ys[-1])
    i = np.clip(np.searchsorted(xs, x) - 1, 0, len(xs) - 2)
    j = np.clip(np.searchsorted(ys, y) - 1, 0, len(ys) - 2)
    tx = (x - xs[i]) / (xs[i + 1] - xs[i])
    ty = (y - ys[j]) / (ys[j + 1] - ys[j])
    g = np.nan_to_num(grid, nan=np.nanmax(grid))
    return (
        g[j, i] * (1 - tx) * (1 - ty)
        + g[j, i + 1] * tx * (1 - ty)
        + g[j + 1, i] * (1 - tx) * ty
        + g[j + 1, i + 1] * tx * ty
    )


__all__ = ["LandscapeWorkspace"]
