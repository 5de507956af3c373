"""The Landscape workspace: the loss landscape of a trained run, with its path on it.

A run arrives from the Train tab (its best checkpoint and its record with the recorded
trajectory) or from files; the user's own model from an experiment file (checked on a worker
thread when opened). Computing runs on a worker thread (app.workers.Job) driving
core.landscape.job.run; the heatmap fills in row by row as the events arrive, and the grid is
kept in a partial file so that a cancelled Compute resumes where it stopped.
"""

from __future__ import annotations

import html
import os
import threading
from dataclasses import replace

from PySide6 import QtCore, QtWidgets

from app.landscape import source as own
from app.landscape.controls import SIDE_WIDTH, LandscapeControls
from app.landscape.curvature_panel import CurvaturePanel
from app.landscape.exports import LandscapeExports
from app.landscape.facts import facts_html, line_facts_html, samples_text, subject_text
from app.landscape.multirun_panel import MultiRunPanel, facts_of_runs
from app.landscape.own_model import LOADER_WAIT_MS, OwnModelPanel
from app.landscape.terrain import TerrainPanel
from app.landscape.view import LandscapeView, LinePlot
from app.workers import Job, describe
from core.landscape import formats
from core.landscape import job as lj
from core.landscape.directions import LandscapeError
from core.landscape.plane import Landscape, Line, Row
from core.landscape.progress import GridClock


