"""The Race workspace: the surface with racing optimizers, their table, editors and plots."""

from __future__ import annotations

import time

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.race.basin_colours import basin_rgba
from app.race.controller import RaceController
from app.race.curvature import CurvatureArrows, curvature_block
from app.race.panels import ExplainPanel, SurfacePanel, TransportBar
from app.race.racers import RacerEditor, RacersTable
from app.race.render import draw_race
from app.race.sweep_panel import open_sweep, sweep_button
from app.race.terrain import draw_race_3d, show_surface_3d
from app.views.loss_plot import LossPlot
from app.views.surface_view import SurfaceView
from app.workers import Job, describe
from app.workspace import Export
from core.optimizers import get_optimizer
from core.race.basins import BasinMap, BasinProgress, basin_map
from core.race.explain import explain_last_step
from core.race.session import load_preset

FIGURES_EVERY = 0.1  # seconds between loss plot/table/explanation refreshes while playing


class RaceWorkspace(QtWidgets.QWidget):
    message = QtCore.Signal(str)
    # The basin map's grid of starts (per side) and steps per start: class attributes so a
    # test can make them small, and the tooltip and the messages say what is really computed.
    BASIN_RESOLUTION = 128
    BASIN_STEPS = 500
    # L-BFGS runs one optimizer per start (not one batched one): 128 x 128 x 500 would take
    # hours; 32 x 32 x 40 takes 30-50 s, and 40 steps brought every start of Himmelblau and
    # Rosenbrock to a minimum (measured)
    BASIN_ONE_BY_ONE = (32, 40)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.c = RaceController(self)
        self.dark = False
        self.view = SurfaceView()
        self.loss = LossPlot()
        self.caption = QtWidgets.QLabel()
        self.caption.setWordWrap(True)
        # margins, not a style sheet: a style sheet would freeze the palette at the first theme
        self.caption.setContentsMargins(4, 4, 4, 4)
        self.caption.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.surface_panel = SurfacePanel(self.c)
        self.transport = TransportBar(self.c)
        self.table = RacersTable(self.c)
        self.editor = RacerEditor(self.c)
        self.explain = ExplainPanel()
        self.curvature_arrows = CurvatureArrows(self.view)
        self.log_y = QtWidgets.QCheckBox("log y")
        self.log_y.setObjectName("loss_log_y")
        self.log_y.setToolTip("loss axis in log10 (of loss minus the known minimum value)")
        self.log_y.toggled.connect(lambda on: self._set_log(on))
        self._build_layout()
        self.basin_job: Job | None = None
        self.sweep_window = None  # app.race.sweep_panel.SweepWindow, made when first asked for
        self._finished_jobs: list[Job] = []
        self.basin_rgba: np.ndarray | None = None
        self.view3d = None  # app.views.surface3d.Surface3DView, made when first asked for
        self._last_figures = 0.0
        self._figures_timer = QtCore.QTimer(self)
        self._figures_timer.setSingleShot(True)
        self._figures_timer.timeout.connect(lambda: self._refresh_figures(force=True))
        c = self.c
        c.surfaceChanged.connect(self._surface_changed)
        c.racersChanged.connect(self._racers_changed)
        c.racerChanged.connect(self._racer_changed)
        c.raceReset.connect(self._redraw)
        c.stepped.connect(self._stepped)
        c.message.connect(self.message)
        self.view.startRequested.connect(self._start_requested)
        self.view.hovered.connect(
            lambda x, y, f: self.message.emit(f"x = {x:.4g}, y = {y:.4g}, loss = {f:.6g}")
        )
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.surface_panel.presetChosen.connect(self.load_preset)
        self.surface_panel.log_colour.toggled.connect(self._colour_scale)
        self.explain.enabled.toggled.connect(lambda _: self._refresh_explanation())
        self.explain.curvature.toggled.connect(lambda _: self._refresh_explanation())
        self._keys = None  # app.race.keys.RaceKeys, made by race_actions()
        self._items: tuple[list[str], list[str]] = ([], [])  # colours and names shown
        self._shown_once = False
        self._racers_changed()
        self._surface_changed()
        self.table.selectRow(0)
        self.editor.show_racer(0)

    def race_actions(self) -> list[QtGui.QAction]:
        """Play/pause (Space), step (Right) and reset (R), for the window's Race menu. Their
        shortcuts fire only while the focus is inside this workspace (the Race tab is shown)
        and the focused control does not use the key itself; triggered from a menu while
        another tab is shown they do nothing. The same three actions on every call."""
        if self._keys is None:
            from app.race.keys import RaceKeys

            self._keys = RaceKeys(self, self.c)
        return list(self._keys.actions)

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        if not self._shown_once:
            # the race keys work where the focus is inside the workspace: start there
            self._shown_once = True
            focus = QtWidgets.QApplication.focusWidget()
            if focus is None or not self.isAncestorOf(focus):
                self.view.setFocus(QtCore.Qt.FocusReason.OtherFocusReason)

    def _build_layout(self) -> None:
        add = QtWidgets.QHBoxLayout()
        self.add_combo = QtWidgets.QComboBox()
        from core.optimizers import CATALOGUE

        for key, o in CATALOGUE.items():
            self.add_combo.addItem(o.label, key)
        self.add_combo.setCurrentIndex(self.add_combo.findData("rmsprop"))
        self.add_combo.setObjectName("add_optimizer")
        self.add_combo.setToolTip("the optimizer of the next racer added")
        add_btn = QtWidgets.QPushButton("Add racer")
        add_btn.setObjectName("add_racer")
        add_btn.setToolTip("add a racer with this optimizer (at most 10; restarts the race)")
        add_btn.clicked.connect(lambda: self.c.add_racer(self.add_combo.currentData()))
        rm_btn = QtWidgets.QPushButton("Remove")
        rm_btn.setObjectName("remove_racer")
        rm_btn.setToolTip("remove the selected racer (restarts the race)")
        rm_btn.clicked.connect(lambda: self.c.remove_racer(max(0, self.table.currentRow())))
        add.addWidget(self.add_combo, 1)
        add.addWidget(add_btn)
        add.addWidget(rm_btn)
        for text, delta, tip in (("\u25b2", -1, "up"), ("\u25bc", 1, "down")):
            move = QtWidgets.QToolButton()
            move.setText(text)
            move.setObjectName(f"move_{tip}")
            move.setToolTip(f"move the selected racer {tip} (restarts the race)")
            move.clicked.connect(lambda _=False, d=delta: self._move_selected(d))
            add.addWidget(move)
        self.basin_button = QtWidgets.QPushButton("Basin map")
        self.basin_button.setObjectName("basin_map")
        self.basin_button.setCheckable(True)
        n, (m, m_steps) = self.BASIN_RESOLUTION, self.BASIN_ONE_BY_ONE
        self.basin_button.setToolTip(
            f"Colour every start point of a {n}x{n} grid by the minimum the selected racer "
            f"reaches from it in {self.BASIN_STEPS} steps (in 2-D and 3-D); "
            f"L-BFGS: {m}x{m} in {m_steps} steps"
        )
        self.basin_button.toggled.connect(self._basin_toggled)
        self.basin_progress = QtWidgets.QProgressBar()
        self.basin_progress.setVisible(False)
        self.basin_progress.setMaximumHeight(14)
        self.view3d_button = QtWidgets.QPushButton("3-D")
        self.view3d_button.setObjectName("view_3d")
        self.view3d_button.setCheckable(True)
        self.view3d_button.setToolTip(
            "The surface as terrain with the paths on it (needs OpenGL); drag to orbit, "
            "wheel to zoom"
        )
        self.view3d_button.toggled.connect(self.set_3d)
        basin_row = QtWidgets.QHBoxLayout()
        basin_row.addWidget(self.basin_button)
        basin_row.addWidget(sweep_button(self))
        basin_row.addWidget(self.basin_progress, 1)
        basin_row.addWidget(self.view3d_button)
        editor_scroll = QtWidgets.QScrollArea()
        editor_scroll.setWidget(self.editor)
        editor_scroll.setWidgetResizable(True)
        editor_scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        racers_box = QtWidgets.QGroupBox("Racers")
        rl = QtWidgets.QVBoxLayout(racers_box)
        rl.addWidget(self.table)
        rl.addLayout(add)
        rl.addWidget(editor_scroll, 1)
        side = QtWidgets.QWidget()
        sl = QtWidgets.QVBoxLayout(side)
        sl.setContentsMargins(0, 0, 0, 0)
        sl.addWidget(self.surface_panel)
        sl.addWidget(self.transport)
        sl.addLayout(basin_row)
        sl.addWidget(racers_box, 1)
        side.setMinimumWidth(560)
        left = QtWidgets.QWidget()
        ll = QtWidgets.QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        self.view_stack = QtWidgets.QStackedWidget()
        self.view_stack.addWidget(self.view)
        ll.addWidget(self.view_stack, 1)
        ll.addWidget(self.caption)
        loss_box = QtWidgets.QWidget()
        lb = QtWidgets.QVBoxLayout(loss_box)
        lb.setContentsMargins(0, 0, 0, 0)
        lb.addWidget(self.loss, 1)
        lb.addWidget(self.log_y)
        bottom = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        bottom.addWidget(loss_box)
        bottom.addWidget(self.explain)
        bottom.setSizes([400, 600])  # the explanation needs the width more than the curves
        bottom.setStretchFactor(0, 2)
        bottom.setStretchFactor(1, 3)
        vsplit = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        vsplit.addWidget(left)
        vsplit.addWidget(bottom)
        vsplit.setSizes([640, 260])
        hsplit = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        hsplit.addWidget(vsplit)
        hsplit.addWidget(side)
        hsplit.setStretchFactor(0, 3)
        hsplit.setStretchFactor(1, 1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(hsplit)

    # --- reactions to the model -------------------------------------------------------------

    def _surface_changed(self) -> None:
        self._cancel_basins()
        self.basin_button.setChecked(False)
        self.surface_panel.sync()
        self.view.set_surface(self.c.surface, self._scale())
        self._surface_3d()
        s = self.c.surface
        self.caption.setText(
            f"<b>{s.name}</b>: {s.formula} &nbsp;&mdash;&nbsp; <i>{self.c.caption}</i>"
        )
        self._set_log(self.log_y.isChecked())

    def _scale(self) -> str:
        return "log" if self.surface_panel.log_colour.isChecked() else "linear"

    def _colour_scale(self, _on: bool) -> None:
        self.view.set_surface(self.c.surface, self._scale())
        self.view.show_basins(self.basin_rgba)
        self._surface_3d()
        self._draw()

    # --- 3-D ---------------------------------------------------------------------------------

    @property
    def showing_3d(self) -> bool:
        return self.view3d is not None and self.view_stack.currentWidget() is self.view3d

    def set_3d(self, on: bool) -> bool:
        """Switch between the heatmap and the 3-D terrain; False (and a message) when this
        machine cannot show 3-D, which then stays on the heatmap."""
        if not on:
            self.view3d_button.blockSignals(True)
            self.view3d_button.setChecked(False)
            self.view3d_button.blockSignals(False)
            self.view_stack.setCurrentWidget(self.view)
            self._draw()
            return True
        from app.views.surface3d import Surface3DView, gl_problem

        problem = gl_problem()
        if problem:
            self.message.emit(f"3-D view unavailable: {problem}. Showing the 2-D view.")
            self.view3d_button.blockSignals(True)
            self.view3d_button.setChecked(False)
            self.view3d_button.blockSignals(False)
            self.view3d_button.setToolTip(f"3-D view unavailable: {problem}")
            return False
        self.view3d_button.blockSignals(True)
        self.view3d_button.setChecked(True)
        self.view3d_button.blockSignals(False)
        if self.view3d is None:
            self.view3d = Surface3DView()
            self.view_stack.addWidget(self.view3d)
        self.view_stack.setCurrentWidget(self.view3d)
        self._surface_3d()
        self._draw()
        return True

    def _surface_3d(self) -> None:
        if self.showing_3d:
            show_surface_3d(self.view3d, self.c.surface, self._scale(), self.basin_rgba)

    def _draw_3d(self) -> None:
        draw_race_3d(self.view3d, self.c.race, self.c.colours())

    def _sync_items(self) -> None:
        colours, names = self.c.colours(), [s.label for s in self.c.specs]
        shown = len(self.view.paths) == len(self.loss.curves) == len(colours)
        if (colours, names) == self._items and shown:
            return  # a drag of the lr slider must not rebuild the legend at every tick
        self._items = (colours, names)
        self.view.set_racers(colours, names)
        self.loss.set_racers(colours)

    def _racers_changed(self) -> None:
        """The list of racers changed (added, removed, moved, retyped, a preset or session):
        every view anew, and the editor shows whatever racer the selected row now holds."""
        self._sync_items()
        self.table.rebuild()
        self.editor.show_racer(self.selected())
        self._redraw()

    def _racer_changed(self, r: int) -> None:
        """One racer edited live: its row, its colour and name in the views, its editor."""
        self._sync_items()
        self.table.refresh_row(r)
        if r == self.selected():
            self.editor.sync()
        self._draw()
        self._draw_loss()
        self._refresh_explanation()

    def _move_selected(self, delta: int) -> None:
        r = self.selected()
        to = r + delta
        if r < 0 or not 0 <= to < len(self.c.specs):
            return
        self.c.move_racer(r, to)
        self.table.selectRow(to)  # the selection follows the racer

    def _redraw(self) -> None:
        self.view.set_start(*self.c.start)
        self._draw()
        self._refresh_figures(force=True)

    def _stepped(self) -> None:
        self._draw()
        # while playing the figures are throttled; a step taken by hand shows everything now
        self._refresh_figures(force=not self.c.playing)

    def _draw(self) -> None:
        race = self.c.race
        self._ensure_items()
        if self.showing_3d:
            self._draw_3d()
            return
        draw_race(self.view, race, self.c.colours())

    def _ensure_items(self) -> None:
        """A session or preset may change surface and racers at once: sync before drawing."""
        n = self.c.race.n_racers
        if len(self.view.paths) != n or len(self.loss.curves) != n:
            self._sync_items()

    def _draw_loss(self) -> None:
        race = self.c.race
        self._ensure_items()
        loss = race.history.get("loss")
        steps = race.history.recorded_steps()
        self.loss.update_curves(
            steps, [loss[:, r, 0] for r in range(race.n_racers)], [s.enabled for s in race.specs]
        )

    def _refresh_figures(self, force: bool = False) -> None:
        """Throttled to FIGURES_EVERY, with a trailing refresh so the last state always shows."""
        now = time.monotonic()
        wait = FIGURES_EVERY - (now - self._last_figures)
        if not force and wait > 0:
            if not self._figures_timer.isActive():
                self._figures_timer.start(max(1, int(wait * 1000)))
            return
        self._figures_timer.stop()
        self._last_figures = now
        self.transport.sync()
        self._draw_loss()
        self.table.refresh_figures()
        self._refresh_explanation()

    def _refresh_explanation(self) -> None:
        r = self.selected()
        if r < 0 or r >= self.c.race.n_racers:
            self.view.show_arrows(None, {})
            self.curvature_arrows.hide()
            return
        race = self.c.race
        curv, block = curvature_block(race, r)
        self.curvature_arrows.show(curv if self.explain.curvature.isChecked() else None)
        if race.diverged_at[r, 0] >= 0:  # held at its last finite point: no step to explain
            at, why = int(race.diverged_at[r, 0]), str(race.diverge_reason[r, 0])
            self.explain.show_diverged(self.c.specs[r].label, at, why, block)
            self.view.show_arrows(None, {})
            return
        e = explain_last_step(race, r)
        self.explain.show_explanation(self.c.specs[r].label, e, block)
        if e is None or not self.explain.enabled.isChecked():
            self.view.show_arrows(None, {})
            return
        self.view.show_arrows(
            e.pos_before,
            {
                # the surface's own slope: noise and clipping show as an angle to the step
                "grad": -e.true_grad,
                "update": e.update,
                "velocity": -e.velocity if e.velocity is not None else None,
            },
        )

    def selected(self) -> int:
        return self.table.currentRow()

    def _selection_changed(self) -> None:
        self.editor.show_racer(self.selected())
        self._refresh_explanation()
        if self.sweep_window is not None and self.sweep_window.isVisible():
            self.sweep_window.sync()

    def _start_requested(self, x: float, y: float) -> None:
        self.c.set_start(x, y)
        self.message.emit(f"Start moved to ({x:.3g}, {y:.3g})")

    def _set_log(self, on: bool) -> None:
        f_star = self.c.surface.global_min_value
        self.loss.set_log(on, f_star)
        self._draw_loss()

    # --- presets and sessions ---------------------------------------------------------------

    def load_preset(self, name: str) -> None:
        session = load_preset(name)
        self.c.apply_session(session)
        self.surface_panel.show_preset(name)
        self.message.emit(f"Preset: {session.name}")
        if session.sweep:  # a preset that teaches with a sweep map opens it
            open_sweep(self, session.sweep, start=True)

    # --- basin map --------------------------------------------------------------------------

    def _basin_toggled(self, on: bool) -> None:
        if not on:
            self._cancel_basins()
            self.view.show_basins(None)
            self.basin_rgba = None
            if self.view3d is not None:
                self.view3d.set_overlay(None)
            return
        r = max(0, self.selected())
        spec = self.c.specs[r]
        surface = self.c.surface
        self.basin_progress.setVisible(True)
        self.basin_progress.setValue(0)
        self.basin_button.setText("Cancel basin map")
        n, steps = self.BASIN_RESOLUTION, self.BASIN_STEPS
        if not get_optimizer(spec.optimizer.name).elementwise:
            n, steps = self.BASIN_ONE_BY_ONE
        job = Job(lambda: basin_map(surface, spec, resolution=n, steps=steps), self)
        # Signals of a job that was cancelled can still be queued: each handler checks that
        # its job is the current one.
        job.item.connect(lambda item, j=job: self._basin_item(j, item))
        job.failed.connect(
            lambda exc, j=job: (
                j is self.basin_job and self.message.emit(f"Basin map failed: {describe(exc)}")
            )
        )
        job.finished.connect(lambda ok, j=job: self._basin_finished(j, ok))
        self.basin_job = job
        job.start()
        self.message.emit(
            f"Computing the basin map of {spec.label} ({n} x {n} starts, {steps} steps each)..."
        )

    def _basin_item(self, job: Job, item) -> None:
        if job is not self.basin_job:
            return
        if isinstance(item, BasinProgress):
            self.basin_progress.setValue(int(100 * item.steps_done / item.steps_total))
        elif isinstance(item, BasinMap):
            self.basin_rgba = basin_rgba(item)
            self.view.show_basins(self.basin_rgba)
            if self.view3d is not None:
                self.view3d.set_overlay(self.basin_rgba)  # the 3-D terrain shows it too
            n = len(item.minima)
            if item.found:
                kind = "cluster of end points" if n == 1 else "clusters of end points"
            else:
                kind = "known minimum" if n == 1 else "known minima"
            self.message.emit(f"Basin map: {n} {kind}; grey = far from all, black = diverged")

    def _basin_finished(self, job: Job, completed: bool) -> None:
        if job is not self.basin_job:
            return
        self.basin_progress.setVisible(False)
        self.basin_button.blockSignals(True)
        self.basin_button.setText("Basin map")
        self.basin_button.setChecked(completed and self.basin_rgba is not None)
        self.basin_button.blockSignals(False)
        self.basin_job = None

    def _cancel_basins(self) -> None:
        job, self.basin_job = self.basin_job, None
        if job is not None:
            job.stop()
            # keep the object alive until Qt has delivered what was queued for it
            self._finished_jobs = [j for j in self._finished_jobs if j.running()] + [job]
            self.message.emit("Basin map cancelled")
        self.basin_progress.setVisible(False)
        self.basin_button.blockSignals(True)
        self.basin_button.setText("Basin map")
        self.basin_button.blockSignals(False)

    def set_theme(self, dark: bool) -> None:
        self.dark = dark
        self.view.set_theme(dark)
        self.loss.set_theme(dark)
        if self.sweep_window is not None:  # an open sweep map follows the theme too
            self.sweep_window.view.set_theme(dark)

    def exports(self) -> list[Export]:
        from app.race.exports import race_exports

        return race_exports(self)

    def shutdown(self) -> None:
        """Stop the timer and every thread (the window is closing)."""
        if self.view3d is not None:
            self.view3d.release()
        self.c.pause()
        self._cancel_basins()
        if self.sweep_window is not None:
            self.sweep_window.shutdown()
