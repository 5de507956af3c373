"""The racers table and the selected racer's settings."""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui, QtWidgets

from app.race.controller import RaceController
from app.widgets import ERROR_RED, NumberEdit, editor_for, error_label, swatch_item
from core.optimizers import CATALOGUE, SCHEDULERS, SchedulerSpec, get_optimizer, get_scheduler

COLUMNS = ["", "Racer", "Optimizer", "lr", "Loss", "Dist.", "Conv. at", "Status"]
COLUMN_WIDTHS = [26, 0, 80, 52, 70, 62, 64, 80]  # 0: stretches
LR, LOSS, DIST, CONV, STATUS = 3, 4, 5, 6, 7


class RacersTable(QtWidgets.QTableWidget):
    """One row a racer: enabled, colour, name, optimizer, lr and live figures."""

    def __init__(self, controller: RaceController, parent=None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.c = controller
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.DoubleClicked)
        # Fixed widths: with ResizeToContents every live update re-measured every cell's text,
        # which cost ~15 frames a second while racing.
        header = self.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.Stretch)
        for col, width in enumerate(COLUMN_WIDTHS):
            if width:
                self.setColumnWidth(col, width)
        self.setMaximumHeight(210)
        self.itemChanged.connect(self._edited)
        self.cellDoubleClicked.connect(self._double_clicked)
        self._filling = False
        self.rebuild()

    def rebuild(self) -> None:
        row = max(0, self.currentRow())
        self._filling = True
        self.setRowCount(len(self.c.specs))
        for r, (spec, colour) in enumerate(zip(self.c.specs, self.c.colours(), strict=True)):
            swatch = swatch_item(
                colour, spec.enabled, "enable / disable; double-click to change the colour"
            )
            self.setItem(r, 0, swatch)
            name = QtWidgets.QTableWidgetItem(spec.label)
            name.setToolTip("double-click to rename")
            self.setItem(r, 1, name)
            for col in range(2, len(COLUMNS)):
                text = get_optimizer(spec.optimizer.name).label if col == 2 else ""
                item = QtWidgets.QTableWidgetItem(text)
                item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsEditable)
                self.setItem(r, col, item)
        self._filling = False
        self.selectRow(min(row, len(self.c.specs) - 1))
        self.refresh_figures()

    def refresh_figures(self) -> None:
        race = self.c.race
        self._filling = True
        for r in range(min(self.rowCount(), race.n_racers)):
            m = race.metrics(r)
            dist = m.final_distance[0]
            conv = m.steps_to_converge[0]
            self._set(r, LR, f"{race.lr(r):.3g}")
            self._set(r, LOSS, f"{m.final_loss[0]:.3g}")
            self._set(r, DIST, "" if math.isinf(dist) else f"{dist:.2g}")
            self._set(r, CONV, f"step {conv}" if conv >= 0 else "")
            if m.diverged_at[0] >= 0:
                status = self._set(r, STATUS, f"diverged @{m.diverged_at[0]}")
                status.setForeground(QtGui.QColor(ERROR_RED))
                status.setToolTip(str(race.diverge_reason[r, 0]))
            else:
                self._set(r, STATUS, "" if self.c.specs[r].enabled else "off")
        self._filling = False

    def _set(self, row: int, col: int, text: str) -> QtWidgets.QTableWidgetItem:
        """Set a cell's text only when it changed: every change costs a repaint."""
        item = self.item(row, col)
        if item.text() != text:
            item.setText(text)
            if col == STATUS and not text.startswith("diverged"):
                item.setForeground(self.palette().text())
                item.setToolTip("")
        return item

    def _edited(self, item: QtWidgets.QTableWidgetItem) -> None:
        if self._filling:
            return
        r = item.row()
        if item.column() == 0:
            self.c.set_options(r, enabled=item.checkState() == QtCore.Qt.CheckState.Checked)
        elif item.column() == 1:
            self.c.set_options(r, name=item.text().strip())

    def _double_clicked(self, row: int, col: int) -> None:
        if col != 0:
            return
        colour = QtWidgets.QColorDialog.getColor(
            QtGui.QColor(self.c.colours()[row]), self, "Racer colour"
        )
        if colour.isValid():
            self.c.set_options(row, color=colour.name())


