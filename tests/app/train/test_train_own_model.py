"""The Train tab on the user's own model (an experiment file, #14): picked through the controls,
checked on a worker thread, trained with live curves; a bad file's line; Reload after an edit;
the remembered path; Open in Landscape end to end."""

from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from app.train.own_model import SETTINGS_KEY
from core.train.experiment import load_experiment

EXAMPLES = Path(__file__).resolve().parents[3] / "core" / "train" / "examples"
MLP = EXAMPLES / "mlp_regression.py"

# a tiny classifier: a Linear(4, HIDDEN) net on 2 batches of 16; the file counts its imports
TINY = """\
from pathlib import Path
import torch
from torch import nn

HIDDEN = {hidden}
_ran = Path(__file__).with_suffix(".imports")
_ran.write_text(str(int(_ran.read_text()) + 1 if _ran.exists() else 1))


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 3))


def batches():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g))
            for _ in range(2)]
"""


def _params(hidden: int) -> int:
    return 4 * hidden + hidden + hidden * 3 + 3


def _w(parent, cls, name):
    found = parent.findChild(cls, name)
    assert found is not None, name
    return found


def _click(qtbot, parent, name):
    qtbot.mouseClick(_w(parent, QtWidgets.QPushButton, name), QtCore.Qt.MouseButton.LeftButton)


def _checked(ws, qtbot):
    qtbot.waitUntil(lambda: ws.controls.own.loader is None, timeout=60_000)


def _finish(ws, qtbot):
    qtbot.waitUntil(lambda: bool(ws.runs) and not ws.running, timeout=120_000)
    qtbot.waitUntil(lambda: not ws.save_jobs, timeout=30_000)
    ws.plots.redraw(force=True)
    return ws.runs[-1]


def _choose_own_model(ws, qtbot, monkeypatch, path):
    """Choose "Your own model (Python file)..." in the task list as a user does: the file
    chooser opens (patched to answer ``path``)."""
    asked = []

    def dialog(*args, **kw):
        asked.append(args)
        return str(path), "Experiment files (*.py)"

    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", dialog)
    task = _w(ws, QtWidgets.QComboBox, "task")
    index = task.findData("experiment")
    assert task.itemText(index) == "Your own model (Python file)..."
    task.setCurrentIndex(index)
    task.activated.emit(index)  # what a user's choice sends (setCurrentIndex alone does not)
    assert len(asked) == 1
    _checked(ws, qtbot)


def test_an_own_model_is_picked_trained_and_drawn(ws, qtbot, monkeypatch, settings):
    c = ws.controls
    _choose_own_model(ws, qtbot, monkeypatch, MLP)
    own = c.own
    assert own.state() == "ready" and own.message == ""
    assert settings.value(SETTINGS_KEY) == str(MLP)  # remembered
    note = _w(ws, QtWidgets.QLabel, "train_model_note")
    assert note.isVisible() and "python file.py" in note.text()
    assert "python file.py" in note.toolTip()
    assert "python file.py" in _w(ws, QtWidgets.QPushButton, "train_open_model").toolTip()
    # the file's suggested defaults: Adam, lr 0.01, 5 epochs
    assert c.optimizer.currentData() == "adam" and c.hyper["lr"] == 0.01
    assert c.epochs.value() == 5
    # the file decides its loss and its batches
    assert not c.train_form.isRowVisible(c.loss) and not c.train_form.isRowVisible(c.batch)
    exp = load_experiment(MLP)
    s = exp.check()
    text = c.model_text.text()
    assert "Sequential" in text and f"{s.parameters:,} parameters" in text
    assert "4 batches, 512 samples" in text and f"{s.loss:.5g}" in text
    assert "the mean of its loss(model, batch) over the file's batches" in text
    config = c.config()
    assert config.task == "experiment" and config.model_file == str(MLP)
    assert config.loss is None and config.batch_size is None
    c.epochs.setValue(1)
    _click(qtbot, ws, "start")
    run = _finish(ws, qtbot)
    assert run.status == "completed", ws.error.text()
    assert run.record.config["model_file"] == str(MLP)
    assert run.record.config["loss"] is None and run.record.config["batch_size"] is None
    x, y = ws.plots.curves[run].smooth.getData()
    assert len(x) == 32 and np.isfinite(y).all()  # 2,048 training points in batches of 64
    vx, vy = ws.plots.curves[run].val.getData()
    assert list(vx) == [1.0] and vy[0] == pytest.approx(run.record.epochs[-1]["val_loss"])
    assert "the file's batches" in run.config_text() and "batch None" not in run.config_text()
    assert run.task_label() == "Sequential from mlp_regression.py"
    assert not ws.plots.acc_plot.isVisible()  # a regression: no accuracy
    assert run.checkpoint is not None and ws.landscape_btn.isEnabled()
    # Continue resumes it from its own file
    c.epochs.setValue(1)
    more = ws.continue_run(run)
    assert more is not None, ws.error.text()
    more_run = _finish(ws, qtbot)
    assert more_run.status == "completed" and more_run.record.epochs[-1]["epoch"] == 2
    assert more_run.record.config["model_file"] == str(MLP)


