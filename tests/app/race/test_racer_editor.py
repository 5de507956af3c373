"""The racer editor always shows the selected racer; one list of specs; inline errors (#12, #13)."""

import pytest
from PySide6 import QtCore, QtWidgets

from app.widgets import NumberEdit


@pytest.fixture
def ws(race_ws):
    return race_ws


def shows_selected(ws) -> None:
    """The editor's form is the selected racer's: its optimizer, its fields, their values."""
    r = ws.selected()
    spec = ws.c.specs[r]
    editor = ws.editor
    assert editor.row == r
    assert editor.optimizer == spec.optimizer.name
    combo = editor.body.findChild(QtWidgets.QComboBox, "racer_optimizer")
    assert combo.currentData() == spec.optimizer.name
    values = ws.c.race.values(r)
    hyper = {n: w for n, w in editor.fields.items() if n in values}
    assert set(hyper) == set(values)  # no field of another optimizer
    for name, w in hyper.items():
        if isinstance(w, NumberEdit):
            assert w.value() == pytest.approx(values[name]), name
            assert float(w.text.text()) == pytest.approx(values[name], rel=1e-5), name


def test_a_preset_chosen_in_the_box_shows_its_racer_in_the_editor(ws):
    panel = ws.surface_panel
    ws.c.add_racer("rmsprop")
    ws.table.selectRow(3)
    shows_selected(ws)
    assert "alpha" in ws.editor.fields
    index = panel.presets.findData("lr_too_high")
    panel.presets.setCurrentIndex(index)
    panel.presets.activated.emit(index)  # what a user's choice sends
    assert ws.c.specs[3].optimizer.name == "sgd" and ws.selected() == 3
    shows_selected(ws)
    assert "alpha" not in ws.editor.fields
    assert ws.editor.fields["lr"].value() == pytest.approx(0.105)
    # editing the shown racer edits that racer, with its own hyperparameters
    ws.editor.fields["momentum"].text.setText("0.5")
    ws.editor.fields["momentum"].text.editingFinished.emit()
    assert ws.c.race.values(3)["momentum"] == 0.5
    assert ws.editor.error_texts() == {}
    # the box names the preset that was loaded
    assert panel.presets.currentText() == "Learning rate too high"


def test_row_zero_after_a_preset(ws):
    ws.load_preset("lr_too_high")
    assert ws.selected() == 0
    shows_selected(ws)
    assert ws.editor.fields["lr"].value() == pytest.approx(0.02)


def test_a_session_adds_removes_and_moves_keep_the_editor_on_the_selected_racer(
    main_window, tmp_path
):
    ws = main_window.race
    c = ws.c
    ws.load_preset("sgd_vs_adam_rosenbrock")
    path = tmp_path / "s.json"
    assert main_window.save_session(str(path))
    ws.load_preset("lr_too_high")
    ws.table.selectRow(2)
    assert main_window.open_session(str(path))
    shows_selected(ws)
    c.add_racer("adagrad")
    shows_selected(ws)
    ws.table.selectRow(1)
    c.remove_racer(1)
    shows_selected(ws)
    ws.table.selectRow(0)
    first = c.specs[0]
    ws.findChild(QtWidgets.QToolButton, "move_down").click()
    assert c.specs[1] == first and ws.selected() == 1  # the selection follows the racer
    shows_selected(ws)
    c.move_racer(1, 0)  # from elsewhere: the row stays, the racer in it changes
    assert ws.selected() == 1
    shows_selected(ws)


def test_an_edit_from_elsewhere_and_an_optimizer_change_show_in_the_editor(ws, qtbot):
    c = ws.c
    c.set_hyper(0, "lr", 0.004)  # not through the editor (a script, an undo)
    shows_selected(ws)
    assert ws.editor.fields["lr"].text.text() == "0.004"
    combo = ws.editor.body.findChild(QtWidgets.QComboBox, "racer_optimizer")
    combo.setCurrentIndex(combo.findData("rmsprop"))
    assert c.specs[0].optimizer.name == "rmsprop"
    shows_selected(ws)
    ws.editor.fields["alpha"].text.setText("0.9")
    ws.editor.fields["alpha"].text.editingFinished.emit()
    assert c.race.values(0)["alpha"] == 0.9 and not ws.editor.error_texts()
    qtbot.wait(1)  # the replaced form is deleted later: nothing may still point at it
    shows_selected(ws)