class RacerEditor(QtWidgets.QWidget):
    """Every hyperparameter of the selected racer, generated from the catalogue; live."""

    def __init__(self, controller: RaceController, parent=None) -> None:
        super().__init__(parent)
        self.c = controller
        self.row = 0
        self.form = QtWidgets.QFormLayout(self)
        self.form.setFieldGrowthPolicy(
            QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow
        )
        self.error = error_label()

    def show_racer(self, row: int) -> None:
        self.row = row
        while self.form.rowCount():
            self.form.removeRow(0)
        self.error = error_label()
        if not 0 <= row < len(self.c.specs):
            return
        spec = self.c.specs[row]
        info = get_optimizer(spec.optimizer.name)
        combo = QtWidgets.QComboBox()
        for key, o in CATALOGUE.items():
            combo.addItem(o.label, key)
        combo.setCurrentIndex(combo.findData(info.key))
        combo.currentIndexChanged.connect(lambda i: self._optimizer(combo.itemData(i)))
        self.form.addRow("Optimizer", combo)
        caption = QtWidgets.QLabel(f"<i>{info.caption}</i>")
        caption.setWordWrap(True)
        self.form.addRow("", caption)
        values = self.c.race.values(row)
        for p in info.params:
            self.form.addRow(p.name, editor_for(p, values[p.name], self._hyper_setter(p.name)))
        self._scheduler_rows(spec)
        clip = QtWidgets.QComboBox()
        clip.addItems(["none", "norm", "value"])
        clip.setCurrentText(spec.clip)
        clip.currentTextChanged.connect(lambda t: self._option(clip=t))
        self.form.addRow("Clip gradient", clip)
        clip_value = NumberEdit(1e-3, 1e3, True, spec.clip_value)
        clip_value.committed.connect(lambda v: self._option(clip_value=v))
        self.form.addRow("  max norm / value", clip_value)
        noise = NumberEdit(0.0, 50.0, False, spec.noise)
        noise.committed.connect(lambda v: self._option(noise=v))
        noise.setToolTip("std of Gaussian noise added to the gradient: mimics mini-batches")
        self.form.addRow("Gradient noise", noise)
        seed = QtWidgets.QSpinBox()
        seed.setRange(0, 2**31 - 1)
        seed.setValue(spec.seed)
        seed.setKeyboardTracking(False)
        seed.valueChanged.connect(lambda v: self._option(seed=int(v)))
        self.form.addRow("  noise seed", seed)
        self.form.addRow(self.error)

    def _scheduler_rows(self, spec) -> None:
        combo = QtWidgets.QComboBox()
        combo.addItem("none (constant lr)", None)
        for key, s in SCHEDULERS.items():
            combo.addItem(s.label, key)
        current = spec.scheduler.name if spec.scheduler else None
        combo.setCurrentIndex(max(0, combo.findData(current)))
        combo.currentIndexChanged.connect(
            lambda i: self._schedule(
                SchedulerSpec(combo.itemData(i)) if combo.itemData(i) else None
            )
        )
        self.form.addRow("LR schedule", combo)
        if spec.scheduler is None:
            return
        s_info = get_scheduler(spec.scheduler.name)
        values = spec.scheduler.resolved()
        for p in s_info.params:

            def change(v, name=p.name, sched=spec.scheduler):
                self._schedule(SchedulerSpec(sched.name, {**sched.hyper, name: v}))

            self.form.addRow(f"  {p.name}", editor_for(p, values[p.name], change))

    def _hyper_setter(self, name: str):
        def apply(value) -> None:
            self._guard(lambda: self.c.set_hyper(self.row, name, value))

        return apply

    def _option(self, **changes) -> None:
        self._guard(lambda: self.c.set_options(self.row, **changes))

    def _schedule(self, spec: SchedulerSpec | None) -> None:
        if self._guard(lambda: self.c.set_scheduler(self.row, spec)):
            QtCore.QTimer.singleShot(0, lambda: self.show_racer(self.row))

    def _optimizer(self, key: str) -> None:
        self.c.set_optimizer(self.row, key)
        QtCore.QTimer.singleShot(0, lambda: self.show_racer(self.row))

    def _guard(self, action) -> bool:
        try:
            action()
        except ValueError as exc:
            self.error.setText(str(exc))
            return False
        self.error.setText("")
        return True