def test_a_bad_file_says_its_line_start_refuses_and_reload_picks_up_edits(
    ws, qtbot, monkeypatch, tmp_path
):
    path = tmp_path / "mine.py"
    path.write_text("import torch\n\ndef model(:\n    pass\n")
    _choose_own_model(ws, qtbot, monkeypatch, path)
    c, own = ws.controls, ws.controls.own
    error = _w(ws, QtWidgets.QLabel, "model_file_error")
    assert "mine.py, line 3" in error.text() and "syntax error" in error.text()
    assert own.state() == "bad"
    _click(qtbot, ws, "start")
    assert not ws.runs and not ws.running
    assert "Cannot start" in ws.error.text() and "mine.py, line 3" in ws.error.text()
    # fixed, then Reload: checked again, the summary follows the file
    path.write_text(TINY.format(hidden=5))
    _click(qtbot, ws, "train_reload_model")
    _checked(ws, qtbot)
    assert error.text() == "" and own.state() == "ready"
    assert f"{_params(5):,} parameters" in c.model_text.text()
    assert "cross-entropy" in c.model_text.text()
    # an edit: Reload picks it up
    path.write_text(TINY.format(hidden=7))
    assert own.state() == "unchecked"  # the file changed since its check
    _click(qtbot, ws, "train_reload_model")
    _checked(ws, qtbot)
    assert f"{_params(7):,} parameters" in c.model_text.text()
    # edited again without Reload: Start checks it first, then trains the file as it is now
    path.write_text(TINY.format(hidden=9))
    c.epochs.setValue(2)
    _click(qtbot, ws, "start")
    assert not ws.runs  # not yet: the file is being checked
    run = _finish(ws, qtbot)
    assert run.status == "completed", ws.error.text()
    assert run.record.started["n_params"] == _params(9)
    assert f"{_params(9):,} parameters" in c.model_text.text()
    # a classifier with the default loss has an accuracy, and it is drawn
    assert run.final("val_accuracy") is not None
    assert ws.plots.acc_plot.isVisible()
    ax, ay = ws.plots.curves[run].acc.getData()
    assert list(ax) == [1.0, 2.0]
    # broken again: Start refuses with the new line, and no run is added
    path.write_text(TINY.format(hidden=9) + "\nraise RuntimeError('oops')\n")
    _click(qtbot, ws, "start")
    qtbot.waitUntil(
        lambda: own.loader is None and "Cannot start" in ws.error.text(), timeout=60_000
    )
    assert len(ws.runs) == 1 and "oops" in ws.error.text() and "mine.py, line" in error.text()


def test_the_remembered_file_is_restored_without_running_it(qtbot, settings, tmp_path):
    from app.train.workspace import TrainWorkspace

    path = tmp_path / "mine.py"
    path.write_text(TINY.format(hidden=5))
    counter = path.with_suffix(".imports")
    settings.setValue(SETTINGS_KEY, str(path))
    w = TrainWorkspace(settings=settings)
    qtbot.addWidget(w)
    try:
        own = w.controls.own
        w.controls.set_task("experiment")  # by code: no file chooser
        assert own.path == str(path) and own.state() == "unchecked"
        assert not counter.exists()  # nothing of the user's code ran
        label = _w(w, QtWidgets.QLabel, "model_file_label")
        assert "mine.py" in label.text() and "press Reload or Start" in label.text()
        _click(qtbot, w, "train_reload_model")
        qtbot.waitUntil(lambda: own.loader is None, timeout=60_000)
        assert counter.read_text() == "1" and own.state() == "ready"
    finally:
        w.shutdown()


def test_no_file_yet_start_says_so(ws, monkeypatch):
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: ("", ""))
    ws.controls.set_task("experiment")
    _click_start = ws.start
    _click_start()
    assert not ws.runs and "Choose your model file first" in ws.error.text()
    with pytest.raises(ValueError, match="Choose your model file"):
        ws.controls.config()


@pytest.mark.slow
def test_an_own_model_run_opens_in_the_landscape_and_its_centre_is_its_best_loss(
    main_window, qtbot, monkeypatch, settings
):
    w = main_window
    train = w.train
    train.controls.own.settings = settings  # keep the user's real settings untouched
    _choose_own_model(train, qtbot, monkeypatch, MLP)
    train.controls.epochs.setValue(2)
    _click(qtbot, train, "start")
    run = _finish(train, qtbot)
    assert run.status == "completed", train.error.text()
    best = run.record.finished["best_val_loss"]
    assert best == pytest.approx(min(e["val_loss"] for e in run.record.epochs))
    _click(qtbot, train, "open_in_landscape")
    lw = w.landscape
    assert w.tabs.currentWidget() is lw
    _w(lw, QtWidgets.QSpinBox, "landscape_resolution").setValue(7)
    _w(lw, QtWidgets.QSpinBox, "landscape_eigenvalues").setValue(0)
    _click(qtbot, lw, "landscape_compute")
    qtbot.waitUntil(lambda: lw.job is None, timeout=120_000)
    assert lw.finished_ok, lw.error.text()
    land = lw.landscape
    assert land.loss.shape == (7, 7)
    assert land.loss[3, 3] == pytest.approx(best, rel=1e-5)
    assert land.meta["centre_loss"] == pytest.approx(best, rel=1e-6)
    assert "mlp_regression.py" in lw.facts.text()


def test_a_start_waiting_for_the_check_is_dropped_when_the_task_changes(ws, qtbot, tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(TINY.format(hidden=5))
    ws.controls.set_task("experiment")
    ws.controls.own.set_path(str(path), check=False)
    ws.start()  # not checked yet: the check runs first, the start waits for it
    assert ws.controls.own.checking and not ws.runs
    ws.controls.set_task("linreg")
    qtbot.waitUntil(lambda: not ws.controls.own.checking, timeout=60_000)
    assert not ws.runs and not ws.running  # the other task did not start by itself