def test_one_list_of_specs(ws):
    c = ws.c
    assert c.specs == tuple(c.race.specs)
    c.set_hyper(1, "lr", 3e-4)
    assert c.specs[1].optimizer.hyper["lr"] == 3e-4 and c.specs == tuple(c.race.specs)
    c.set_options(2, name="fast")
    assert c.specs == tuple(c.race.specs)
    with pytest.raises(AttributeError):
        c.specs = []  # the race owns the list


def test_a_one_racer_edit_refreshes_its_row_only(ws, monkeypatch, qtbot):
    table = ws.table
    rebuilt = []
    original = table.rebuild
    monkeypatch.setattr(table, "rebuild", lambda: (rebuilt.append(1), original()))
    name_item = table.item(2, 1)
    with qtbot.waitSignal(ws.c.racerChanged, timeout=1000) as sig:
        ws.c.set_options(2, name="Fast Adam")
    assert sig.args == [2]
    assert rebuilt == [] and table.item(2, 1) is name_item  # the same cell, updated
    assert name_item.text() == "Fast Adam"
    ws.c.set_hyper(2, "lr", 0.02)
    assert rebuilt == [] and table.item(2, 3).text() == "0.02"
    ws.c.add_racer("sgd")  # a new list: the table is rebuilt
    assert rebuilt == [1]


def test_an_out_of_range_value_is_marked_at_its_box_and_changes_nothing(ws):
    c = ws.c
    lr = ws.editor.fields["lr"]
    before = c.race.lr(0)
    lr.text.setText("1000")
    lr.text.editingFinished.emit()
    error = lr.findChild(QtWidgets.QLabel, "number_error")
    assert "out of range" in error.text() and "1e-08 .. 100" in error.text()
    assert error.isVisible() and lr.isAncestorOf(error)  # beside the box, not a page away
    assert "border" in lr.text.styleSheet()
    assert c.race.lr(0) == before and lr.value() == before
    lr.text.setText("0.002")
    lr.text.editingFinished.emit()
    assert c.race.lr(0) == 0.002
    assert lr.error_text() == "" and not error.isVisible() and lr.text.styleSheet() == ""


def test_a_value_the_optimizer_refuses_is_marked_at_its_box(ws):
    c = ws.c
    c.set_optimizer(0, "nesterov")
    momentum = ws.editor.fields["momentum"]
    momentum.text.setText("0")  # in range, but Nesterov needs a momentum
    momentum.text.editingFinished.emit()
    assert "Nesterov" in momentum.error_text()
    assert c.race.values(0)["momentum"] == 0.9 and momentum.value() == 0.9
    # a refused tick of a check box is shown under that box
    ws.editor.fields["momentum"].text.setText("0.8")
    ws.editor.fields["momentum"].text.editingFinished.emit()
    assert momentum.error_text() == ""
    c.set_optimizer(0, "momentum")  # nesterov off, dampening may be set
    ws.editor.fields["dampening"].text.setText("0.5")
    ws.editor.fields["dampening"].text.editingFinished.emit()
    ws.editor.fields["nesterov"].setChecked(True)
    assert "Nesterov" in ws.editor.field_errors["nesterov"].text()
    assert not c.specs[0].optimizer.hyper.get("nesterov")


def test_number_edit_api():
    box = NumberEdit(0.0, 1.0, False, 0.5)
    seen = []
    box.committed.connect(seen.append)
    box.text.setText("2")
    box.text.editingFinished.emit()
    assert seen == [] and box.value() == 0.5 and "allowed 0 .. 1" in box.error_text()
    box.text.setText("0.25")
    box.text.editingFinished.emit()
    assert seen == [0.25] and box.value() == 0.25 and box.error_text() == ""
    box.set_error("refused")
    assert box.error_text() == "refused"
    box.set_value(0.75)  # from the program: no signal, the mark goes
    assert seen == [0.25] and box.error_text() == "" and box.text.text() == "0.75"
    box.text.editingFinished.emit()  # focus leaves without a change: nothing to commit
    assert seen == [0.25]


