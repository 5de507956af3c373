"""The Race's "Sweep map" window (#18): validated ranges, a map on a worker thread with
progress and Cancel, hover, the current setting marked, a click races the cell."""

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from core.race.session import SurfaceChoice


@pytest.fixture
def ws(race_ws):
    return race_ws


def sweep_window(ws, qtbot):
    button = ws.findChild(QtWidgets.QPushButton, "sweep_map")
    assert button is not None and button.text() == "Sweep map"
    button.click()
    window = ws.sweep_window
    qtbot.waitExposed(window)
    return window


def edit(window, name, text):
    w = window.findChild(QtWidgets.QLineEdit, name)
    w.setText(text)
    return w


def test_a_bad_range_is_named_next_to_its_box_and_nothing_starts(ws, qtbot):
    ws.c.set_surface(SurfaceChoice("ill_conditioned"))
    window = sweep_window(ws, qtbot)
    assert window.findChild(QtWidgets.QComboBox, "sweep_x_name").currentText() == "lr"
    edit(window, "sweep_y_high", "1.5")
    assert window.start() is False
    error = window.findChild(QtWidgets.QLabel, "sweep_y_error")
    y_name = window.findChild(QtWidgets.QComboBox, "sweep_y_name").currentText()
    assert error.isVisible() and y_name in error.text() and "1.5" in error.text()
    assert window.job is None
    edit(window, "sweep_y_high", "0.9")
    edit(window, "sweep_x_low", "abc")
    assert window.start() is False
    assert "abc" in window.findChild(QtWidgets.QLabel, "sweep_x_error").text()
    assert not error.isVisible()  # the fixed box's message went away


def test_map_fills_on_a_thread_and_a_click_races_the_cell(ws, qtbot):
    c = ws.c
    c.set_surface(SurfaceChoice("ill_conditioned"))
    c.set_optimizer(0, "momentum")
    ws.table.selectRow(0)
    window = sweep_window(ws, qtbot)
    assert window.racer.optimizer.name == "momentum"
    window.findChild(QtWidgets.QComboBox, "sweep_y_name").setCurrentText("momentum")
    edit(window, "sweep_x_low", "0.01")
    edit(window, "sweep_x_high", "0.3")
    edit(window, "sweep_y_low", "0")
    edit(window, "sweep_y_high", "0.95")
    window.findChild(QtWidgets.QSpinBox, "sweep_grid").setValue(8)
    window.findChild(QtWidgets.QSpinBox, "sweep_steps").setValue(100)
    window.findChild(QtWidgets.QPushButton, "sweep_run").click()
    assert window.job is not None
    assert window.findChild(QtWidgets.QPushButton, "sweep_run").text() == "Cancel"
    qtbot.waitUntil(lambda: window.job is None, timeout=60_000)
    r = window.result
    assert r is not None and r.final_loss.shape == (8, 8)
    assert r.diverged[0, -1]  # lr 0.3 at momentum 0 is past 2 / 20
    # the analytic boundary is drawn (a quadratic surface, SGD with momentum)
    assert any("stability" in item.name() for item in window.view.curves)
    # hover: the description of the cell under the mouse
    view = window.view
    assert "diverged at step" in view.describe(7, 0)
    scene_point = view.plot.vb.mapViewToScene(QtCore.QPointF(np.log10(r.x[2]), r.y[5]))
    assert view.cell_at(scene_point) == (2, 5)
    view._moved(scene_point)
    assert window.hover.text().startswith(f"lr = {r.x[2]:.4g}, momentum = {r.y[5]:.4g}")
    # click: the racer takes the cell's setting and the race replays from the start
    c.step(30)
    window.apply_cell(2, 5)
    values = c.race.values(0)
    assert values["lr"] == pytest.approx(r.x[2]) and values["momentum"] == pytest.approx(r.y[5])
    assert c.playing
    c.pause()
    assert c.race.step_count < 30 + 5
    # the ring marks the racer's current setting
    xs, ys = view.marker.getData()
    assert xs[0] == pytest.approx(np.log10(r.x[2])) and ys[0] == pytest.approx(r.y[5])


def test_cancel_stops_the_job(ws, qtbot):
    window = sweep_window(ws, qtbot)
    window.findChild(QtWidgets.QSpinBox, "sweep_grid").setValue(64)
    window.findChild(QtWidgets.QSpinBox, "sweep_steps").setValue(20_000)
    assert window.start()
    job = window.job
    window.findChild(QtWidgets.QPushButton, "sweep_run").click()
    assert window.job is None and not job.running()
    assert window.findChild(QtWidgets.QPushButton, "sweep_run").text() == "Compute map"
    assert not window.findChild(QtWidgets.QProgressBar, "sweep_progress").isVisible()


def test_a_sweep_preset_opens_its_map(ws, qtbot):
    ws.load_preset("momentum_sweep_bowl")
    window = ws.sweep_window
    assert window is not None and window.job is not None
    assert window.x_row.axis().text() == "lr=0.001:0.5:log"
    assert window.y_row.axis().text() == "momentum=0:0.99"
    window.cancel()


def test_an_open_sweep_map_follows_a_theme_switch(ws, qtbot):
    window = sweep_window(ws, qtbot)
    view = window.findChild(QtWidgets.QWidget, "sweep_view")

    def lightness() -> int:
        return view.backgroundBrush().color().lightness()

    assert lightness() > 200  # light, as the workspace
    ws.set_theme(True)
    assert lightness() < 60  # was left white on a dark window
    ws.set_theme(False)
    assert lightness() > 200


def test_log_ticks_keep_decades_first_so_a_narrow_map_drops_the_rest():
    """pyqtgraph drops a crowded tick level's labels, never the first: 2x and 5x were in the
    first level and ran into one another on a narrow map."""
    from app.race.sweep_view import _log_ticks
    from core.race.sweep import SweepAxis

    ones, twos_fives, minor = _log_ticks(SweepAxis("lr", 1e-3, 0.5, True))
    assert [t for _, t in ones] == ["0.001", "0.01", "0.1"]
    assert [t for _, t in twos_fives] == ["0.002", "0.005", "0.02", "0.05", "0.2", "0.5"]
    assert minor and all(t == "" for _, t in minor)


def test_the_smallest_sweep_window_keeps_the_legend_on_the_map(ws, qtbot):
    from core.race.sweep_theory import Curve

    window = sweep_window(ws, qtbot)
    view = window.findChild(QtWidgets.QWidget, "sweep_view")
    longest = "stability edge: lr · 20 = 2 (1 + momentum)"  # the preset's longest line
    view.set_curves([Curve(np.array([0.0, 1.0]), np.array([0.0, 1.0]), longest, "stability")])
    window.resize(100, 100)  # as small as it goes
    vb = view.plot.vb

    def inside() -> bool:
        return (
            vb.sceneBoundingRect().adjusted(-1, -1, 1, 1).contains(view.legend.sceneBoundingRect())
        )

    qtbot.waitUntil(inside, timeout=2000)


def test_the_sweep_window_opens_within_the_screen(ws, qtbot):
    """It asks for 1200x720, which a 1280x720 laptop's free area (less a panel) can't hold."""
    window = sweep_window(ws, qtbot)
    free = window.screen().availableGeometry()
    assert window.width() <= max(window.minimumWidth(), int(free.width() * 0.95))
    assert window.height() <= max(window.minimumHeight(), int(free.height() * 0.95))
