"""The Race workspace, driven the way a user drives it (offscreen)."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image
from PySide6 import QtCore, QtWidgets
from PySide6.QtTest import QTest

from core.race.session import preset_names


@pytest.fixture
def window(qtbot, tmp_path, warnings):
    from app.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, restore=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.race.shutdown()


@pytest.fixture
def race(race_ws, warnings):
    """The Race workspace alone, for what needs no window around it."""
    return race_ws


def test_play_pause_step_reset(race, qtbot):
    c = race.c
    with qtbot.waitSignal(c.stepped, timeout=2000):
        race.transport.step.click()
    assert c.race.step_count == 1
    race.transport.play.click()
    assert c.playing and race.transport.play.text() == "Pause"
    qtbot.waitUntil(lambda: c.race.step_count >= 20, timeout=5000)
    race.transport.play.click()
    assert not c.playing
    n = c.race.step_count
    qtbot.wait(100)
    assert c.race.step_count == n  # paused means paused
    # the figures are throttled while playing, but the last state always shows
    qtbot.waitUntil(lambda: race.transport.counter.text() == f"step {n}", timeout=2000)
    race.transport.reset.click()
    assert c.race.step_count == 0
    # the views follow the model: one path per racer, the loss plot has the points
    assert len(race.view.paths) == len(c.specs)


def test_keyboard_shortcuts(window, qtbot):
    c = window.race.c
    window.activateWindow()
    qtbot.waitUntil(lambda: window.isActiveWindow(), timeout=2000)
    window.race.view.setFocus()
    QTest.keyClick(window, QtCore.Qt.Key.Key_Right)
    QTest.keyClick(window, QtCore.Qt.Key.Key_Right)
    assert c.race.step_count == 2
    QTest.keyClick(window, QtCore.Qt.Key.Key_Space)
    assert c.playing
    QTest.keyClick(window, QtCore.Qt.Key.Key_Space)
    assert not c.playing
    QTest.keyClick(window, QtCore.Qt.Key.Key_R)
    assert c.race.step_count == 0


def test_learning_rate_change_mid_race_changes_the_path(race):
    c = race.c
    c.step(30)
    before = c.race.trajectory(0).pos.copy()
    editor = race.editor
    assert editor.row == 0
    lr_edit = editor.fields["lr"]
    lr_edit.text.setText("0.0005")
    lr_edit.text.editingFinished.emit()
    assert c.race.lr(0) == pytest.approx(0.0005)
    assert c.race.step_count == 30  # live: no restart
    c.step(30)
    after = c.race.trajectory(0).pos
    np.testing.assert_array_equal(after[:31], before)  # the past is kept
    reference = race.c.race.__class__(c.surface, [c.specs[0]], starts=c.start)
    reference.set_hyper(0, "lr", 1e-3)
    reference.step(60)
    assert not np.allclose(after[-1], reference.positions[0, 0])
    # a value out of range is refused with a message at the box, and nothing changes
    lr_edit.text.setText("500")
    lr_edit.text.editingFinished.emit()
    assert "out of range" in lr_edit.error_text() and "100" in lr_edit.error_text()
    assert c.race.lr(0) == pytest.approx(0.0005) and c.race.step_count == 60


def test_click_sets_the_start(race, qtbot):
    view = race.view
    c = race.c
    c.step(5)
    scene_pos = view.plot.vb.mapViewToScene(QtCore.QPointF(0.5, 1.5))
    widget_pos = view.mapFromScene(scene_pos)
    QTest.mouseClick(view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=widget_pos)
    qtbot.waitUntil(lambda: c.race.step_count == 0, timeout=2000)
    assert c.start == pytest.approx((0.5, 1.5), abs=0.05)
    assert c.race.positions[0, 0] == pytest.approx(c.start)


def test_bad_formula_shows_the_error_and_keeps_the_surface(race):
    panel = race.surface_panel
    before = race.c.surface
    panel.formula.setText("x + z")
    panel._apply_formula()
    assert "unknown name 'z' at column 5" in panel.error.text()
    assert race.c.surface is before
    panel.formula.setText("x**2 + 3*y**2")
    panel.bounds.setText("-2, 2, -1, 1")
    panel._apply_formula()
    assert panel.error.text() == ""
    assert race.c.surface.key == "formula"
    assert race.c.surface.bounds == (-2.0, 2.0, -1.0, 1.0)
    panel.bounds.setText("1, 2, 3")
    panel._apply_formula()
    assert "four numbers" in panel.error.text()


def test_exports_write_valid_files(window, tmp_path, warnings, monkeypatch):
    from app.race import exports as rx

    ws = window.race
    ws.c.step(40)
    png, svg, win, gif = (tmp_path / n for n in ("s.png", "s.svg", "w.png", "r.gif"))
    rx.surface_png(ws, str(png), (1600, 1200))
    with Image.open(png) as im:
        assert im.size == (1600, 1200)
        small = np.asarray(im.convert("RGB").resize((64, 48))).reshape(-1, 3)
        assert len(np.unique(small, axis=0)) > 50  # a real picture, not a blank
    rx.surface_svg(ws, str(svg))
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and len(list(root.iter())) > 50
    rx.window_png(ws, str(win))
    with Image.open(win) as im:
        assert im.size[0] >= 800
    rx.gif(ws, str(gif), frames=10, size=(400, 300))
    with Image.open(gif) as im:
        # Pillow merges identical consecutive frames into one longer frame
        assert 7 <= im.n_frames <= 10 and im.size == (400, 300)
    rx.csv(ws, str(tmp_path / "t.csv"))
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0] == "racer,start,step,x,y,loss,lr" and len(lines) == 1 + 3 * 41
    rx.json(ws, str(tmp_path / "t.json"))
    doc = json.loads((tmp_path / "t.json").read_text())
    assert len(doc["racers"]) == 3 and len(doc["racers"][0]["x"]) == 41
    # an unwritable path: a message, no crash, no file
    surface_png = next(e for e in ws.exports() if e.label.startswith("Surface view as &PNG"))
    assert not window.run_export(surface_png, str(tmp_path / "no" / "x.png"))
    assert warnings and "does not exist" in warnings[-1][1]
    assert not list(tmp_path.glob(".*.tmp"))
    # the GIF says so before its seconds of rendering, not after
    rendered = []
    monkeypatch.setattr(rx, "_frames", lambda *a: rendered.append(a) or [])
    gif_export = next(e for e in ws.exports() if "GIF" in e.label)
    assert not window.run_export(gif_export, str(tmp_path / "no" / "r.gif"))
    assert "does not exist" in warnings[-1][1] and rendered == []


def test_session_round_trip_and_a_corrupt_file(window, tmp_path, warnings):
    c = window.race.c
    window.race.load_preset("saddle_noise")
    c.step(25)
    path = tmp_path / "race.json"
    assert window.save_session(str(path))
    c.set_surface(c.choice.__class__("beale"))
    assert window.open_session(str(path))
    assert c.surface.key == "saddle" and c.race.step_count == 25
    assert [s.name for s in c.specs][1] == "SGD + gradient noise"
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "losslab-race-session-1", "surface": {"key": "nope"}}')
    assert not window.open_session(str(bad))
    assert "unknown surface" in warnings[-1][1]
    assert c.surface.key == "saddle" and c.race.step_count == 25  # nothing changed
    # more racers than the Race shows (a session written by hand or for the command line)
    doc = json.loads(path.read_text())
    doc["racers"] = doc["racers"] * 6
    many = tmp_path / "many.json"
    many.write_text(json.dumps(doc))
    assert not window.open_session(str(many))
    assert "at most 10" in warnings[-1][1]
    assert window.race.table.rowCount() == len(c.specs) == len(doc["racers"]) // 6  # no change


def test_basin_map_runs_and_can_be_cancelled(race, qtbot, monkeypatch):
    ws = race
    messages = []
    ws.message.connect(messages.append)
    ws.c.set_surface(ws.c.choice.__class__("himmelblau"))
    ws.basin_button.setChecked(True)  # the full-size map, cancelled at once
    job = ws.basin_job
    assert job is not None and job.running()
    assert "128 x 128 starts, 500 steps" in messages[-1]
    ws.basin_button.setChecked(False)  # cancel
    assert not job.thread.isRunning()
    assert ws.basin_job is None and ws.basin_rgba is None
    # the grid and the steps are the class's: a small map is computed, and said, as asked
    monkeypatch.setattr(type(ws), "BASIN_RESOLUTION", 24)
    monkeypatch.setattr(type(ws), "BASIN_STEPS", 60)
    ws.findChild(QtWidgets.QPushButton, "basin_map").setChecked(True)
    assert "24 x 24 starts, 60 steps" in messages[-1]
    qtbot.waitUntil(lambda: ws.basin_job is None, timeout=60_000)
    assert ws.basin_rgba is not None and ws.basin_rgba.shape == (24, 24, 4)
    assert ws.basin_button.isChecked()
    assert "Basin map: 4 known minima;" in messages[-1]
    ws.c.set_surface(ws.c.choice.__class__("rosenbrock"))  # one minimum: said in the singular
    ws.basin_button.setChecked(True)
    qtbot.waitUntil(lambda: ws.basin_job is None, timeout=60_000)
    assert "Basin map: 1 known minimum;" in messages[-1]
    # L-BFGS runs one optimizer per start: its own (smaller) map, said so
    assert "L-BFGS: 32x32 in 40 steps" in ws.basin_button.toolTip()
    monkeypatch.setattr(type(ws), "BASIN_ONE_BY_ONE", (4, 3))
    ws.basin_button.setChecked(False)
    ws.c.set_optimizer(0, "lbfgs")
    ws.table.selectRow(0)
    ws.basin_button.setChecked(True)
    assert "4 x 4 starts, 3 steps" in messages[-1]
    qtbot.waitUntil(lambda: ws.basin_job is None, timeout=60_000)
    assert ws.basin_rgba.shape == (4, 4, 4)


def test_closing_with_a_worker_running_stops_its_thread(qtbot, tmp_path):
    from app.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, restore=False)
    w.show()
    w.race.basin_button.setChecked(True)
    thread = w.race.basin_job.thread
    assert thread.isRunning()
    w.close()
    assert not thread.isRunning()


def test_settings_remember_the_last_session(qtbot, tmp_path):
    from app.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, restore=False)
    w.race.load_preset("momentum_overshoot")
    w.race.c.step(12)
    w.close()
    again = MainWindow(settings=settings, restore=True)
    qtbot.addWidget(again)
    assert again.race.c.surface.key == "ill_conditioned"
    assert again.race.c.race.step_count == 12
    again.race.shutdown()


def test_every_preset_loads_and_runs(race):
    """One workspace for all presets: loading a preset replaces the whole race (surface, racers,
    steps), so each is checked from whatever the one before left."""
    names = preset_names()
    assert len(names) >= 10
    for name in names:
        race.load_preset(name)
        race.c.step(20)
        assert race.c.race.step_count == 20, name
        assert race.caption.text(), name
        assert race.table.rowCount() == len(race.c.specs), name


def test_racers_can_be_added_removed_and_retyped(race):
    c = race.c
    n = len(c.specs)
    c.add_racer("rprop")
    assert len(c.specs) == n + 1 and race.table.rowCount() == n + 1
    c.set_optimizer(0, "nadam")
    assert c.specs[0].optimizer.name == "nadam"
    c.step(3)
    c.remove_racer(0)
    assert len(c.specs) == n and c.race.step_count == 0


def test_a_racer_named_after_its_optimizer_is_renamed_when_the_optimizer_changes(race):
    """A preset's "SGD" racer retyped to Adam was still called "SGD"; a name of the user's
    own that doesn't say the optimizer stays."""
    c = race.c
    while len(c.specs) < 2:
        c.add_racer("sgd")
    c.set_optimizer(0, "sgd")
    c.set_optimizer(1, "momentum")
    c.set_hyper(0, "lr", 0.01)
    c.set_options(0, name="SGD lr 0.01")
    c.set_options(1, name="slow start")
    c.set_optimizer(0, "adam")
    c.set_optimizer(1, "adam")
    assert c.specs[0].label == "Adam" and c.specs[0].optimizer.hyper["lr"] == 0.01
    assert c.specs[1].label == "slow start"
    assert race.table.item(0, 1).text() == "Adam"


