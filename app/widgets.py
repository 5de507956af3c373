"""Widgets that more than one workspace uses: number and hyperparameter editors, swatch
cells, the error label, and the file dialogs' helpers."""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui, QtWidgets

from core.optimizers import Hyperparam

SLIDER_STEPS = 1000
ERROR_RED = "#e04040"  # the one red of error messages and rejected values


class NumberEdit(QtWidgets.QWidget):
    """A slider (logarithmic where the parameter says so) beside a text box.

    ``committed(value)`` fires when the user settles on a value; text that is not a number
    turns the box red and commits nothing.
    """

    committed = QtCore.Signal(float)

    def __init__(self, low: float, high: float, log: bool, value: float, parent=None) -> None:
        super().__init__(parent)
        self.low, self.high = float(low), float(high)
        self.log = log and self.low > 0
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.text = QtWidgets.QLineEdit()
        self.text.setFixedWidth(92)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.text)
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
        """The value in the text box (the last good one if the text is not a number)."""
        try:
            return float(self.text.text())
        except ValueError:
            return self._from_slider(self.slider.value())

    def set_value(self, v: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(self._to_slider(v))
        self.slider.blockSignals(False)
        self.text.setText(f"{v:.6g}")
        self._ok(True)

    def _slid(self, i: int) -> None:
        v = float(f"{self._from_slider(i):.3g}")
        self.text.setText(f"{v:.6g}")
        self._ok(True)
        self.committed.emit(v)

    def _typed(self) -> None:
        try:
            v = float(self.text.text())
        except ValueError:
            self._ok(False, f"'{self.text.text()}' is not a number")
            return
        self.slider.blockSignals(True)
        self.slider.setValue(self._to_slider(v))
        self.slider.blockSignals(False)
        self._ok(True)  # a good number after a bad one: the red border goes
        self.committed.emit(v)

    def _ok(self, ok: bool, why: str = "") -> None:
        self.text.setStyleSheet("" if ok else f"border: 1px solid {ERROR_RED};")
        self.text.setToolTip(why)


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
        w.setRange(int(param.low), int(min(param.high, 2**31 - 1)))
        w.setValue(int(value) if value is not None else int(param.low))
        w.setKeyboardTracking(False)
        w.valueChanged.connect(lambda v: on_change(int(v)))
    else:
        w = NumberEdit(param.low, param.high, param.log, float(value))
        w.committed.connect(on_change)
    w.setToolTip(param.help or param.name)
    return w


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
