"""The curvature panel: the Hessian's spectral density, top eigenvalues, trace and per-layer top
eigenvalues of the Landscape's model, computed on a worker thread.

The Landscape workspace hands it what it computes on (``set_source``: the same run file,
checkpoint and model file as the landscape); Compute loads the model, times one
Hessian-vector product and shows the whole cost before the long part. An analysis longer than
``CONFIRM_SECONDS`` waits for the user to press Start; Cancel stops it between two products.
"""

from __future__ import annotations

import html
import threading

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.colors import PALETTE
from app.theme import style_legend, style_plot
from app.widgets import error_label
from app.workers import Job, describe
from core.landscape import curvature_job as cj
from core.landscape.progress import duration
from core.landscape.subject import Subject

CONFIRM_SECONDS = 20.0  # longer analyses wait for Start: the estimate is read first
DENSITY_FLOOR = 1e-7  # of the peak: the log axis shows seven decades (Gaussian tails vanish)
DENSITY_COLOUR = PALETTE[2]
BAR_COLOUR = PALETTE[3]


class DensityPlot(pg.PlotWidget):
    """The spectral density on a log axis: the bulk near zero and the outliers both show."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, enableMenu=False)
        self.setObjectName("curvatureDensity")
        self.setLabel("bottom", "Hessian eigenvalue")
        self.setLabel("left", "spectral density (log)")
        self.setLogMode(y=True)
        self.getAxis("left").setWidth(72)  # room for "0.0001" beside the axis title
        self.legend = self.addLegend(offset=(-10, 10))
        self.curve = self.plot(pen=pg.mkPen(DENSITY_COLOUR, width=2), name="density (SLQ)")
        self.tops = pg.ScatterPlotItem(
            size=9, brush=pg.mkBrush(PALETTE[0]), pen=None, name="top eigenvalues (Lanczos)"
        )
        self.addItem(self.tops)
        self.setMinimumSize(280, 180)
        self._empty_range()

    def _empty_range(self) -> None:
        # empty, pyqtgraph's default 0..1 is one decade (1..10) on this log axis: only the
        # minor labels 2..9 showed, as if the axis were broken. Four decades say "log" at once
        self.setXRange(0, 1, padding=0.02)
        self.setYRange(-4, 0.3, padding=0)  # as set_density: the top label whole

    def set_theme(self, dark: bool) -> None:
        style_plot(self, dark)
        style_legend(self.legend, dark)

    def set_density(self, density, top: np.ndarray | None) -> None:
        if density is None:
            self.curve.setData([], [])
            self.tops.setData([], [])
            self._empty_range()
            return
        peak = float(density.values.max())
        values = np.maximum(density.values, peak * DENSITY_FLOOR)  # (G,)
        self.curve.setData(density.grid, values)
        if top is not None and len(top):
            # the top eigenvalues as dots on the curve (log10: the item is in log space)
            y = np.interp(top, density.grid, values)
            self.tops.setData(top, np.log10(y))
        else:
            self.tops.setData([], [])
        # the floor sits on the bottom edge: the tails end there instead of in a flat line
        self.setXRange(float(density.grid[0]), float(density.grid[-1]), padding=0.02)
        self.setYRange(np.log10(peak * DENSITY_FLOOR), np.log10(peak) + 0.3, padding=0)


class LayerBars(pg.PlotWidget):
    """The top eigenvalue of each layer as horizontal bars, the layers named on the left."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, enableMenu=False)
        self.setObjectName("curvatureLayers")
        self.setLabel("bottom", "top eigenvalue per layer")
        self.setToolTip("the top eigenvalue of each layer's block of the Hessian (its weights "
                        "and bias together)")  # fmt: skip
        self.bars = pg.BarGraphItem(x0=[], y=[], width=[], height=0.6, brush=BAR_COLOUR)
        self.addItem(self.bars)
        self.setMinimumSize(280, 120)

    def set_layers(self, layers: list[cj.LayerCurvature]) -> None:
        n = len(layers)
        y = np.arange(n)[::-1]  # the first layer on top
        vals = np.array([r.top_eigenvalue for r in layers], dtype=float)
        self.bars.setOpts(x0=np.zeros(n), y=y, width=vals, height=0.6)
        ticks = [(float(y[i]), f"{r.name} ({r.kind})") for i, r in enumerate(layers)]
        self.getAxis("left").setTicks([ticks])
        self.enableAutoRange()


