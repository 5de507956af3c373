"""The race keys (Space, Right, R) belong to the Race tab and leave focused controls their keys
(#12.7). A bare window with the workspace's race_actions() in its Race menu, as the main
window puts them there."""

import pytest
from PySide6 import QtCore, QtWidgets
from PySide6.QtTest import QTest

Key = QtCore.Qt.Key


@pytest.fixture
def bare(qtbot):
    from app.race.workspace import RaceWorkspace

    w = QtWidgets.QMainWindow()
    tabs = QtWidgets.QTabWidget()
    ws = RaceWorkspace()
    train = QtWidgets.QWidget()
    start = QtWidgets.QPushButton("Start", train)
    start.setObjectName("train_start")
    tabs.addTab(ws, "Race")
    tabs.addTab(train, "Train")
    w.setCentralWidget(tabs)
    menu = w.menuBar().addMenu("&Race")
    for act in ws.race_actions():
        menu.addAction(act)
    qtbot.addWidget(w)
    w.resize(1280, 720)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=2000)
    w.tabs, w.ws, w.start = tabs, ws, start
    yield w
    ws.shutdown()


def focus(qtbot, widget) -> None:
    widget.setFocus(QtCore.Qt.FocusReason.OtherFocusReason)
    qtbot.waitUntil(widget.hasFocus, timeout=2000)


def test_race_actions_api(bare):
    acts = bare.ws.race_actions()
    assert [a.shortcut().toString() for a in acts] == ["Space", "Right", "R"]
    assert [a.objectName() for a in acts] == ["race_play", "race_step", "race_reset"]
    assert bare.ws.race_actions() == acts  # the same actions every time
    assert all(
        a.shortcutContext() == QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut for a in acts
    )


def test_space_on_the_surface_plays_right_steps_r_resets(bare, qtbot):
    c, view = bare.ws.c, bare.ws.view
    focus(qtbot, view)  # the workspace focuses it on first show, too
    QTest.keyClick(view, Key.Key_Right)
    QTest.keyClick(view, Key.Key_Right)
    assert c.race.step_count == 2
    QTest.keyClick(view, Key.Key_Space)
    assert c.playing
    QTest.keyClick(view, Key.Key_Space)
    assert not c.playing
    QTest.keyClick(view, Key.Key_R)
    assert c.race.step_count == 0


def test_the_surface_has_the_focus_at_first(bare):
    assert bare.ws.view.hasFocus() or bare.ws.isAncestorOf(QtWidgets.QApplication.focusWidget())


def test_space_on_trains_start_button_presses_it_not_the_race(bare, qtbot):
    bare.tabs.setCurrentIndex(1)
    focus(qtbot, bare.start)
    pressed = []
    bare.start.clicked.connect(lambda: pressed.append(1))
    QTest.keyClick(bare.start, Key.Key_Space)
    QTest.keyClick(bare.start, Key.Key_Right)
    QTest.keyClick(bare.start, Key.Key_R)
    assert pressed == [1]
    assert not bare.ws.c.playing and bare.ws.c.race.step_count == 0
    bare.ws.race_actions()[0].trigger()  # the menu item, while the Race tab is hidden
    assert not bare.ws.c.playing


def test_right_on_a_slider_moves_the_slider(bare, qtbot):
    c = bare.ws.c
    slider = bare.ws.editor.fields["lr"].slider
    bare.ws.editor.parentWidget().parentWidget().ensureWidgetVisible(slider)
    focus(qtbot, slider)
    before = slider.value()
    QTest.keyClick(slider, Key.Key_Right)
    assert slider.value() == before + 1
    assert c.race.step_count == 0
    QTest.keyClick(slider, Key.Key_Space)  # a slider has no use for Space: it plays
    assert c.playing
    c.pause()


def test_keys_stay_in_text_boxes_tables_and_combos(bare, qtbot):
    ws, c = bare.ws, bare.ws.c
    c.step(3)
    focus(qtbot, ws.table)
    QTest.keyClick(ws.table, Key.Key_R)
    QTest.keyClick(ws.table, Key.Key_Space)
    assert c.race.step_count == 3 and not c.playing
    text = ws.editor.fields["lr"].text
    focus(qtbot, text)
    QTest.keyClick(text, Key.Key_R)
    QTest.keyClick(text, Key.Key_Space)
    assert c.race.step_count == 3 and not c.playing
    assert text.text().endswith("r ")  # typed, not taken
    focus(qtbot, ws.transport.speed)
    QTest.keyClick(ws.transport.speed, Key.Key_Right)
    assert c.race.step_count == 3


def test_tab_leaves_the_racers_table(bare, qtbot):
    table = bare.ws.table
    assert not table.tabKeyNavigation()
    focus(qtbot, table)
    QTest.keyClick(table, Key.Key_Tab)
    qtbot.waitUntil(lambda: not table.hasFocus(), timeout=2000)
