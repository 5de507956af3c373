"""Widgets that more than one workspace uses: number and hyperparameter editors, swatch
cells, the error label, and the file dialogs' helpers."""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui, QtWidgets

from core.optimizers import Hyperparam

SLIDER_STEPS = 1000
ERROR_RED = "#e04040"  # the one red of error messages and rejected values
AUTO = "auto"  # what an optional number box shows for None (torch's own value)


class NumberEdit(QtWidgets.QWidget):
    """A slider (logarithmic where the parameter says so) beside a text box, and under them a
    small error label that is empty (and hidden) while the value is good.

    ``committed(value)`` fires when the user settles on a value inside ``[low, high]``. Text
    that is not a number, or a number outside the range, turns the box red, shows why right
    under it and commits nothing: :meth:`value` keeps the last good value. A caller that
    refuses a committed value for its own reason (an optimizer's check) calls
    :meth:`set_error`; the next good value clears it.

    objectNames: ``number_slider``, ``number_text``, ``number_error``.
    """

    committed = QtCore.Signal(float)

    def __init__(self, low: float, high: float, log: bool, value: float, parent=None) -> None:
        super().__init__(parent)
        self.low, self.high = float(low), float(high)
        self.log = log and self.low > 0
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setObjectName("number_slider")
        self.slider.setRange(0, SLIDER_STEPS)
        self.text = QtWidgets.QLineEdit()
        self.text.setObjectName("number_text")
        self.text.setFixedWidth(92)
        self.error = error_label("number_error")
        self.error.setVisible(False)
        row = QtWidgets.QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.slider, 1)
        row.addWidget(self.text)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        lay.addLayout(row)
        lay.addWidget(self.error)
        self._good = float(value)
        self.set_value(value)
        self.slider.valueChanged.connect(self._slid)
        self.text.editingFinished.connect(self._typed)

    def _to_slider(self, v: float) -> int:
        if self.log:
            v = max(v, self.low)
            f = (math.log10(v) - math.log10(self.low)) / (
                math.log10(self.high) - math.log10(self.low)
            )
        else:
            f = (v - self.low) / (self.high - self.low) if self.high > self.low else 0
        return round(min(1.0, max(0.0, f)) * SLIDER_STEPS)

    def _from_slider(self, i: int) -> float:
        f = i / SLIDER_STEPS
        if self.log:
            return 10 ** (math.log10(self.low) + f * (math.log10(self.high) - math.log10(self.low)))
        return self.low + f * (self.high - self.low)

    def value(self) -> float:
        """The last good value: what the box shows unless it is marked red."""
        return self._good

    def set_value(self, v: float) -> None:
        """Show ``v`` (from the program, not the user): no signal, and any error is cleared."""
        self._good = float(v)
        self._move_slider(v)
        self.text.setText(f"{v:.6g}")
        self.set_error("")

    def set_error(self, text: str) -> None:
        """Mark the box red with ``text`` shown right under it; ``""`` clears the mark."""
        self.text.setStyleSheet(f"border: 1px solid {ERROR_RED};" if text else "")
        self.text.setToolTip(text)
        self.error.setText(text)
        self.error.setVisible(bool(text))

    def error_text(self) -> str:
        """The message shown under the box, ``""`` when the value is good."""
        return self.error.text()

    def _move_slider(self, v: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(self._to_slider(v))
        self.slider.blockSignals(False)

    def _slid(self, i: int) -> None:
        v = float(f"{self._from_slider(i):.3g}")
        self.text.setText(f"{v:.6g}")
        self._commit(v)

    def _typed(self) -> None:
        text = self.text.text().strip()
        try:
            v = float(text)
        except ValueError:
            self.set_error(f"'{text}' is not a number" if text else "empty: type a number")
            return
        if not (math.isfinite(v) and self.low <= v <= self.high):
            self.set_error(f"{text} is out of range: allowed {self.low:g} .. {self.high:g}")
            return
        if v == self._good and not self.error_text():
            return  # focus left the box without a change: nothing to commit
        self._move_slider(v)
        self._commit(v)

    def _commit(self, v: float) -> None:
        old = self._good
        self._good = v
        self.set_error("")  # a good number after a bad one: the red border goes
        self.committed.emit(v)
        if self.error_text():  # the receiver refused it (set_error): the old value stays
            self._good = old
            self._move_slider(old)


def editor_for(param: Hyperparam, value, on_change) -> QtWidgets.QWidget:
    """A widget editing ``param`` that calls ``on_change(new_value)`` when the user commits."""
    if param.kind == "bool":
        w = QtWidgets.QCheckBox()
        w.setChecked(bool(value))
        w.toggled.connect(lambda v: on_change(bool(v)))
    elif param.kind == "choice":
        w = QtWidgets.QComboBox()
        for c in param.choices:
            w.addItem("none" if c is None else str(c), c)
        w.setCurrentIndex(max(0, list(param.choices).index(value) if value in param.choices else 0))
        w.currentIndexChanged.connect(lambda i: on_change(w.itemData(i)))
    elif param.kind == "int":
        w = QtWidgets.QSpinBox()
        low = int(param.low)
        if param.optional:
            # one below the range reads "auto" and means None (torch's own value): showing
            # the lowest number instead claimed a value torch was not using
            low -= 1
            w.setSpecialValueText(AUTO)
        w.setRange(low, int(min(param.high, 2**31 - 1)))
        w.setValue(int(value) if value is not None else low)
        w.setKeyboardTracking(False)
        w.valueChanged.connect(
            lambda v: on_change(None if param.optional and v == w.minimum() else int(v))
        )
    else:
        w = NumberEdit(param.low, param.high, param.log, float(value))
        w.committed.connect(on_change)
    w.setObjectName(f"param_{param.name}")
    w.setToolTip(param_tip(param))
    return w


def param_tip(param: Hyperparam) -> str:
    """What ``param`` does and the values it accepts, for a tooltip."""
    tip = param.help or param.name
    if param.kind in ("float", "int") and param.low is not None and param.high is not None:
        scale = ", log slider" if param.log and param.kind == "float" else ""
        auto = f"; {AUTO}: torch's own value" if param.optional else ""
        tip += f" (range {param.low:g} .. {param.high:g}{scale}{auto})"
    elif param.kind == "choice":
        tip += " (one of " + ", ".join("none" if c is None else str(c) for c in param.choices) + ")"
    return tip


def swatch_item(colour: str, checked: bool, tip: str) -> QtWidgets.QTableWidgetItem:
    """A table cell filled with ``colour`` that carries an on/off tick."""
    item = QtWidgets.QTableWidgetItem()
    item.setFlags(
        QtCore.Qt.ItemFlag.ItemIsEnabled
        | QtCore.Qt.ItemFlag.ItemIsUserCheckable
        | QtCore.Qt.ItemFlag.ItemIsSelectable
    )
    item.setCheckState(QtCore.Qt.CheckState.Checked if checked else QtCore.Qt.CheckState.Unchecked)
    item.setBackground(QtGui.QColor(colour))
    item.setToolTip(tip)
    return item


def fit_screen(widget: QtWidgets.QWidget, width: int, height: int) -> None:
    """Resize a window to ``width`` x ``height``, or to at most 95% of the screen's free area
    (a 1366x768 laptop gets a window that fits)."""
    screen = widget.screen() or QtGui.QGuiApplication.primaryScreen()
    if screen is not None:
        free = screen.availableGeometry()
        width = min(width, int(free.width() * 0.95))
        height = min(height, int(free.height() * 0.95))
    widget.resize(width, height)


def error_label(name: str = "error") -> QtWidgets.QLabel:
    """An empty, word-wrapped label in the error red, found by ``objectName`` ``name``."""
    label = QtWidgets.QLabel("")
    label.setObjectName(name)
    label.setStyleSheet(f"color: {ERROR_RED};")
    label.setWordWrap(True)
    return label


def save_path(parent: QtWidgets.QWidget, title: str, default: str, filt: str) -> str | None:
    """Ask where to save; the path gets ``default``'s suffix when the user typed none.
    None when cancelled."""
    path, _ = QtWidgets.QFileDialog.getSaveFileName(parent, title, default, filt)
    if not path:
        return None
    suffix = "." + default.rsplit(".", 1)[-1] if "." in default else ""
    return path if path.endswith(suffix) else path + suffix


def open_path(parent: QtWidgets.QWidget, title: str, filt: str, start: str = "") -> str | None:
    """Ask for a file to open; None when cancelled."""
    path, _ = QtWidgets.QFileDialog.getOpenFileName(parent, title, start, filt)
    return path or None