def test_theme_switch(window, monkeypatch):
    """A switch changes the palette only: setting the Fusion style again re-polished every
    widget (0.1-0.2 s per switch, and every window build switched twice)."""
    from PySide6 import QtGui, QtWidgets

    from app.theme import apply_theme

    app = QtWidgets.QApplication.instance()
    background = QtGui.QPalette.ColorRole.Window
    assert app.style().name().lower() == "fusion"
    styles = []
    monkeypatch.setattr(QtWidgets.QApplication, "setStyle", lambda *a: styles.append(a))
    window.set_theme("dark")
    assert window.dark and app.palette().color(background).lightness() < 100
    window.set_theme("light")
    assert not window.dark and app.palette().color(background).lightness() > 150
    assert styles == []
    monkeypatch.undo()
    app.setStyle("Windows")  # another style (as a fresh QApplication may have) becomes Fusion
    assert not apply_theme(app, "light")
    assert app.style().name().lower() == "fusion"


def test_colour_scale_choice_and_hover_readout(race, qtbot):
    ws = race
    ws.c.set_surface(ws.c.choice.__class__("rosenbrock"))
    assert ws.surface_panel.log_colour.isChecked()  # the surface's suggestion
    assert ws.view.scale == "log"
    ws.surface_panel.log_colour.setChecked(False)
    assert ws.view.scale == "linear"
    assert ws.view.image.image.max() > 100  # raw losses now, not log10 of them
    view = ws.view
    scene_pos = view.plot.vb.mapViewToScene(QtCore.QPointF(1.0, 1.0))
    with qtbot.waitSignal(view.hovered, timeout=2000) as blocker:
        view.scene().sigMouseMoved.emit(scene_pos)
    x, y, loss = blocker.args
    assert (x, y) == pytest.approx((1.0, 1.0), abs=0.02)
    assert loss == pytest.approx(ws.c.surface(*(np.float64(v) for v in (x, y))).item(), rel=1e-9)
    assert "loss = " in view.readout.text
