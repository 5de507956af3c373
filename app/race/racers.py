"""The racers table and the selected racer's settings."""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui, QtWidgets

from app.race.controller import RaceController
from app.widgets import ERROR_RED, NumberEdit, editor_for, error_label, swatch_item
from core.optimizers import CATALOGUE, SCHEDULERS, SchedulerSpec, get_optimizer, get_scheduler

COLUMNS = ["", "Racer", "Optimizer", "lr", "Loss", "Dist.", "Conv. at", "Status"]
COLUMN_WIDTHS = [26, 0, 80, 52, 70, 62, 64, 80]  # 0: stretches
# the widest text each column shows while racing: no column may cut its numbers ("0.00...")
COLUMN_SAMPLES = ["", "", "", "0.00102", "1.23e-05", "", "", ""]
COLUMN_TIPS = [
    "",
    "",
    "the torch.optim class (change it in the editor below)",
    "the learning rate now (a schedule changes it as the race goes)",
    "the loss at the racer's current point",
    "distance to the nearest known minimum",
    "the step at which it first came within 0.001 of a known minimum",
    "diverged (and why, in the tooltip) or off",
]
SWATCH_TIP = "tick: race or sit out; double-click: change the colour"
LR, LOSS, DIST, CONV, STATUS = 3, 4, 5, 6, 7
MAX_HEIGHT = 210  # pixels: four or five rows, then the table scrolls


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
        fm = self.fontMetrics()
        for col, width in enumerate(COLUMN_WIDTHS):
            if width:
                room = max(fm.horizontalAdvance(COLUMN_SAMPLES[col]), fm.horizontalAdvance(
                    COLUMNS[col])) + 18  # fmt: skip
                self.setColumnWidth(col, max(width, room))
        self.setMinimumHeight(90)
        self.setObjectName("racers_table")
        # Tab leaves the table (to the next control) instead of walking its cells forever.
        self.setTabKeyNavigation(False)
        self.setToolTip("one row a racer; select one to edit it below and explain its steps")
        self.itemChanged.connect(self._edited)
        self.cellDoubleClicked.connect(self._double_clicked)
        self._filling = False
        self.rebuild()

    def rebuild(self) -> None:
        """Every row anew (the list of racers changed); the selected row stays where it was,
        without a selection signal (the workspace refreshes the editor itself)."""
        row = max(0, self.currentRow())
        self._filling = True
        self.blockSignals(True)
        self.setRowCount(len(self.c.specs))
        for r in range(len(self.c.specs)):
            self.setItem(r, 0, swatch_item("#000000", True, SWATCH_TIP))
            name = QtWidgets.QTableWidgetItem()
            name.setToolTip("the racer's name: double-click to rename")
            self.setItem(r, 1, name)
            for col in range(2, len(COLUMNS)):
                item = QtWidgets.QTableWidgetItem("")
                item.setFlags(item.flags() & ~QtCore.Qt.ItemFlag.ItemIsEditable)
                item.setToolTip(COLUMN_TIPS[col])
                self.setItem(r, col, item)
            self._fill_row(r)
        self.selectRow(min(row, len(self.c.specs) - 1))
        self.blockSignals(False)
        self._filling = False
        self._fit_height()
        self.viewport().update()
        self.refresh_figures()

    def _fit_height(self) -> None:
        """As tall as its rows (up to MAX_HEIGHT, then it scrolls): empty rows took room
        the editor below needs on a 720-pixel screen."""
        rows = self.verticalHeader().length()
        header = self.horizontalHeader().sizeHint().height()
        self.setMaximumHeight(min(MAX_HEIGHT, rows + header + 2 * self.frameWidth() + 2))

    def refresh_row(self, r: int) -> None:
        """Racer ``r`` was edited: its row only (name, colour, tick, optimizer, figures)."""
        if not 0 <= r < self.rowCount():
            return
        self._filling = True
        self._fill_row(r)
        self._filling = False
        self.refresh_figures()

    def _fill_row(self, r: int) -> None:
        spec, colour = self.c.specs[r], self.c.colours()[r]
        swatch = self.item(r, 0)
        swatch.setBackground(QtGui.QColor(colour))
        checked = QtCore.Qt.CheckState.Checked if spec.enabled else QtCore.Qt.CheckState.Unchecked
        if swatch.checkState() != checked:
            swatch.setCheckState(checked)
        self._set(r, 1, spec.label)
        self._set(r, 2, get_optimizer(spec.optimizer.name).label)

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
                item.setToolTip(COLUMN_TIPS[STATUS])
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
    """Every hyperparameter of the selected racer, generated from the catalogue; live.

    The form is rebuilt (:meth:`show_racer`) when the selected racer or the list changes, and
    its values refreshed in place (:meth:`sync`) when the racer is edited. A refused value is
    marked at its own field, with the reason beside it.
    """

    def __init__(self, controller: RaceController, parent=None) -> None:
        super().__init__(parent)
        self.c = controller
        self.row = -1
        self.optimizer = ""  # the optimizer the form was built for
        self.setObjectName("racer_editor")
        self.error = error_label("racer_error")  # errors that belong to no single field
        self.body = QtWidgets.QWidget()
        self.form = QtWidgets.QFormLayout(self.body)
        self.fields: dict[str, QtWidgets.QWidget] = {}  # hyperparameter name -> its editor
        self.field_errors: dict[str, QtWidgets.QLabel] = {}  # for fields that are no NumberEdit
        self._lay = QtWidgets.QVBoxLayout(self)
        self._lay.setContentsMargins(0, 0, 0, 0)
        self._lay.addWidget(self.error)
        self._lay.addWidget(self.body)
        self._lay.addStretch(1)

    def show_racer(self, row: int) -> None:
        """Build the form for racer ``row`` (none when out of range)."""
        # A new body replaces the old one, which is deleted later: the old form's widgets may
        # be the very senders whose signal led here (the optimizer combo).
        old = self.body
        self.body = QtWidgets.QWidget()
        self.form = QtWidgets.QFormLayout(self.body)
        self.form.setFieldGrowthPolicy(
            QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow
        )
        self._lay.replaceWidget(old, self.body)
        old.hide()
        old.deleteLater()
        self.fields, self.field_errors = {}, {}
        self.error.setText("")
        self.error.setVisible(False)
        self.row = row
        self.optimizer = ""
        if not 0 <= row < len(self.c.specs):
            return
        spec = self.c.specs[row]
        info = get_optimizer(spec.optimizer.name)
        self.optimizer = info.key
        combo = QtWidgets.QComboBox()
        combo.setObjectName("racer_optimizer")
        for key, o in CATALOGUE.items():
            combo.addItem(o.label, key)
        combo.setCurrentIndex(combo.findData(info.key))
        combo.setToolTip("the torch.optim class this racer uses; changing it restarts the race")
        combo.currentIndexChanged.connect(lambda i: self._optimizer(combo.itemData(i)))
        self.form.addRow("Optimizer", combo)
        caption = QtWidgets.QLabel(f"<i>{info.caption}</i>")
        caption.setWordWrap(True)
        self.form.addRow("", caption)
        values = self.c.race.values(row)
        for p in info.params:
            w = editor_for(p, values[p.name], self._hyper_setter(p.name))
            self.fields[p.name] = w
            self.form.addRow(p.name, w)
            if not isinstance(w, NumberEdit):  # a place for its message, right under it
                label = error_label(f"error_{p.name}")
                label.setVisible(False)
                self.field_errors[p.name] = label
                self.form.addRow("", label)
        self._scheduler_rows(spec)
        clip = QtWidgets.QComboBox()
        clip.setObjectName("racer_clip")
        clip.addItems(["none", "norm", "value"])
        clip.setCurrentText(spec.clip)
        clip.setToolTip(
            "clip each gradient before the optimizer sees it: none, by its L2 norm "
            "(as torch.nn.utils.clip_grad_norm_) or each component by value"
        )
        clip.currentTextChanged.connect(lambda t: self._option(clip=t))
        self.fields["clip"] = clip
        self.form.addRow("Clip gradient", clip)
        clip_value = NumberEdit(1e-3, 1e3, True, spec.clip_value)
        clip_value.setObjectName("racer_clip_value")
        clip_value.setToolTip("the largest norm (or component) kept (range 0.001 .. 1000)")
        clip_value.committed.connect(lambda v: self._option(clip_value=v))
        self.fields["clip_value"] = clip_value
        self.form.addRow("  max norm / value", clip_value)
        noise = NumberEdit(0.0, 50.0, False, spec.noise)
        noise.setObjectName("racer_noise")
        noise.committed.connect(lambda v: self._option(noise=v))
        noise.setToolTip(
            "std of Gaussian noise added to the gradient: mimics mini-batches (range 0 .. 50)"
        )
        self.fields["noise"] = noise
        self.form.addRow("Gradient noise", noise)
        seed = QtWidgets.QSpinBox()
        seed.setObjectName("racer_seed")
        seed.setRange(0, 2**31 - 1)
        seed.setValue(spec.seed)
        seed.setKeyboardTracking(False)
        seed.setToolTip("seeds the gradient noise: the same seed, the same noise")
        seed.valueChanged.connect(lambda v: self._option(seed=int(v)))
        self.fields["seed"] = seed
        self.form.addRow("  noise seed", seed)

    def sync(self) -> None:
        """The shown racer was edited (here or elsewhere): show its values, keep the form."""
        if not 0 <= self.row < len(self.c.specs):
            return
        spec = self.c.specs[self.row]
        if spec.optimizer.name != self.optimizer:
            self.show_racer(self.row)
            return
        values = self.c.race.values(self.row)
        for name, w in self.fields.items():
            value = values.get(name, getattr(spec, name, None))
            if isinstance(w, NumberEdit):
                if not w.error_text() and value is not None and w.value() != value:
                    w.set_value(float(value))
            elif isinstance(w, QtWidgets.QCheckBox):
                w.blockSignals(True)
                w.setChecked(bool(value))
                w.blockSignals(False)
            elif isinstance(w, QtWidgets.QSpinBox):
                w.blockSignals(True)
                w.setValue(int(value) if value is not None else w.minimum())
                w.blockSignals(False)
            elif isinstance(w, QtWidgets.QComboBox):
                data = [w.itemData(i) for i in range(w.count())]
                texts = [w.itemText(i) for i in range(w.count())]
                index = data.index(value) if value in data else -1
                if index < 0 and str(value) in texts:
                    index = texts.index(str(value))
                w.blockSignals(True)
                w.setCurrentIndex(max(0, index))
                w.blockSignals(False)
            else:
                raise TypeError(f"no way to show {name} in a {type(w).__name__}")

    def _scheduler_rows(self, spec) -> None:
        combo = QtWidgets.QComboBox()
        combo.setObjectName("racer_schedule")
        combo.addItem("none (constant lr)", None)
        for key, s in SCHEDULERS.items():
            combo.addItem(s.label, key)
        current = spec.scheduler.name if spec.scheduler else None
        combo.setCurrentIndex(max(0, combo.findData(current)))
        combo.setToolTip("change the learning rate as the race goes; changing it restarts the race")
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
        optimizer = self.optimizer

        def apply(value) -> None:
            if optimizer != self.optimizer:  # a field of a form already replaced
                return
            self._guard(lambda: self.c.set_hyper(self.row, name, value), name)

        return apply

    def _option(self, **changes) -> None:
        self._guard(lambda: self.c.set_options(self.row, **changes), next(iter(changes)))

    def _schedule(self, spec: SchedulerSpec | None) -> None:
        self._guard(lambda: self.c.set_scheduler(self.row, spec))

    def _optimizer(self, key: str) -> None:
        self._guard(lambda: self.c.set_optimizer(self.row, key))

    def _guard(self, action, field: str = "") -> bool:
        """Run ``action``; a ``ValueError`` is shown at ``field`` (or above the form)."""
        try:
            action()
        except ValueError as exc:
            self._show_error(field, str(exc))
            if field in self.field_errors:  # a refused tick or choice: show what is in force
                self.sync()
            return False
        self._show_error(field, "")
        return True

    def _show_error(self, field: str, text: str) -> None:
        w = self.fields.get(field)
        if isinstance(w, NumberEdit):
            w.set_error(text)
        elif field in self.field_errors:
            self.field_errors[field].setText(text)
            self.field_errors[field].setVisible(bool(text))
        else:
            self.error.setText(text)
            self.error.setVisible(bool(text))

    def error_texts(self) -> dict[str, str]:
        """Every message shown in the form, by field ("" for the one above it)."""
        out = {"": self.error.text()} if self.error.text() else {}
        for name, w in self.fields.items():
            if isinstance(w, NumberEdit) and w.error_text():
                out[name] = w.error_text()
        out.update({n: lab.text() for n, lab in self.field_errors.items() if lab.text()})
        return out
