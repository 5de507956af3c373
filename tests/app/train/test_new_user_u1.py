"""What a new user met on the Train tab (second pass): a legend over the curves, a details
line cut in half, a continue with another optimizer failing with a bare KeyError."""

from PySide6 import QtWidgets


def test_the_sine_legend_keeps_to_the_free_upper_left_quarter(qtbot):
    from app.train.views import SineView

    view = SineView()
    qtbot.addWidget(view)
    view.resize(420, 300)
    view.show()
    long = "SGD + momentum 0.05, continued from SGD + momentum 0.01"
    view.show_fits([(long, "#e6194b", (0, 1, 0, -0.16)), ("Adam 0.001", "#3cb44b", (0, 0, 0, 0))])
    QtWidgets.QApplication.processEvents()
    assert view.legend.objectName() == "sine_legend"
    half = view.plotItem.vb.width() / 2
    assert view.legend_width() <= half
    assert view.names[0] == long  # the full name is kept; only the legend shows it elided
    assert view.legend.getLabel(view.curves[0]).text.endswith("…")
    view.resize(1200, 300)  # wider: the whole name fits again
    QtWidgets.QApplication.processEvents()
    assert view.legend.getLabel(view.curves[0]).text == long


def test_continue_under_an_optimizer_that_cannot_take_the_state_says_so(ws, train_in):
    first = train_in(ws, "linreg", 2, optimizer="momentum")
    c = ws.controls
    c.optimizer.setCurrentIndex(c.optimizer.findData("adam"))
    ws.table.selectRow(0)
    assert ws.continue_run(first) is None and len(ws.runs) == 1
    text = ws.findChild(QtWidgets.QLabel, "train_error").text()
    assert "SGD + momentum's running state, which Adam cannot take over" in text
    assert "--optimizer" not in text  # the GUI's words


def test_an_emptied_epochs_box_is_marked_and_start_refuses(ws, qtbot):
    """A QSpinBox left empty still reports its last value: Start trained 999,999 epochs."""
    epochs = ws.findChild(QtWidgets.QSpinBox, "epochs")
    epochs.setValue(999_999)
    epochs.lineEdit().clear()  # the user selected the number and deleted it
    said = "Epochs: type a whole number, 1 .. 1,000,000"
    live = ws.findChild(QtWidgets.QLabel, "config_error")  # above Start, as it is typed
    qtbot.waitUntil(lambda: live.text() == said, timeout=2000)
    assert "border" in epochs.styleSheet()
    ws.start()
    assert not ws.runs and not ws.running
    assert said in ws.findChild(QtWidgets.QLabel, "train_error").text()
    epochs.lineEdit().setText("3")  # a number again: the mark and the message go
    qtbot.waitUntil(lambda: live.text() == "", timeout=2000)
    assert epochs.styleSheet() == "" and epochs.value() == 3


def test_a_third_line_of_details_scrolls_instead_of_being_cut(ws, qtbot):
    p = ws.plots
    box = ws.findChild(QtWidgets.QScrollArea, "run_details_box")
    label = ws.findChild(QtWidgets.QLabel, "run_details")
    height = box.height()
    label.setText(" | ".join(["diverged: loss exploded to 4.16e+10 at step 62"] * 12))
    qtbot.waitUntil(lambda: label.height() >= label.heightForWidth(label.width()), timeout=2000)
    assert label.heightForWidth(label.width()) > height  # three lines or more: all there
    assert box.height() == height and box.verticalScrollBar().maximum() > 0
    assert p.split.height() > 0


def test_the_runs_table_tells_a_continued_run_from_its_source(qtbot):
    """Both showed as "SGD + momentum 0...." in a 150 px Name column."""
    from app.train.runs import RunsTable

    table = RunsTable()
    qtbot.addWidget(table)
    shown = table.fontMetrics().horizontalAdvance("SGD + momentum 0.05, c…")
    assert shown <= table.columnWidth(table.COLUMNS.index("Name")) - 12  # less the cell's margins


def test_continuing_with_the_same_optimizer_reads_no_checkpoint(monkeypatch):
    """The window asks on its own thread: when the run's optimizer is the one asked for, the
    checkpoint file (large for an own model) is not opened to ask whether it fits."""
    from app.train import resume_check
    from core.optimizers import OptimizerSpec

    opened = []
    monkeypatch.setattr(resume_check, "load_checkpoint", lambda p: opened.append(p) or {})
    spec = OptimizerSpec("adam", {"lr": 0.01})
    assert resume_check.optimizer_refusal("c.pt", spec, saved_with="adam") == ""
    assert opened == []
    assert resume_check.optimizer_refusal("c.pt", spec, saved_with="momentum") == ""
    assert opened == ["c.pt"]  # another optimizer: the file is read (and holds no state here)