class CurvaturePanel(QtWidgets.QWidget):
    """Spectral density, top-k eigenvalues, trace and per-layer bars, with Compute/Cancel.

    API for the Landscape workspace: ``set_source(run_file, checkpoint, model_file)`` when its
    source changes, ``set_theme(dark)``, ``shutdown()`` on close. ``result`` holds the last
    :class:`~core.landscape.curvature_job.CurvatureResult`."""

    message = QtCore.Signal(str)  # for the window's status bar

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("curvaturePanel")
        self.run_file: str | None = None
        self.checkpoint: str | None = None
        self.model_file: str | None = None
        self.samples, self.device = 0, "cpu"
        self.job: Job | None = None
        self._cancel = threading.Event()
        self._go = threading.Event()
        self.result: cj.CurvatureResult | None = None
        self.planned: cj.Planned | None = None
        self._finished = False  # the running job's result has come
        self._source_changed = False  # the running job was cancelled by a new source
        self._build()
        self._set_running(False)

    def _named(self, widget, name: str):
        widget.setObjectName(name)
        return widget

    def _build(self) -> None:
        self.top = self._named(QtWidgets.QSpinBox(), "curvatureTop")
        self.top.setRange(0, 50)
        self.top.setValue(5)
        self.top.setPrefix("top ")
        self.top.setToolTip("how many of the largest Hessian eigenvalues (Lanczos)")
        self.trace = self._named(QtWidgets.QCheckBox("trace"), "curvatureTrace")
        self.trace.setToolTip("the trace by Hutchinson's method, with its standard error")
        self.density = self._named(QtWidgets.QCheckBox("density"), "curvatureDensityBox")
        self.density.setToolTip("the spectral density by stochastic Lanczos quadrature")
        self.per_layer = self._named(QtWidgets.QCheckBox("per layer"), "curvaturePerLayer")
        self.per_layer.setToolTip("the top eigenvalue of each layer's block of the Hessian")
        for box in (self.trace, self.density, self.per_layer):
            box.setChecked(True)
        self.compute_btn = self._named(QtWidgets.QPushButton("Compute"), "curvatureCompute")
        self.cancel_btn = self._named(QtWidgets.QPushButton("Cancel"), "curvatureCancel")
        self.compute_btn.clicked.connect(self.compute)
        self.cancel_btn.clicked.connect(self.cancel)
        row = QtWidgets.QHBoxLayout()
        for w in (self.top, self.trace, self.density, self.per_layer):
            row.addWidget(w)
        row.addStretch(1)
        row.addWidget(self.compute_btn)
        row.addWidget(self.cancel_btn)
        self.progress = self._named(QtWidgets.QProgressBar(), "curvatureProgress")
        self.progress.setTextVisible(True)
        self.progress.setFormat("")
        self.status = self._named(QtWidgets.QLabel(""), "curvatureStatus")
        self.status.setWordWrap(True)
        self.error = error_label("curvatureError")
        self.plot = DensityPlot()
        self.bars = LayerBars()
        self.summary = self._named(QtWidgets.QLabel(""), "curvatureSummary")
        self.summary.setWordWrap(True)
        self.summary.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop)
        self.summary.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setMinimumWidth(180)
        right = QtWidgets.QWidget()
        rl = QtWidgets.QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.summary)  # the numbers at their full height; the bars take the rest
        rl.addWidget(self.bars, 1)
        split = QtWidgets.QSplitter()
        split.addWidget(self.plot)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(row)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.error)
        lay.addWidget(split, 1)
        self.status.setText("Open a run, a checkpoint or your own model in Landscape first.")

    # --- API --------------------------------------------------------------------------------

    def set_source(
        self,
        run_file: str | None,
        checkpoint: str | None,
        model_file: str | None = None,
        samples: int = 0,
        device: str = "cpu",
    ) -> None:
        """What to analyse: as the Landscape's ``set_source`` (a run's JSON and/or a
        checkpoint, or an experiment file with optional weights). ``samples``: validation
        samples the loss is taken on (0: automatic, as the landscape)."""
        changed = (run_file, checkpoint, model_file) != (
            self.run_file,
            self.checkpoint,
            self.model_file,
        )
        self.run_file, self.checkpoint, self.model_file = run_file, checkpoint, model_file
        self.samples, self.device = samples, device
        self.error.setText("")
        if self.job is None:
            self.status.setText("Press Compute." if self._ready() else "Nothing to analyse yet.")
            self._set_running(False)
        elif changed:
            # its result would be for the old source, and a job waiting for Start kept the
            # button: Compute then started the OLD analysis instead of one of the new source
            self._cancel.set()
            self._source_changed = True
            self.compute_btn.setText("Compute")
            self.compute_btn.setEnabled(False)
            self.status.setText("The source changed: stopping the analysis of the previous one...")
        # else the same source again: a job waiting for Start keeps its Start button

    def request(self) -> cj.CurvatureRequest:
        return cj.CurvatureRequest(
            top=self.top.value(),
            trace=self.trace.isChecked(),
            density=self.density.isChecked(),
            per_layer=self.per_layer.isChecked(),
        )

    def _ready(self) -> bool:
        return bool(self.run_file or self.checkpoint or self.model_file)

    # --- the work ---------------------------------------------------------------------------

    def compute(self) -> None:
        if self.job is not None:
            if self.planned is not None and not self._go.is_set():  # the button says Start
                self._go.set()
                self.compute_btn.setEnabled(False)
                self.status.setText(self._plan_text(self.planned, waiting=False))
            return
        if not self._ready():
            return
        req = self.request()
        try:
            req.check()
        except ValueError as exc:
            self.error.setText(str(exc))
            return
        run_file, checkpoint, model_file = self.run_file, self.checkpoint, self.model_file
        samples, device = self.samples, self.device
        cancel = self._cancel = threading.Event()
        go = self._go = threading.Event()

        def work():
            from core.landscape.problems import problem_for, resolve_device
            from core.landscape.subject import load_model_subject, load_subject

            if model_file:
                subject = load_model_subject(model_file, checkpoint, run_file)
            else:
                subject = load_subject(checkpoint, run_file)
            yield subject
            problem = problem_for(subject, samples, resolve_device(device))
            for e in cj.analyse_problem(problem, req):
                if cancel.is_set():
                    return
                yield e
                if isinstance(e, cj.Planned) and e.seconds > CONFIRM_SECONDS:
                    while not go.wait(0.05):  # the user reads the cost and presses Start
                        if cancel.is_set():
                            return

        self.error.setText("")
        self.planned = None
        self._finished = False
        self._source_changed = False
        self.progress.setRange(0, 0)  # busy until the cost is known
        self.progress.setFormat("")
        self.status.setText("Loading the model and its data...")
        self.job = job = Job(work, self)
        job.item.connect(lambda e, j=job: j is self.job and self._event(e))
        job.failed.connect(lambda exc, j=job: j is self.job and self._failed(describe(exc)))
        job.finished.connect(lambda ok, j=job: self._done(j, ok))
        self._set_running(True)
        job.start()

    def cancel(self) -> None:
        """Stop between two Hessian-vector products."""
        if self.job is not None:
            self._cancel.set()
            self.status.setText("Cancelling...")

    def shutdown(self) -> None:
        if self.job is not None:
            self._cancel.set()
            self.job.stop(30_000)
            self.job = None

    def _plan_text(self, e: cj.Planned, waiting: bool) -> str:
        layers = f", {len(e.layers)} layers" if e.layers else ""
        text = (
            f"{e.parameters:,} parameters{layers}: at most {e.products:,} Hessian-vector "
            f"products, up to about {duration(e.seconds)} "
            f"(one took {cj.product_time(e.seconds_per_product)})."
        )
        return text + (" Press <b>Start</b> to go on, or Cancel." if waiting else "")

    def _event(self, e) -> None:
        if isinstance(e, cj.Planned):
            self.planned = e
            self.progress.setRange(0, max(1, e.products))
            self.progress.setValue(0)
            waiting = e.seconds > CONFIRM_SECONDS
            self.status.setText(self._plan_text(e, waiting))
            if waiting:
                self.compute_btn.setText(f"Start ({duration(e.seconds)})")
                self.compute_btn.setEnabled(True)
        elif isinstance(e, cj.Progress):
            self.progress.setValue(e.done)
            self.progress.setFormat(f"{e.stage}: %v / %m products")
        elif isinstance(e, cj.Done):
            self._finished = True
            self.show_result(e.result)
            self.progress.setValue(self.progress.maximum())
            self.progress.setFormat(f"done in {duration(e.result.seconds)}")
            self.message.emit(f"Curvature computed in {duration(e.result.seconds)}")
        elif isinstance(e, Subject):  # loaded
            self.status.setText(f"{html.escape(e.name)}: {html.escape(e.source)}; timing one "
                                "Hessian-vector product...")  # fmt: skip
        else:
            raise TypeError(f"Unknown curvature event: {type(e).__name__}")

    def show_result(self, r: cj.CurvatureResult) -> None:
        """Draw a result (also for a result computed elsewhere)."""
        self.result = r
        self.plot.set_density(r.density, r.top_eigenvalues)
        self.bars.set_layers(r.per_layer)
        self.summary.setText(summary_html(r))

    def _failed(self, msg: str) -> None:
        self.error.setText(f"Curvature failed: {msg}")
        self.status.setText("")  # it said "timing one product...", which is over
        self.progress.setFormat("failed")

    def _done(self, job: Job, ok: bool) -> None:
        if job is not self.job:
            return
        self.job = None
        self.progress.setRange(0, max(1, self.progress.maximum()))
        # a cancel while the cost was being read ends the generator early, not with an error
        if self._source_changed and not self._finished:
            self.status.setText("The source changed, so the analysis of the previous one was "
                                "cancelled. Press Compute.")  # fmt: skip
            self.progress.setFormat("cancelled")
        elif not (ok and self._finished) and not self.error.text():
            self.status.setText("Cancelled.")
            self.progress.setFormat("cancelled")
        self._set_running(False)

    def _set_running(self, on: bool) -> None:
        self.compute_btn.setText("Compute")
        self.compute_btn.setEnabled(not on and self._ready())
        self.cancel_btn.setEnabled(on)
        for w in (self.top, self.trace, self.density, self.per_layer):
            w.setEnabled(not on)

    def set_theme(self, dark: bool) -> None:
        self.plot.set_theme(dark)
        style_plot(self.bars, dark)