class LandscapeWorkspace(
    QtWidgets.QWidget, LandscapeExports, OwnModelPanel, TerrainPanel, MultiRunPanel
):
    message = QtCore.Signal(str)
    # (kind, path) after a file opened here: kind is "run", "checkpoint" or "landscape" (for
    # the window's File > Open recent)
    file_opened = QtCore.Signal(str, str)
    # the model file opened (for the window to persist beside its own settings, if it wants)
    model_file_changed = QtCore.Signal(str)

    def __init__(self, parent=None, settings: QtCore.QSettings | None = None) -> None:
        super().__init__(parent)
        # the last model file is remembered here (the window may hand over its own settings)
        self.settings = settings if settings is not None else QtCore.QSettings()
        self.run_file: str | None = None
        self.checkpoint: str | None = None  # a LossLab checkpoint, or the model file's weights
        self.run_sources = []  # several runs on one plane (MultiRunPanel); [] for one
        self.model_file: str | None = None  # the user's experiment file
        self.model_check: own.ModelCheck | None = None  # its last check (None: none passed)
        self.loader: Job | None = None  # the model file being imported and checked
        self._loaders: set[Job] = set()  # kept alive until their threads end
        self.job: Job | None = None
        self._cancel = threading.Event()
        self.landscape: Landscape | None = None
        self.path: lj.PathResult | None = None
        self.finished_ok = False
        self._own = False  # the subject being computed is an experiment file's
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
        # the map and the curvature at the same weights, one tab each
        self.curvature = CurvaturePanel()
        self.curvature.message.connect(self.message)
        self.centre_tabs = QtWidgets.QTabWidget()
        self.centre_tabs.setObjectName("landscape_centre_tabs")
        self.centre_tabs.addTab(self.view_stack, "Landscape")
        self.centre_tabs.addTab(self.curvature, "Curvature")
        vsplit.addWidget(self.centre_tabs)
        vsplit.addWidget(bottom)
        # the line and the facts belong to the map; the Curvature tab has its own numbers
        self.centre_tabs.currentChanged.connect(lambda i: bottom.setVisible(i == 0))
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
        self.device, self.bias_bn = c.device, c.bias_bn
        self.open_model_btn, self.weights_btn, self.reload_btn = (
            c.open_model_btn,
            c.weights_btn,
            c.reload_btn,
        )
        c.open_run_btn.clicked.connect(self.open_run_dialog)
        c.open_ck_btn.clicked.connect(self.open_checkpoint_dialog)
        c.open_land_btn.clicked.connect(self.open_landscape_dialog)
        c.open_model_btn.clicked.connect(self.open_model_dialog)
        c.weights_btn.clicked.connect(self.open_weights_dialog)
        c.reload_btn.clicked.connect(self.reload_model)
        self.log.toggled.connect(self._log_toggled)
        self.view3d_box.toggled.connect(self.set_3d)
        self.compute_btn.clicked.connect(self.compute)
        self.cancel_btn.clicked.connect(self.cancel)
        self.png_btn.clicked.connect(lambda: self.export_dialog("png"))
        self.svg_btn.clicked.connect(lambda: self.export_dialog("svg"))
        self.npz_btn.clicked.connect(lambda: self.export_dialog("data"))
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

    def set_source(
        self, run_file: str | None, checkpoint: str | None, model_file: str | None = None
    ) -> None:
        """What to compute on: a run's JSON and/or a checkpoint, or the user's own model file
        with the weights of ``checkpoint`` (any format; None: as model() builds them)."""
        if model_file != self.model_file or not model_file:
            self.model_check = None
            self.loader = None  # a check still running is for another source: its answer is dropped
        self.run_file, self.checkpoint, self.model_file = run_file, checkpoint, model_file
        self.run_sources = []
        self.controls.set_runs([])
        self.error.setText("")
        self._show_source()
        has_path = bool(run_file)
        for i in range(self.directions.count()):
            item = self.directions.model().item(i)
            key = self.directions.itemData(i)
            needs_path = key in ("pca", "init-final")
            item.setEnabled((has_path or not needs_path) and key != "endpoints")
        if not has_path and self.directions.currentData() in ("pca", "init-final"):
            self.directions.setCurrentIndex(0)
        mine = bool(model_file) or own.own_model_of(run_file, checkpoint) is not None
        # an experiment file: its own batches (no sampling) and fp32 only (the core refuses
        # the bfloat16 preview for an arbitrary model)
        self.precision.model().item(1).setEnabled(not mine)
        if mine:
            self.precision.setCurrentIndex(0)
        self.samples.setEnabled(not mine)
        self._set_running(self.job is not None)
        self.curvature.set_source(
            run_file, checkpoint, model_file, int(self.samples.value()), self.device.currentData()
        )

    def open_run(self, run) -> None:
        """A run handed over by the Train tab (app.train.runs.Run), or a list of runs (two or
        more go on one plane)."""
        if isinstance(run, list | tuple):
            if len(run) >= 2:
                self.open_runs(run)
                return
            run = run[0]
        self.set_source(str(run.file) if run.file else None, str(run.checkpoint))
        self.message.emit(f"Landscape: {run.name} is ready; press Compute")

    def _show_source(self) -> None:
        if self.run_sources:
            self.source.setText(self.runs_source_html())
        elif self.model_file:
            if self.model_check is not None:
                text = self.model_check.html()
            else:
                text = f"model file: {html.escape(self.model_file)}"
                if self.checkpoint:
                    text += f"<br>weights: {html.escape(self.checkpoint)}"
                text += "<br>" + ("checking it..." if self.loader else "not usable yet: see below")
            self.source.setText(text)
        elif not (self.run_file or self.checkpoint):
            text = (
                "No run yet. Train one in the Train tab and press <b>Open in Landscape</b>, or "
                "open a run's JSON, a checkpoint or your own model file here."
            )
            last = self.remembered_model_file()
            if last:
                text += f"<br>Last model file: {html.escape(last)} (<b>Reload</b> opens it)"
            self.source.setText(text)
        else:
            parts = []
            if self.run_file:
                parts.append(f"run: {html.escape(self.run_file)}")
            if self.checkpoint:
                parts.append(f"checkpoint: {html.escape(self.checkpoint)}")
            self.source.setText("<br>".join(parts))

    def _ready(self) -> bool:
        """Something to compute on, and nothing being loaded."""
        if self.loader is not None:
            return False
        if self.run_sources:
            return True
        if self.model_file:
            return self.model_check is not None  # a file that failed its check waits for Reload
        return bool(self.run_file or self.checkpoint)

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
            self, "Open landscape", "", "Landscapes (*.npz *.h5 *.hdf5)"
        )
        if path:
            self.open_landscape(path)

    def open_landscape(self, path: str) -> bool:
        """Show a saved landscape (.npz, or .h5/.hdf5 from loss-landscape or LossLab; a 1-D
        file goes to the line plot); False (and the reason below) when it cannot be."""
        if self.job is not None:
            self.error.setText("A landscape is being computed: cancel it first")
            return False
        try:
            land = formats.load(path)
        except (LandscapeError, OSError) as exc:
            self.error.setText(f"Cannot open the landscape: {exc}")
            return False
        self.error.setText("")
        if isinstance(land, Line):
            self.show_line(land, str(path))
            self.status.setText(
                f"Opened {html.escape(str(path))}: a 1-D loss-landscape file ({len(land.t)} "
                "points along one direction), drawn in the line plot below; it has no plane"
            )
        else:
            self.show_landscape(land)
            self.status.setText(f"Opened {html.escape(str(path))}")
        self.file_opened.emit("landscape", str(path))
        return True

    def show_line(self, line: Line, path: str) -> None:
        """A 1-D landscape file: the line plot along its direction, no plane."""
        self.landscape = None
        self.path = None
        self.view.show_empty("A 1-D landscape: see the line plot below")
        self.line.set_line(line.t, line.loss, "a (the file's direction; 0 = its centre)")
        self.facts.setText(line_facts_html(line, path))
        self._update_3d()
        self._set_running(self.job is not None)

    def show_landscape(self, land: Landscape) -> None:
        """Draw a computed (or loaded) landscape with everything that came with it."""
        self.landscape = land
        self.view.set_plane(land.alphas, land.betas)
        self.view.set_grid(land.loss)
        x = land.extras
        self.path = None
        if land.directions == "hessian" and not land.meta.get("runs"):
            self.view.set_axes_words(("top Hessian eigenvector", "second eigenvector"))
        if land.meta.get("runs"):
            self.show_runs_landscape(land)
        elif "path" in x:
            self.path = lj.PathResult(
                x["path"],
                x["path_off"],
                x["path_steps"],
                x["path_loss"],
                x["path_plane_loss"],
                [int(i) for i in x["path_epochs"]],
            )
            self.view.set_path(self.path)
        if not land.meta.get("runs"):
            self.line.set_line(x.get("line_t"), x.get("line_loss"))
        self._facts()
        self._update_3d()
        self._set_running(self.job is not None)

    # --- computing ------------------------------------------------------------------------

    def request(self) -> lj.Request:
        return replace(self.request_base(), directions=self.directions.currentData())

    def request_base(self) -> lj.Request:
        """The plane's settings, whatever its directions."""
        return lj.Request(
            span=float(self.span.value()),
            resolution=int(self.resolution.value()),
            samples=int(self.samples.value()),
            precision=self.precision.currentData(),
            seed=int(self.seed.value()),
            eigenvalues=int(self.eigen.value()),
            device=self.device.currentData(),
            bias_bn=self.bias_bn.isChecked(),
        )

    def compute(self) -> None:
        if self.job is not None or not self._ready():
            return
        if self.run_sources:
            self.compute_runs()
            return
        req = self.request()
        run_file, checkpoint, model_file = self.run_file, self.checkpoint, self.model_file
        cancel = self._cancel = threading.Event()

        def work():
            if model_file:  # imported again: Compute uses the file as it is now
                subject = lj.load_model_subject(model_file, checkpoint, run_file)
            else:
                subject = lj.load_subject(checkpoint, run_file)
            yield subject
            if cancel.is_set():
                return
            partial = own.partial_file(subject)
            for e in lj.run(subject, req, should_stop=cancel.is_set, partial=partial):
                if isinstance(e, lj.Done) and partial is not None:
                    partial.unlink(missing_ok=True)  # complete: nothing left to resume
                yield e

        self._start_job(work, req)
        self.status.setText("Loading the model and its data...")

    def _start_job(self, work, req: lj.Request) -> None:
        self.error.setText("")
        # all cores: the user is waiting on this (training, when it starts, leaves one free)
        from app.openmp import use_threads

        use_threads(os.cpu_count() or 1)
        self.finished_ok = False
        self.landscape = None
        self.path = None
        self.line.set_line(None, None, has_run=bool(self.run_file))
        self.facts.setText("")
        self.view.clear_hover()  # it described the grid being replaced
        self._rows = 0
        self._resumed = 0  # grid points that came from the partial file
        self.resumed: lj.Resumed | None = None
        self._note = ""  # the resume note, in bold above the status while the grid computes
        self._clock: GridClock | None = None
        self._req = req
        self.job = Job(work, self)
        job = self.job
        job.item.connect(lambda e, j=job: j is self.job and self._event(e))
        job.failed.connect(lambda exc, j=job: j is self.job and self._failed(describe(exc)))
        job.finished.connect(lambda ok, j=job: self._done(j, ok))
        self._set_running(True)
        self.progress.setValue(0)
        job.start()

    def cancel(self) -> None:
        """Stop between two rounds of the grid: the core then saves the partial file (the
        worker is not cut off mid-grid, which would lose the rows since the last save)."""
        if self.job is not None:
            self._cancel.set()
            self.status.setText("Cancelling...")

    def shutdown(self) -> None:
        self.curvature.shutdown()
        if self.view3d is not None:
            self.view3d.release()
        if self.job is not None:
            self._cancel.set()
            self.job.thread.wait(30_000)  # the grid's rows reach the partial file first
            self.job.stop(30_000)
            self.job = None
        for loader in list(self._loaders):  # an import that hangs gives up in time
            loader.stop(LOADER_WAIT_MS)
        self._loaders.clear()
        self.loader = None

    def _event(self, e) -> None:
        if self._multi_event(e):
            return
        if isinstance(e, lj.Subject):
            self._own = e.experiment is not None
            self.status.setText(subject_text(e))
            self.progress.setFormat("preparing (big grids compile the evaluator first)...")
        elif isinstance(e, lj.Planned):
            self.view.set_plane(e.alphas, e.betas)
            if e.directions == "hessian":
                self.view.set_axes_words(("top Hessian eigenvector", "second eigenvector"))
            self.view.set_scale("log" if self.log.isChecked() else "linear")
            self._clock = GridClock(len(e.alphas) * len(e.betas))
            evaluated = (
                f"all {e.n_total} of the file's batches"
                if self._own
                else samples_text(e.n_eval, e.n_total)
            )
            self.status.setText(self.status.text() + f"<br>evaluating on {evaluated}")
            self.progress.setFormat(f"grid row 0/{len(e.betas)}")
        elif isinstance(e, lj.Resumed):
            self.resumed = e
            # the file is in the tooltip: its long name (the run's) did not wrap in the panel
            if e.why:
                note = e.why.replace(e.path, "the partial grid kept")
            else:
                self._resumed = e.done
                self._clock = GridClock(max(1, e.total - e.done))  # the speed of new points
                note = f"resuming from the partial grid: {e.done} of {e.total} points done"
            # first, right under the progress bar: last, it was below the fold of the panel
            self._note = html.escape(note)
            self.status.setText(f"<b>{self._note}</b><br>{self.status.text()}")
            self.status.setToolTip(f"partial grid: {e.path}")
            self.message.emit(note[:1].upper() + note[1:])
        elif isinstance(e, Row):
            self._rows += 1
            self.view.set_row(e.index, e.loss)
            rows = self._req.resolution
            new = max(0, self._rows * rows - self._resumed)
            eta = self._clock.tick(new).text() if self._clock and new else ""
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
            if self._note:  # the resume note was news while computing; now it is a fact
                self.status.setText(
                    self.status.text().replace(f"<b>{self._note}</b>", self._note, 1)
                )
            self._facts()
            self.message.emit(f"Landscape computed in {e.seconds:.1f} s")
        else:
            raise TypeError(f"Unknown landscape event: {type(e).__name__}")

    def _facts(self) -> None:
        if self.landscape is not None and self.landscape.meta.get("runs"):
            self.facts.setText(facts_of_runs(self.landscape))
        elif self.landscape is not None:
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
            self.status.setText(
                "Cancelled: the rows computed so far are shown, and kept: Compute with the "
                "same settings resumes from them."
            )
            self.progress.setFormat("cancelled")

    def _set_running(self, on: bool) -> None:
        self.compute_btn.setEnabled(not on and self._ready())
        self.cancel_btn.setEnabled(on)
        for b in (self.png_btn, self.svg_btn, self.npz_btn):
            b.setEnabled(not on and self.view.loss is not None)
        for b in (self.open_model_btn, self.reload_btn):
            b.setEnabled(not on)
        self.weights_btn.setEnabled(not on and bool(self.model_file))

    def set_theme(self, dark: bool) -> None:
        self.view.set_theme(dark)
        self.line.set_theme(dark)
        self.curvature.set_theme(dark)


__all__ = ["LandscapeWorkspace"]
