"""The Landscape workspace's side panel: the source, the plane's settings, progress, exports.

Every input says what it does and its range in its tooltip. The panel scrolls, so the
workspace fits a 1280x720 screen.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from app.landscape.source import OWN_CODE_NOTE
from core.landscape.sampling import AUTO_SAMPLES, MAX_SAMPLES

DIRECTION_LABELS = {
    "random": "random, filter-normalised",
    "pca": "PCA of the training path(s)",
    "init-final": "initial -> final weights",
    "hessian": "top-2 Hessian eigenvectors",
    "endpoints": "end points of runs A and B",
}
# what each kind of plane can be computed for: one run, several, or both
ONE_RUN = ("random", "pca", "init-final", "hessian")
SEVERAL_RUNS = ("endpoints", "pca", "random", "hessian")
SIDE_WIDTH = 330  # wide enough for the longest direction label and the three open buttons


def _named(widget: QtWidgets.QWidget, name: str, tip: str = "") -> QtWidgets.QWidget:
    widget.setObjectName(name)
    if tip:
        widget.setToolTip(tip)
    return widget


class LandscapeControls(QtWidgets.QScrollArea):
    """The inputs (as attributes) in a scroll area; the workspace connects them."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("landscape_controls")
        self.setWidgetResizable(True)
        self.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        panel = QtWidgets.QWidget()
        self.setWidget(panel)
        sl = QtWidgets.QVBoxLayout(panel)
        sl.setContentsMargins(4, 0, 4, 0)
        sl.addWidget(self._source_box())
        sl.addWidget(self._runs_box())
        sl.addLayout(self._form())
        run_buttons = QtWidgets.QHBoxLayout()
        self.compute_btn = _named(
            QtWidgets.QPushButton("Compute"),
            "landscape_compute",
            "Compute the loss on the plane (on a worker thread; the heatmap fills in row by row)",
        )
        self.cancel_btn = _named(
            QtWidgets.QPushButton("Cancel"),
            "landscape_cancel",
            "Stop computing; the rows done so far stay on the plot",
        )
        run_buttons.addWidget(self.compute_btn)
        run_buttons.addWidget(self.cancel_btn)
        sl.addLayout(run_buttons)
        self.progress = _named(
            QtWidgets.QProgressBar(),
            "landscape_progress",
            "Grid rows done, points per second and the time left for the grid",
        )
        self.progress.setTextVisible(True)
        sl.addWidget(self.progress)
        self.status = _named(QtWidgets.QLabel(""), "landscape_status")
        self.status.setWordWrap(True)
        sl.addWidget(self.status)
        self.error = _named(QtWidgets.QLabel(""), "landscape_error")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #e6194b;")
        sl.addWidget(self.error)
        sl.addStretch(1)
        sl.addLayout(self._exports())
        panel.setMinimumWidth(SIDE_WIDTH - 20)
        self.setMinimumWidth(SIDE_WIDTH)

    def _source_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Source")
        bl = QtWidgets.QVBoxLayout(box)
        self.source = _named(QtWidgets.QLabel(""), "landscape_source")
        self.source.setWordWrap(True)
        self.source.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        bl.addWidget(self.source)
        self.open_run_btn = _named(
            QtWidgets.QPushButton("Run..."),
            "landscape_open_run",
            "Open a run's JSON (saved by the Train tab or losslab train --out): its best "
            "checkpoint and its recorded path, for every kind of directions",
        )
        self.open_ck_btn = _named(
            QtWidgets.QPushButton("Checkpoint..."),
            "landscape_open_checkpoint",
            "Open a LossLab checkpoint (.pt) alone: random directions only (no recorded path)",
        )
        self.open_land_btn = _named(
            QtWidgets.QPushButton("Landscape..."),
            "landscape_open_landscape",
            "Open a saved landscape: LossLab's .npz, or an .h5/.hdf5 surface file written by "
            "loss-landscape (2-D, or 1-D shown in the line plot) or by LossLab",
        )
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(QtWidgets.QLabel("Open"))
        for b in (self.open_run_btn, self.open_ck_btn, self.open_land_btn):
            buttons.addWidget(b)
        bl.addLayout(buttons)
        trust = (
            "The file is your own Python code: LossLab runs it as `python file.py` would "
            "(open only files you trust). "
        )
        self.open_model_btn = _named(
            QtWidgets.QPushButton("Model file..."),
            "landscape_open_model",
            trust + "Open an experiment file (.py) defining model() and batches(), and "
            "optionally loss(model, batch): the landscape of your own network. The loss is "
            "the mean of loss(model, batch) over the file's batches. Imported on a worker "
            "thread; see the examples (losslab --examples prints their folder)",
        )
        self.weights_btn = _named(
            QtWidgets.QPushButton("Weights..."),
            "landscape_open_weights",
            "The model file's weights: a checkpoint in any usual format (LossLab's, a plain "
            "state_dict, Lightning's, ...; read with weights_only=True, never run). Without "
            "one, the centre is the model as model() builds it",
        )
        self.reload_btn = _named(
            QtWidgets.QPushButton("Reload"),
            "landscape_reload_model",
            trust + "Import the model file again (after you edit it), or open the model file "
            "you used last time",
        )
        own = QtWidgets.QHBoxLayout()
        own.addWidget(QtWidgets.QLabel("Own"))
        for b in (self.open_model_btn, self.weights_btn, self.reload_btn):
            own.addWidget(b)
        bl.addLayout(own)
        self.model_note = _named(QtWidgets.QLabel(OWN_CODE_NOTE), "landscape_model_note")
        self.model_note.setWordWrap(True)
        self.model_note.setToolTip(trust.strip())
        self.model_note.setStyleSheet("color: #8c8f94;")
        bl.addWidget(self.model_note)
        return box

    def _runs_box(self) -> QtWidgets.QGroupBox:
        """Several runs on one plane: which two are A and B (shown only for several runs)."""
        box = self.runs_box = _named(QtWidgets.QGroupBox("Runs A and B"), "landscape_runs")
        form = QtWidgets.QFormLayout(box)
        self.run_a = _named(
            QtWidgets.QComboBox(),
            "landscape_run_a",
            "Run A: the line and its barrier start at its end point (t = 0); the endpoints "
            "plane's first direction points to it; the pca, random and hessian planes are "
            "centred on it",
        )
        self.run_b = _named(
            QtWidgets.QComboBox(),
            "landscape_run_b",
            "Run B: the line and its barrier end at its end point (t = 1); the endpoints "
            "plane's second direction reaches it",
        )
        for combo in (self.run_a, self.run_b):
            combo.setMinimumWidth(120)
        form.addRow("A", self.run_a)
        form.addRow("B", self.run_b)
        box.setVisible(False)
        return box

    def set_runs(self, names: list[str]) -> None:
        """Offer the runs as A and B (hidden for one run) and the planes that suit them."""
        several = len(names) >= 2
        self.runs_box.setVisible(several)  # the runs themselves are listed under Source
        for combo, default in ((self.run_a, 0), (self.run_b, 1)):
            combo.blockSignals(True)
            combo.clear()
            for i, n in enumerate(names):
                combo.addItem(f"{i + 1}. {n}", i)
            combo.setCurrentIndex(min(default, max(0, len(names) - 1)))
            combo.blockSignals(False)
        # several runs compute no eigenvalues (run_many has no such step): a live spin box
        # there promised numbers that never came
        self.eigen.setEnabled(not several)
        allowed = SEVERAL_RUNS if several else ONE_RUN
        model = self.directions.model()
        for i in range(self.directions.count()):
            model.item(i).setEnabled(self.directions.itemData(i) in allowed)
        if several:  # the plane made for them; the others stay a click away
            self.directions.setCurrentIndex(self.directions.findData("endpoints"))
        elif self.directions.currentData() not in allowed:
            self.directions.setCurrentIndex(0)

    def _form(self) -> QtWidgets.QFormLayout:
        self.directions = _named(
            QtWidgets.QComboBox(),
            "landscape_directions",
            "The two directions of the plane through the checkpoint: Gaussian random "
            "directions, filter-normalised (seeded; biases and BatchNorm left out unless "
            "ticked below); the top two principal "
            "components of the recorded training path; initial -> final weights and a "
            "random direction across it (these two need a run's JSON with its path); or the "
            "Hessian's top two eigenvectors at the checkpoint (its two sharpest directions, "
            "each scaled to the length of the weights). For several runs: the end points of "
            "runs A and B (a: A's end minus the shared start; b: the part of B's orthogonal "
            "to it; through three end points when the runs start from different weights), "
            "PCA of all their paths, or random / hessian directions centred on run A.",
        )
        for key, label in DIRECTION_LABELS.items():
            self.directions.addItem(label, key)
        self.span = _named(
            QtWidgets.QDoubleSpinBox(),
            "landscape_range",
            "The grid covers -range .. range along both directions (0 .. 1000). auto: 1 for "
            "random directions, else the projected training path with a 25% margin",
        )
        self.span.setRange(0.0, 1000.0)
        self.span.setSingleStep(0.25)
        self.span.setSpecialValueText("auto")
        self.span.setValue(0.0)
        self.resolution = _named(
            QtWidgets.QSpinBox(),
            "landscape_resolution",
            "Grid points per side (5 .. 201). The time grows with its square: 41 is 1,681 "
            "points; an odd number puts a grid point on the checkpoint",
        )
        self.resolution.setRange(5, 201)
        self.resolution.setValue(41)
        self.samples = _named(
            QtWidgets.QSpinBox(),
            "landscape_samples",
            "Validation samples evaluated at each point, evenly spread and always the same "
            f"ones (1 .. {MAX_SAMPLES:,}; more than the set holds means all of it). auto: the "
            "whole validation set Train used when it is small (sine fit, linear regression, "
            f"synthetic digits), so the checkpoint's loss is the run's; else {AUTO_SAMPLES:,}. "
            "A summed loss on a sample is scaled up to the whole set.",
        )
        self.samples.setRange(0, MAX_SAMPLES)
        self.samples.setSingleStep(250)
        self.samples.setSpecialValueText("auto")
        self.samples.setValue(0)
        self.precision = _named(
            QtWidgets.QComboBox(),
            "landscape_precision",
            "fp32: exact. bfloat16: the layers after the first in bfloat16, a faster preview "
            "about 1% off (labelled approximate)",
        )
        self.precision.addItem("fp32 (exact)", "fp32")
        self.precision.addItem("bfloat16 preview (~1% off)", "bf16")
        self.seed = _named(
            QtWidgets.QSpinBox(),
            "landscape_seed",
            "Seed of the random directions (0 .. 2,147,483,647): the same seed gives the "
            "same plane",
        )
        self.seed.setRange(0, 2**31 - 1)
        self.eigen = _named(
            QtWidgets.QSpinBox(),
            "landscape_eigenvalues",
            "How many of the Hessian's largest eigenvalues at the checkpoint to compute "
            "(0 .. 5; 0 skips): power iteration on Hessian-vector products",
        )
        self.eigen.setRange(0, 5)
        self.eigen.setValue(2)
        self.device = _named(
            QtWidgets.QComboBox(),
            "landscape_device",
            "Where the model, its data and the directions go: cpu; cuda (the GPU, when there "
            "is one); auto (cuda where there is one, else cpu)",
        )
        for key in ("cpu", "cuda", "auto"):
            self.device.addItem(key, key)
        if not _has_cuda():
            self.device.model().item(1).setEnabled(False)
            self.device.model().item(1).setToolTip("no CUDA device here")
        self.bias_bn = _named(
            QtWidgets.QCheckBox("biases and BatchNorm in random directions"),
            "landscape_bias_bn",
            "Filter-normalised random directions leave biases and BatchNorm parameters out "
            "(zero there), as Li et al. do (loss-landscape's --xignore biasbn). Tick to move "
            "them too",
        )
        self.log = _named(
            QtWidgets.QCheckBox("log colour scale"),
            "landscape_log",
            "Colour by log10 of the loss: detail near the minimum when the loss spans decades",
        )
        self.view3d_box = _named(
            QtWidgets.QCheckBox("3-D terrain"),
            "landscape_3d",
            "The landscape as terrain with the path on it (needs OpenGL)",
        )
        for w in (self.directions, self.span, self.resolution, self.samples, self.precision):
            w.setMinimumWidth(120)
        form = QtWidgets.QFormLayout()
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Directions", self.directions)
        form.addRow("Range", self.span)
        form.addRow("Resolution", self.resolution)
        form.addRow("Samples", self.samples)
        form.addRow("Precision", self.precision)
        form.addRow("Seed", self.seed)
        form.addRow("Eigenvalues", self.eigen)
        form.addRow("Device", self.device)
        form.addRow(self.bias_bn)
        form.addRow(self.log)
        form.addRow(self.view3d_box)
        return form

    def _exports(self) -> QtWidgets.QHBoxLayout:
        exports = QtWidgets.QHBoxLayout()
        self.png_btn = _named(
            QtWidgets.QPushButton("PNG..."), "landscape_export_png", "Save the plots as PNG"
        )
        self.svg_btn = _named(
            QtWidgets.QPushButton("SVG..."),
            "landscape_export_svg",
            "Save the plots as SVG (lines and text as vectors)",
        )
        self.npz_btn = _named(
            QtWidgets.QPushButton("Data..."),
            "landscape_export_data",
            "Save the landscape's data (axes, grid, directions, centre, path, line, "
            "eigenvalues) as LossLab's .npz, as .h5 in loss-landscape's layout (its plotting "
            "scripts read it), or as .vtp for ParaView (the surface and the path)",
        )
        exports.addWidget(QtWidgets.QLabel("Export"))
        for b in (self.png_btn, self.svg_btn, self.npz_btn):
            exports.addWidget(b)
        return exports


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


__all__ = ["DIRECTION_LABELS", "ONE_RUN", "SEVERAL_RUNS", "LandscapeControls"]