def summary_html(r: cj.CurvatureResult) -> str:
    """The numbers beside the plot, as rich text."""
    lines = [f"<b>{r.parameters:,}</b> parameters"]
    if r.top_eigenvalues is not None:
        vals = ", ".join(f"{v:.4g}" for v in r.top_eigenvalues)
        lines.append(f"top eigenvalues: <b>{vals}</b>")
        top = float(r.top_eigenvalues[0])
        if top > 0:
            lines.append(f"sharpness λ<sub>max</sub> = {top:.4g}: plain gradient descent is "
                         f"stable here for lr &lt; 2/λ<sub>max</sub> = {2 / top:.3g}")  # fmt: skip
        else:
            lines.append("no positive curvature at the top of the spectrum")
    if r.trace is not None:
        lines.append(f"trace: <b>{r.trace.value:.4g}</b> ± {r.trace.error:.2g} (standard error, "
                     f"{r.trace.samples} probes)")  # fmt: skip
    if r.density is not None:
        d = r.density
        lines.append(f"density: {d.nodes.shape[0]} Lanczos runs × {d.nodes.shape[1]} steps, "
                     f"Gaussian width {d.sigma:.2g}")  # fmt: skip
    lines.append(f"{r.products:,} Hessian-vector products in {duration(r.seconds)}")
    return "<br>".join(lines)


