"""Surface picker, transport bar and explanation panel of the Race workspace."""

from __future__ import annotations

import html

import numpy as np
from PySide6 import QtCore, QtWidgets

from app.race.controller import RaceController
from app.race.curvature import legend_html
from app.views.surface_view import ARROWS
from app.widgets import ERROR_RED, error_label
from core.race.explain import StepExplanation
from core.race.formula import FormulaError
from core.race.session import SessionError, SurfaceChoice, load_preset, preset_names
from core.race.surfaces import CATALOGUE


class SurfacePanel(QtWidgets.QGroupBox):
    """Catalogue surfaces, a formula editor with inline errors, and presets."""

    presetChosen = QtCore.Signal(str)

    def __init__(self, controller: RaceController, parent=None) -> None:
        super().__init__("Surface", parent)
        self.c = controller
        self.combo = QtWidgets.QComboBox()
        self.combo.setObjectName("surface_choice")
        for key, s in CATALOGUE.items():
            self.combo.addItem(s.name, key)
            self.combo.setItemData(
                self.combo.count() - 1, s.caption, QtCore.Qt.ItemDataRole.ToolTipRole
            )
        self.combo.addItem("Formula...", "formula")
        self.combo.setToolTip("the loss surface the racers run on (changing it restarts the race)")
        self.combo.activated.connect(self._picked)
        self.formula = QtWidgets.QLineEdit()
        self.formula.setObjectName("formula")
        self.formula.setToolTip(
            "your own f(x, y): numbers, x, y, + - * / ** ^, and functions such as sin, exp, "
            "log, sqrt, abs; Enter or Apply draws it"
        )
        self.formula.setPlaceholderText("e.g. 0.1*x**2 + sin(3*y) + abs(x*y)")
        self.formula.returnPressed.connect(self._apply_formula)
        self.bounds = QtWidgets.QLineEdit("-3, 3, -3, 3")
        self.bounds.setObjectName("bounds")
        self.bounds.setToolTip(
            "plot bounds of a formula: xmin, xmax, ymin, ymax (four numbers, min < max)"
        )
        self.bounds.returnPressed.connect(self._apply_formula)
        self.bounds.textChanged.connect(self._fit_bounds)
        apply = QtWidgets.QPushButton("Apply")
        apply.setObjectName("apply_formula")
        apply.setToolTip("draw the formula over these bounds (restarts the race)")
        apply.clicked.connect(self._apply_formula)
        self.error = error_label("surface_error")
        self.presets = QtWidgets.QComboBox()
        self.presets.setObjectName("presets")
        self.presets.setToolTip("ready-made races that each show one lesson (replaces the race)")
        self.presets.addItem("Presets...", None)
        for name in preset_names():
            try:
                self.presets.addItem(load_preset(name).name, name)
            except SessionError:
                continue  # a broken preset file is skipped, not fatal
        self.presets.activated.connect(self._preset)
        formula_row = QtWidgets.QHBoxLayout()
        formula_row.addWidget(self.formula, 3)
        formula_row.addWidget(self.bounds, 2)
        formula_row.addWidget(apply)
        self.log_colour = QtWidgets.QCheckBox("log colour scale")
        self.log_colour.setObjectName("log_colour")
        self.log_colour.setToolTip("colour by log10(loss): shows the floor of deep valleys")
        surface_row = QtWidgets.QHBoxLayout()
        surface_row.addWidget(self.combo, 1)
        surface_row.addWidget(self.log_colour)
        lay = QtWidgets.QFormLayout(self)
        lay.addRow("Surface", surface_row)
        lay.addRow("f(x, y) =", formula_row)
        lay.addRow("", self.error)
        lay.addRow("Preset", self.presets)
        self._form = lay
        self.sync()

    def _error(self, text: str) -> None:
        """The formula's or bounds' error under them; the row takes no room when empty."""
        self.error.setText(text)
        self._form.setRowVisible(self.error, bool(text))

    def sync(self) -> None:
        self.combo.setCurrentIndex(self.combo.findData(self.c.choice.key))
        self.log_colour.blockSignals(True)
        self.log_colour.setChecked(self.c.surface.scale == "log")  # the surface's suggestion
        self.log_colour.blockSignals(False)
        if self.c.choice.key == "formula":
            self.formula.setText(self.c.choice.formula)
            self.bounds.setText(", ".join(f"{b:g}" for b in self.c.choice.bounds))
        else:
            self.formula.clear()  # the catalogue's formulas are for reading (they use ^)
            self.bounds.setText(", ".join(f"{b:g}" for b in self.c.surface.bounds))
        self._error("")
        self.presets.setCurrentIndex(0)  # a new surface: no longer the preset as loaded

    def show_preset(self, name: str) -> None:
        """Name the preset just loaded in the preset box."""
        self.presets.setCurrentIndex(max(0, self.presets.findData(name)))

    def _fit_bounds(self, text: str) -> None:
        """Wide enough for the whole text (Rastrigin's -5.12, 5.12, -5.12, 5.12)."""
        metrics = self.bounds.fontMetrics()
        self.bounds.setMinimumWidth(
            min(220, metrics.horizontalAdvance(text + "  ") + 2 * metrics.averageCharWidth() + 8)
        )

    def _picked(self, index: int) -> None:
        key = self.combo.itemData(index)
        if key == "formula":
            self.formula.setFocus()
            self.formula.selectAll()
            return
        self.c.set_surface(SurfaceChoice(key))

    def _apply_formula(self) -> None:
        try:
            parts = [float(v) for v in self.bounds.text().replace(";", ",").split(",")]
            if len(parts) != 4:
                raise ValueError
        except ValueError:
            self._error("bounds must be four numbers: xmin, xmax, ymin, ymax")
            return
        try:
            self.c.set_surface(SurfaceChoice("formula", self.formula.text(), tuple(parts)))
        except FormulaError as exc:
            self._error(str(exc))  # the current surface stays as it was
            return
        self._error("")

    def _preset(self, index: int) -> None:
        name = self.presets.itemData(index)
        if name:
            self.presetChosen.emit(name)


