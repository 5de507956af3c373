"""What a new user met on the Train tab: axis titles over tick labels, stale and late messages,
the lr in force, ranges of another task, continued runs' names, what the plot export holds."""

import pytest
from PySide6 import QtGui, QtWidgets


def _type(box, text):
    box.text.setText(text)
    box.text.editingFinished.emit()


def _lr_box(ws):
    from app.widgets import NumberEdit

    return ws.controls.findChild(NumberEdit, "param_lr")


def _paint(widget):
    for _ in range(3):  # pyqtgraph widens an axis after painting its labels, then re-lays out
        widget.grab()
        QtWidgets.QApplication.processEvents()


def _overlaps(plot) -> list:
    """The tick labels of ``plot``'s left axis that the axis title runs into."""
    axis = plot.getAxis("left")
    image = QtGui.QImage(10, 10, QtGui.QImage.Format.Format_ARGB32)
    painter = QtGui.QPainter(image)
    try:
        texts = axis.generateDrawSpecs(painter)[2]
    finally:
        painter.end()
    assert texts, "no tick labels drawn"
    label = axis.label.mapRectToParent(axis.label.boundingRect())
    margin = axis.label.document().documentMargin()  # the title's glyphs sit inside it
    title_right = label.right() - margin
    return [text for rect, _flags, text in texts if rect.left() < title_right]


@pytest.mark.parametrize("size", [(1430, 850), (1270, 670), (900, 500)])
@pytest.mark.parametrize("values", [(0.0004, 0.0008), (0.002, 0.008), (12000.5, 70000.25)])
def test_left_axis_titles_clear_their_tick_labels(ws, qtbot, size, values):
    ws.resize(*size)
    p = ws.plots
    for plot in p.plots:
        plot.plot([0, 100], list(values))
        plot.setYRange(*values, padding=0)
    _paint(ws)
    for plot in p.plots:
        if plot.isVisible():
            assert _overlaps(plot) == [], plot.objectName()


def test_left_axis_titles_clear_their_tick_labels_in_exports(ws, qtbot, tmp_path):
    p = ws.plots
    p.lr_plot.plot([0, 100], [0.0004, 0.0008])
    p.lr_plot.setYRange(0.0004, 0.0008, padding=0)
    _paint(ws)
    with p.export_view():
        _paint(p)
        assert _overlaps(p.lr_plot) == []


def test_the_refusal_under_start_follows_the_values(ws, qtbot):
    box = _lr_box(ws)
    _type(box, "1000")
    ws.start()
    assert not ws.runs and "lr: 1000" in ws.error.text()
    _type(box, "0.02")
    qtbot.waitUntil(lambda: ws.error.text() == "", timeout=5000)
    assert ws.controls.hyper["lr"] == 0.02
    # two problems, then one fixed: only the other is listed
    _type(box, "1000")
    ws.controls.clip.setChecked(True)
    clip = ws.controls.clip_value
    _type(clip, "abc")
    ws.start()
    assert "lr: 1000" in ws.error.text() and "'abc'" in ws.error.text()
    _type(box, "0.02")
    qtbot.waitUntil(lambda: "lr:" not in ws.error.text(), timeout=5000)
    assert "'abc'" in ws.error.text()


def test_conflicting_settings_are_reported_as_they_are_chosen(ws, qtbot):
    c = ws.controls
    conflict = ws.findChild(QtWidgets.QLabel, "config_error")
    c.set_task("sine")
    c.forms.setChecked(True)
    qtbot.waitUntil(lambda: conflict.text() == "" and not c._check_timer.isActive(), timeout=5000)
    c.optimizer.setCurrentIndex(c.optimizer.findData("adam"))
    qtbot.waitUntil(lambda: "choose the SGD optimizer" in conflict.text(), timeout=5000)
    assert conflict.isVisibleTo(ws)
    c.optimizer.setCurrentIndex(c.optimizer.findData("sgd"))
    qtbot.waitUntil(lambda: conflict.text() == "", timeout=5000)

    c.set_task("lenet")
    c.optimizer.setCurrentIndex(c.optimizer.findData("lbfgs"))
    c.batch.setValue(32)
    qtbot.waitUntil(lambda: "L-BFGS" in conflict.text(), timeout=5000)
    assert "full batch" in conflict.text()  # the batch box's own words for 0
    c.batch.setValue(0)
    qtbot.waitUntil(lambda: conflict.text() == "", timeout=5000)