def render_density_png(r: cj.CurvatureResult, path: str, size: tuple[int, int], title: str = ""):
    """The density plot of ``r`` as a PNG of ``size`` (for ``losslab curvature --out x.png``):
    the panel's own plot, rendered offscreen."""
    from app.headless import headless_app

    app = headless_app()
    from pyqtgraph.exporters import ImageExporter
    from PySide6 import QtGui

    from app import export

    plot = DensityPlot()
    try:
        plot.set_theme(False)
        if title:
            plot.setTitle(html.escape(title), color="#202020")
        plot.set_density(r.density, r.top_eigenvalues)
        # the exporter lays the plot out at the size asked for: a widget never shown keeps
        # its default geometry and drew into a corner of the picture
        old = plot.size()
        plot.resize(*size)
        # a widget never shown gets no resize event, and its plot kept the default geometry
        # (the picture came out 640x480 scaled): deliver the event that lays it out
        plot.resizeEvent(QtGui.QResizeEvent(plot.size(), old))
        app.processEvents()
        exporter = ImageExporter(plot.getPlotItem())
        exporter.parameters()["width"] = size[0]  # the height follows the plot's aspect
        exporter.parameters()["background"] = "w"
        image = exporter.export(toBytes=True)
        if image is None or image.isNull():
            raise ValueError("the density plot could not be rendered")
        export.write_png(path, image)
    finally:
        plot.deleteLater()
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)


__all__ = ["CurvaturePanel", "DensityPlot", "LayerBars", "render_density_png", "summary_html"]