class TransportBar(QtWidgets.QWidget):
    def __init__(self, controller: RaceController, parent=None) -> None:
        super().__init__(parent)
        self.c = controller
        style = self.style()
        sp = QtWidgets.QStyle.StandardPixmap
        self.play = QtWidgets.QPushButton(style.standardIcon(sp.SP_MediaPlay), "Play")
        self.play.setToolTip("Play / pause (Space)")
        self.play.clicked.connect(controller.toggle)
        self.step = QtWidgets.QPushButton(style.standardIcon(sp.SP_MediaSkipForward), "Step")
        self.step.setToolTip("One step (Right arrow)")
        self.step.clicked.connect(lambda: controller.step(1))
        self.reset = QtWidgets.QPushButton(style.standardIcon(sp.SP_MediaSkipBackward), "Reset")
        self.reset.setToolTip("Back to the start (R)")
        self.reset.clicked.connect(controller.reset)
        self.play.setObjectName("race_play")
        self.step.setObjectName("race_step")
        self.reset.setObjectName("race_reset")
        self.speed = QtWidgets.QSpinBox()
        self.speed.setObjectName("race_speed")
        self.speed.setRange(1, 500)
        self.speed.setToolTip(
            "steps every racer takes per frame (about 60 frames a second; 1 .. 500)"
        )
        self.speed.valueChanged.connect(self._speed)
        self.speed.setValue(controller.speed)
        self._speed(self.speed.value())
        self.limit = QtWidgets.QSpinBox()
        self.limit.setObjectName("race_limit")
        self.limit.setToolTip("the race pauses at this step (10 .. 100000)")
        self.limit.setRange(10, 100_000)
        self.limit.setSingleStep(500)
        self.limit.setValue(controller.max_steps)
        self.limit.setPrefix("stop at ")
        self.limit.valueChanged.connect(lambda v: setattr(controller, "max_steps", int(v)))
        self.counter = QtWidgets.QLabel("step 0")
        # A fixed width: a label whose size hint changes re-lays out the whole panel, and this
        # one changes every frame.
        self.counter.setFixedWidth(96)
        lay = QtWidgets.QGridLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.play, 0, 0)
        lay.addWidget(self.step, 0, 1)
        lay.addWidget(self.reset, 0, 2)
        lay.addWidget(self.counter, 0, 3)
        lay.addWidget(self.speed, 1, 0, 1, 2)
        lay.addWidget(self.limit, 1, 2, 1, 2)
        controller.playingChanged.connect(self._playing)

    def _speed(self, v: int) -> None:
        self.c.speed = int(v)
        self.speed.setSuffix(" step/frame" if v == 1 else " steps/frame")

    def _playing(self, on: bool) -> None:
        sp = QtWidgets.QStyle.StandardPixmap
        self.play.setText("Pause" if on else "Play")
        self.play.setIcon(self.style().standardIcon(sp.SP_MediaPause if on else sp.SP_MediaPlay))

    def sync(self) -> None:
        self.counter.setText(f"step {self.c.race.step_count}")
        self.speed.blockSignals(True)
        self.speed.setValue(self.c.speed)
        self.speed.blockSignals(False)
        self.speed.setSuffix(" step/frame" if self.c.speed == 1 else " steps/frame")