def test_every_race_input_has_a_tooltip(ws):
    inputs = (
        QtWidgets.QAbstractButton,
        QtWidgets.QComboBox,
        QtWidgets.QLineEdit,
        QtWidgets.QAbstractSpinBox,
        QtWidgets.QAbstractSlider,
        QtWidgets.QTableWidget,
    )
    missing = []
    for w in ws.findChildren(QtWidgets.QWidget):
        if not isinstance(w, inputs) or isinstance(w, QtWidgets.QScrollBar):
            continue
        if not w.isVisibleTo(ws):
            continue
        if isinstance(w, QtWidgets.QLineEdit) and isinstance(
            w.parent(), QtWidgets.QAbstractSpinBox | QtWidgets.QComboBox
        ):
            continue  # the box's own line edit: the box has the tip
        tipped = w
        while tipped is not None and not tipped.toolTip() and tipped is not ws:
            tipped = tipped.parentWidget()
        if tipped is None or tipped is ws:
            missing.append(f"{type(w).__name__} {w.objectName()!r} {getattr(w, 'text', str)()!r}")
    assert not missing, missing
    lr = ws.editor.fields["lr"]
    assert "range 1e-08 .. 100" in lr.toolTip()


def test_small_things(ws, qtbot):
    panel = ws.surface_panel
    ws.c.set_surface(ws.c.choice.__class__("rastrigin"))
    text = panel.bounds.text()
    assert text == "-5.12, 5.12, -5.12, 5.12"
    qtbot.waitUntil(lambda: panel.bounds.width() > 0, timeout=1000)
    assert panel.bounds.fontMetrics().horizontalAdvance(text) < panel.bounds.width() - 8
    assert panel.presets.currentIndex() == 0  # a new surface: no preset named
    speed = ws.transport.speed
    speed.setValue(1)
    assert speed.text() == "1 step/frame"
    speed.setValue(3)
    assert speed.text() == "3 steps/frame" and ws.c.speed == 3
    ws.load_preset("sgd_vs_adam_rosenbrock")
    ws.table.selectRow(3)
    ws.c.step(2)
    html = ws.explain.text.toPlainText()
    assert "Adam: lr 0.05, beta1 0.9" in html


def test_the_empty_loss_plot_has_no_negative_steps(ws, qtbot):
    (x0, x1), _ = ws.loss.viewRange()
    assert x0 >= 0 and x1 <= 20
    ws.c.step(50)
    qtbot.waitUntil(lambda: ws.loss.viewRange()[0][1] >= 50, timeout=2000)  # drawn lazily
    assert ws.loss.viewRange()[0][0] >= 0


def test_hover_text_goes_with_the_surface(ws, qtbot):
    view = ws.view
    scene_pos = view.plot.vb.mapViewToScene(QtCore.QPointF(1.0, 1.0))
    view.scene().sigMouseMoved.emit(scene_pos)
    assert "loss = " in view.readout.text
    ws.c.set_surface(ws.c.choice.__class__("beale"))
    assert view.readout.text == ""


def test_a_basin_overlay_is_resampled_onto_the_terrain_and_shaded():
    import numpy as np

    from app.views.surface3d import _overlay_rgba

    overlay = np.zeros((2, 2, 4), np.uint8)  # [iy, ix]
    overlay[0, 1] = (200, 0, 0, 255)  # low y, high x: red
    overlay[1, 0] = (0, 200, 0, 255)  # high y, low x: green
    t = np.ones((4, 3))  # [ix, iy] heights, all at the top: no darkening
    out = _overlay_rgba(overlay, (3, 4), t).reshape(4, 3, 4)  # back to [ix, iy]
    assert out[3, 0, :3] == pytest.approx((200 / 255, 0, 0), abs=1e-6)
    assert out[0, 2, :3] == pytest.approx((0, 200 / 255, 0), abs=1e-6)
    low = _overlay_rgba(overlay, (3, 4), np.zeros((4, 3))).reshape(4, 3, 4)
    assert low[3, 0, 0] == pytest.approx(0.55 * 200 / 255, abs=1e-6)  # valleys darker


def test_an_optional_number_shows_auto_not_a_value_torch_does_not_use(ws):
    """CyclicLR's step_size_down is None (torch uses step_size_up): the box said 1."""
    ws.table.selectRow(0)
    sched = ws.editor.findChild(QtWidgets.QComboBox, "racer_schedule")
    sched.setCurrentIndex(sched.findData("cyclic"))
    box = ws.editor.findChild(QtWidgets.QSpinBox, "param_step_size_down")
    assert box.text() == "auto" and "auto" in box.toolTip()
    assert ws.c.specs[0].scheduler.resolved()["step_size_down"] is None
    box.setValue(20)
    assert ws.c.specs[0].scheduler.resolved()["step_size_down"] == 20
    box = ws.editor.findChild(QtWidgets.QSpinBox, "param_step_size_down")  # the form is new
    assert box.value() == 20
    box.setValue(box.minimum())
    assert ws.c.specs[0].scheduler.resolved()["step_size_down"] is None
    assert ws.editor.error_texts() == {}