def test_the_configuration_shows_the_lr_in_force(ws, qtbot):
    from app.train.runs import Run
    from core.optimizers import get_optimizer
    from core.train.runs import RunRecord

    record = RunRecord(
        name="a",
        config={
            "task": "linreg",
            "optimizer": {"name": "adam", "hyper": {}},
            "batch_size": 0,
            "epochs": 3,
            "loss": {"name": "mse"},
        },
    )
    default = get_optimizer("adam").param("lr").default
    assert Run(record, "#ff0000").config_text() == f"Adam, lr {default:g}, full batch, 3 ep, mse"


def test_validation_plots_range_over_what_is_shown(ws, train_in):
    sine = train_in(ws, "sine", 40, lr=1e-6)
    p = ws.plots
    assert p.val_plot.viewRange()[0][1] >= 30
    ws.controls.set_task("linreg")  # nothing of this task yet: the plots are empty
    ws.controls.set_task("sine")
    sine.shown = False
    p.update_visibility()
    _paint(ws)
    for plot in (p.val_plot, p.acc_plot, p.loss_plot, p.lr_plot):
        (x0, x1), (y0, y1) = plot.viewRange()
        assert x1 <= 2 and y1 <= 2, plot.objectName()
    sine.shown = True
    p.update_visibility()
    _paint(ws)  # pyqtgraph autoscales as it paints
    assert p.val_plot.viewRange()[0][1] >= 30 and p.val_plot.viewRange()[1][1] > 100


def test_a_continued_run_is_named_after_what_it_runs_with(ws, qtbot, train_in):
    first = train_in(ws, "linreg", 4, lr=0.05)
    ws.controls.epochs.setValue(2)
    ws.controls.hyper["lr"] = 0.1
    ws.table.selectRow(0)
    new = ws.continue_run(first)
    assert new is not None, ws.error.text()
    assert new.name == f"SGD 0.1, continued from {first.name}"
    qtbot.waitUntil(lambda: not ws.running, timeout=60_000)
    ws.table.selectRow(1)
    ws.plots.redraw(force=True)
    assert "in use: lr 0.1" in ws.plots.details.text()


def test_the_plot_export_holds_only_the_plots(ws, tmp_path, train_in):
    train_in(ws, "linreg", 3)
    p = ws.plots
    seen = {}

    def spy(widget, *args, **kw):
        seen["options"] = p.options.isVisibleTo(p)
        seen["details"] = p.details.isVisibleTo(p)
        seen["handles"] = (p.split.handleWidth(), p.top.handleWidth())
        return QtGui.QImage(4, 4, QtGui.QImage.Format.Format_ARGB32)

    from app import export

    real = export.widget_png
    export.widget_png = spy
    try:
        assert ws.export_image(str(tmp_path / "a.png"))
    finally:
        export.widget_png = real
    assert seen == {"options": False, "details": False, "handles": (0, 0)}
    assert p.options.isVisibleTo(p) and p.details.isVisibleTo(p)  # put back
    assert p.split.handleWidth() > 0
    # the real thing: the margins are the plots' white, not the window's grey
    assert ws.export_image(str(tmp_path / "b.png"))
    image = QtGui.QImage(str(tmp_path / "b.png"))
    corner = image.pixelColor(image.width() - 2, image.height() // 2)
    assert corner == QtGui.QColor("#ffffff"), corner.name()


def test_a_diverged_run_is_worded_with_a_colon(ws, qtbot):
    from app.train.details import details
    from app.train.runs import Run
    from core.train.runs import RunRecord

    record = RunRecord(name="a", config={"task": "linreg"})
    record.finished = {"status": "diverged", "divergence": {"reason": "loss exploded to 1e30"}}
    run = Run(record, "#ff0000")
    assert "diverged: loss exploded to 1e30" in details(run, [], [run])


def test_a_short_openmp_spin_counts_as_passive_waiting(monkeypatch):
    """GOMP_SPINCOUNT=30000 (a short spin, then sleep) keeps every core for torch behind the
    window, as 0 does; only long spins (libgomp's default) leave a core to the window."""
    from app.openmp import PASSIVE_ENV, SHORT_SPIN, passive_waiting

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    for value, passive in (("0", True), (PASSIVE_ENV[1], True), (str(SHORT_SPIN * 100), False)):
        monkeypatch.setenv("GOMP_SPINCOUNT", value)
        assert passive_waiting() is passive, value
    monkeypatch.delenv("GOMP_SPINCOUNT")
    assert not passive_waiting()
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    assert passive_waiting()