class KeyLabel(QtWidgets.QLabel):
    """A word-wrapped label whose minimum height is what its wrapped lines need at its width:
    a layout gives a wrapping label its one-line minimum, and a narrow window cut the keys
    off mid-line. (Not setMinimumHeight: QLabel.heightForWidth never answers below it.)"""

    _width = -1

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt's name)
        hint = super().minimumSizeHint()
        if self.width() > 0:
            hint.setHeight(max(hint.height(), self.heightForWidth(self.width())))
        return hint

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        if self.width() != self._width:  # a new width: ask the layout again (height alone: no)
            self._width = self.width()
            self.updateGeometry()


class ExplainPanel(QtWidgets.QWidget):
    """The selected racer's last step, written out with its numbers."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.enabled = QtWidgets.QCheckBox("Step arrows:")
        self.enabled.setObjectName("explain_arrows")
        self.enabled.setToolTip(
            "draw the selected racer's last step on the surface: its gradient, update and "
            "velocity (the arrows show directions; their sizes are in the text below)"
        )
        self.enabled.setChecked(True)
        self.curvature = QtWidgets.QCheckBox("Curvature:")
        self.curvature.setObjectName("explain_curvature_arrows")
        self.curvature.setToolTip(
            "draw the Hessian's eigenvectors at the selected racer: the directions along which "
            "the surface curves most (λ1) and least (λ2)"
        )
        self.curvature.setChecked(True)
        self.text = QtWidgets.QTextBrowser()
        self.text.setObjectName("explain_text")
        self.text.setOpenLinks(False)
        # squares with a grey outline, so the white one shows on a light panel too
        legend = "  ".join(
            f"<span style='color:{c}; background:#777777'>&#9632;</span> {label}"
            for c, label in ARROWS.values()
        )
        keys = QtWidgets.QGridLayout()
        keys.setColumnStretch(1, 1)
        for row, (box, text) in enumerate(
            (
                (self.enabled, legend),
                (self.curvature, legend_html()),
            )
        ):
            key = KeyLabel(text)
            key.setObjectName(f"{box.objectName()}_key")
            key.setTextFormat(QtCore.Qt.TextFormat.RichText)
            key.setWordWrap(True)  # a narrow window wraps it instead of widening the window
            keys.addWidget(box, row, 0)
            keys.addWidget(key, row, 1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(keys)
        lay.addWidget(self.text, 1)

    def show_diverged(self, name: str, step: int, reason: str, curvature: str = "") -> None:
        """``curvature``: the curvature block (HTML) at the point where it is held."""
        if step == 0:
            # not a learning-rate lesson: no lr helps a racer that starts off the surface
            advice = (
                "It never left its start: the surface is not defined there (a formula such as "
                "sqrt(x) or log(x) at x &lt; 0). Move the start to where the surface has "
                "values; no learning rate can fix this."
            )
        else:
            advice = (
                "It is held at its last finite point; a smaller learning rate, gradient "
                "clipping or a schedule would have kept it on the surface."
            )
        self.text.setHtml(
            f"<p><b>{html.escape(name)}</b> diverged at step {step}: {html.escape(reason)}.</p>"
            f"{curvature}<p>{advice}</p>"
        )

    def show_explanation(self, name: str, e: StepExplanation | None, curvature: str = "") -> None:
        """The last step of racer ``name``; ``curvature`` (HTML) goes under its heading: the
        learning-rate lesson reads before the equations."""
        if e is None:
            self.text.setHtml(
                f"<p><b>{html.escape(name)}</b>: take a step to see it explained.</p>{curvature}"
            )
            return
        norm = {k: float(np.hypot(*v)) for k, v in (("-gradient", e.grad), ("step", e.update))}
        check = ""
        if e.predicted is not None:
            err = float(np.abs(e.predicted - e.update).max())
            scale = max(1e-300, float(np.abs(e.update).max()))
            ok = err <= 1e-9 * scale + 1e-15
            check = (
                f"<p style='color:{'#3cb44b' if ok else ERROR_RED}'>"
                f"{'&#10003; matches' if ok else '&#10007; differs from'} what torch.optim."
                f"{e.optimizer.split()[0]} did (max difference {err:.1e})</p>"
            )
        body = "\n".join(e.lines)
        self.text.setHtml(
            f"<p><b>{html.escape(name)}</b>{'' if name == e.optimizer else f' ({e.optimizer})'}, "
            f"step {e.step}<br><i>{e.optimizer}: {e.config}</i><br>"
            f"|gradient| = {norm['-gradient']:.4g}, |step| = {norm['step']:.4g}</p>"
            f"{curvature}<pre style='font-size:9pt; white-space: pre-wrap'>{body}</pre>{check}"
        )
