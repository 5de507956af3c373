"""The Landscape workspace: the loss landscape of a trained run, with its path on it.

A run arrives from the Train tab (its best checkpoint and its record with the recorded
trajectory) or from files. Computing runs on a worker thread (app.workers.Job) driving
core.landscape.job.run; the heatmap fills in row by row as the events arrive.
"""

from __future__ import annotations

import html
import os
import threading

from PySide6 import QtCore, QtWidgets

from app.landscape.controls import SIDE_WIDTH, LandscapeControls
from app.landscape.facts import facts_html, samples_text
from app.landscape.terrain import show_terrain
from app.landscape.view import LandscapeView, LinePlot
from app.workers import Job, describe
from app.workspace import Export
from core.landscape import job as lj
from core.landscape.directions import LandscapeError
from core.landscape.plane import Landscape, Line, Row
from core.landscape.progress import GridClock


class LandscapeWorkspace(QtWidgets.QWidget):
    message = QtCore.Signal(str)
    # (kind, path) after a file opened here: kind is "run", "checkpoint" or "landscape" (for
    # the window's File > Open recent)
    file_opened = QtCore.Signal(str, str)

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
        self.view.setObjectName("landscape_view")
        self.line = LinePlot()
        self.line.setObjectName("landscape_line")
        self.facts = QtWidgets.QLabel("")
        self.facts.setObjectName("landscape_facts")
        self.facts.setWordWrap(True)
        self.facts.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.facts.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop)
        self.facts.setMinimumWidth(200)
        facts = QtWidgets.QScrollArea()  # long facts scroll instead of growing the window
        facts.setWidgetResizable(True)
        facts.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        facts.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        facts.setWidget(self.facts)
        self.line.setMinimumSize(200, 120)
        bottom = QtWidgets.QSplitter()
        bottom.addWidget(self.line)
        bottom.addWidget(facts)
        bottom.setStretchFactor(0, 1)
        bottom.setStretchFactor(1, 1)
        bottom.setSizes([560, 500])
        bottom.setChildrenCollapsible(False)
        self.view_stack = QtWidgets.QStackedWidget()
        self.view_stack.addWidget(self.view)
        self.view3d = None  # app.views.surface3d.Surface3DView, made when first asked for
        self.view.setMinimumSize(300, 240)
        # the plane over the line and the facts; the user can trade one for the other
        vsplit = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        vsplit.addWidget(self.view_stack)
        vsplit.addWidget(bottom)
        vsplit.setStretchFactor(0, 3)
        vsplit.setStretchFactor(1, 1)
        vsplit.setSizes([700, 220])
        vsplit.setChildrenCollapsible(False)
        centre = self.centre = QtWidgets.QWidget()
        cl = QtWidgets.QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(vsplit)

        c = self.controls = LandscapeControls()
        # the inputs as the workspace's own attributes (the CLI, tests and tour use them)
        self.source, self.directions, self.span = c.source, c.directions, c.span
        self.resolution, self.samples, self.precision = c.resolution, c.samples, c.precision
        self.seed, self.eigen, self.log, self.view3d_box = c.seed, c.eigen, c.log, c.view3d_box
        self.compute_btn, self.cancel_btn = c.compute_btn, c.cancel_btn
        self.progress, self.status, self.error = c.progress, c.status, c.error
        self.png_btn, self.svg_btn, self.npz_btn = c.png_btn, c.svg_btn, c.npz_btn
        c.open_run_btn.clicked.connect(self.open_run_dialog)
        c.open_ck_btn.clicked.connect(self.open_checkpoint_dialog)
        c.open_land_btn.clicked.connect(self.open_landscape_dialog)
        self.log.toggled.connect(self._log_toggled)
        self.view3d_box.toggled.connect(self.set_3d)
        self.compute_btn.clicked.connect(self.compute)
        self.cancel_btn.clicked.connect(self.cancel)
        self.png_btn.clicked.connect(lambda: self.export_dialog("png"))
        self.svg_btn.clicked.connect(lambda: self.export_dialog("svg"))
        self.npz_btn.clicked.connect(lambda: self.export_dialog("npz"))
        split = self.splitter = QtWidgets.QSplitter()
        split.setObjectName("landscape_splitter")
        split.addWidget(centre)
        split.addWidget(c)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 0)
        split.setChildrenCollapsible(False)
        split.setSizes([1060, SIDE_WIDTH + 20])
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
            self.open_run_file(path)

    def open_checkpoint_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open checkpoint", "", "Checkpoints (*.pt)"
        )
        if path:
            self.open_checkpoint(path)

    def open_run_file(self, path: str) -> bool:
        """A run's JSON as the source (read now, so a bad file is said at once)."""
        from core.train.runs import RunFileError, RunRecord

        try:
            record = RunRecord.load(path)
        except (RunFileError, OSError) as exc:
            self.error.setText(f"Cannot open the run: {exc}")
            return False
        if not record.checkpoints:
            self.error.setText(
                f"{path} names no checkpoint (the run saved none): open its checkpoint instead"
            )
            return False
        self.set_source(str(path), None)
        self.file_opened.emit("run", str(path))
        return True

    def open_checkpoint(self, path: str) -> bool:
        """A checkpoint alone as the source (read now, so a bad file is said at once)."""
        from core.train.checkpoints import CheckpointError, load_checkpoint

        try:
            load_checkpoint(path)
        except (CheckpointError, OSError) as exc:
            self.error.setText(f"Cannot open the checkpoint: {exc}")
            return False
        self.set_source(None, str(path))
        self.file_opened.emit("checkpoint", str(path))
        return True

    def open_landscape_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open landscape", "", "Landscapes (*.npz)"
        )
        if path:
            self.open_landscape(path)

    def open_landscape(self, path: str) -> bool:
        """Show a landscape saved as .npz; False (and the reason below) when it cannot be."""
        if self.job is not None:
            self.error.setText("A landscape is being computed: cancel it first")
            return False
        try:
            land = Landscape.load(path)
        except LandscapeError as exc:
            self.error.setText(str(exc))
            return False
        self.error.setText("")
        self.show_landscape(land)
        self.status.setText(f"Opened {html.escape(str(path))}")
        self.file_opened.emit("landscape", str(path))
        return True

    def show_landscape(self, land: Landscape) -> None:
        """Draw a computed (or loaded) landscape with everything that came with it."""
        self.landscape = land
        self.view.set_plane(land.alphas, land.betas)
        self.view.set_grid(land.loss)
        x = land.extras
        self.path = None
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
        self.view.clear_hover()  # it described the grid being replaced
        self._rows = 0
        self._clock: GridClock | None = None
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
            self._clock = GridClock(len(e.alphas) * len(e.betas))
            self.status.setText(
                self.status.text() + f"<br>evaluating on {samples_text(e.n_eval, e.n_total)}"
            )
            self.progress.setFormat(f"grid row 0/{len(e.betas)}")
        elif isinstance(e, Row):
            self._rows += 1
            self.view.set_row(e.index, e.loss)
            rows = self._req.resolution
            eta = self._clock.tick(self._rows * rows).text() if self._clock else ""
            self.progress.setFormat(f"grid row {self._rows}/{rows}" + (f": {eta}" if eta else ""))
            self.progress.setValue(int(80 * self._rows / rows))
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
        else:
            raise TypeError(f"Unknown landscape event: {type(e).__name__}")

    def _facts(self) -> None:
        if self.landscape is not None:
            self.facts.setText(facts_html(self.landscape))

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
        show_terrain(self.view3d, self.view, self.path)


__all__ = ["LandscapeWorkspace"]
