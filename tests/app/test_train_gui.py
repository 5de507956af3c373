"""The Train workspace: real training on a worker thread, driven as a user would."""

import pytest
from PySide6 import QtCore, QtWidgets


@pytest.fixture
def window(qtbot, tmp_path):
    from app.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, restore=False)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.train.shutdown()
    w.race.shutdown()


def _choose(train, task, **kw):
    train.task.setCurrentIndex(train.task.findData(task))
    if "dataset" in kw:
        train.dataset.setCurrentIndex(train.dataset.findData(kw["dataset"]))
    if "epochs" in kw:
        train.epochs.setValue(kw["epochs"])


def test_sine_fit_runs_and_the_curves_follow(window, qtbot):
    t = window.train
    _choose(t, "sine", epochs=300)
    assert [t.loss.itemData(i) for i in range(t.loss.count())] == [
        "mse",
        "l1",
        "huber",
        "smooth_l1",
    ]
    t.start()
    assert not t.start_btn.isEnabled() and t.stop_btn.isEnabled()
    qtbot.waitUntil(lambda: t.job is None, timeout=60_000)
    assert t.finished.reason == "completed" and len(t.steps) == 300
    x, y = t.raw_curve.getData()
    assert len(x) == 300 and y[-1] < y[0]
    assert "y = " in t.details.text()
    assert t.start_btn.isEnabled() and t.progress.value() == 100


def test_pause_resume_and_stop(window, qtbot):
    t = window.train
    _choose(t, "lenet", dataset="synthetic", epochs=50)
    t.start()
    qtbot.waitUntil(lambda: len(t.steps) >= 3, timeout=60_000)
    t.toggle_pause()
    assert t.pause_btn.text() == "Resume"
    qtbot.wait(300)
    n = len(t.steps)
    qtbot.wait(400)
    assert len(t.steps) <= n + 1  # at most the step that was under way
    t.toggle_pause()
    qtbot.waitUntil(lambda: len(t.steps) > n + 2, timeout=30_000)
    t.stop()
    qtbot.waitUntil(lambda: t.job is None, timeout=30_000)
    assert t.finished.reason == "stopped"
    assert t.finished.steps < 50 * 125


def test_an_error_in_the_worker_reaches_the_ui(window, qtbot, monkeypatch):
    import app.train.workspace as ws

    def broken(config, control):
        yield from ()
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(ws, "train", broken)
    t = window.train
    _choose(t, "linreg", epochs=5)
    t.start()
    qtbot.waitUntil(lambda: t.job is None, timeout=10_000)
    assert "Training failed: RuntimeError: the GPU caught fire" in t.error.text()
    assert t.start_btn.isEnabled()


def test_closing_during_training_joins_the_thread(qtbot, tmp_path):
    from app.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, restore=False)
    w.show()
    _choose(w.train, "lenet", dataset="synthetic", epochs=50)
    w.train.start()
    thread = w.train.job.thread
    qtbot.waitUntil(lambda: len(w.train.steps) >= 1, timeout=60_000)
    w.close()
    assert not thread.isRunning()


def test_a_bad_value_is_refused_before_start(window):
    t = window.train
    _choose(t, "sine")
    t.hyper["lr"] = 1e9  # out of the allowed range
    t.start()
    assert t.job is None and "Invalid lr" in t.error.text()
    assert isinstance(t.error, QtWidgets.QLabel)
