"""The Train workspace: real training on worker threads, driven as a user would."""

import csv
import gzip
import hashlib
import io
import json
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets


def _choose(train, task, **kw):
    c = train.controls
    c.set_task(task)
    if "dataset" in kw:
        c.dataset.setCurrentIndex(c.dataset.findData(kw["dataset"]))
    if "epochs" in kw:
        c.epochs.setValue(kw["epochs"])
    if "limit" in kw:
        c.limit.setValue(kw["limit"])
    if "lr" in kw:
        c.hyper["lr"] = kw["lr"]


def _finish(train, qtbot, timeout=120_000):
    qtbot.waitUntil(lambda: not train.running, timeout=timeout)
    qtbot.waitUntil(lambda: not train.save_jobs, timeout=30_000)
    train.plots.redraw(force=True)


def test_sine_fit_runs_and_every_view_follows(ws, qtbot):
    t = ws
    _choose(t, "sine", epochs=300)
    c = t.controls
    assert [c.loss.itemData(i) for i in range(c.loss.count())] == [
        "mse",
        "l1",
        "huber",
        "smooth_l1",
    ]
    assert "total" in c.model_text.text() and ">4<" in c.model_text.text()
    t.start()
    assert not t.start_btn.isEnabled() and t.stop_btn.isEnabled()
    assert not c.optimizer.isEnabled()  # settings are locked while training
    _finish(t, qtbot)
    run = t.runs[-1]
    assert run.status == "completed" and len(run.record.steps["step"]) == 300
    x, y = t.plots.curves[run].smooth.getData()
    assert len(x) == 300 and y[-1] < y[0]
    lx, lr = t.plots.curves[run].lr.getData()
    assert len(lx) == 300 and np.allclose(lr, 1e-3)
    vx, vy = t.plots.curves[run].val.getData()
    assert len(vx) == 300
    assert "y = " in t.plots.details.text()
    assert t.plots.task_view.currentWidget() is t.plots.sine_view
    fx, fy = t.plots.sine_view.curves[0].getData()
    a, b, cc, d = run.record.epochs[-1]["coefficients"]
    np.testing.assert_allclose(fy, a + b * fx + cc * fx**2 + d * fx**3, rtol=1e-6, atol=1e-9)
    assert t.start_btn.isEnabled() and t.progress.value() == 100
    # the run kept its best checkpoint and its record, which Landscape will read
    assert run.checkpoint is not None and run.checkpoint.exists()
    assert run.file is not None and run.file.exists()
    assert t.table.item(0, 4).text() == "completed"
    assert t.table.item(0, 5).text()  # final validation loss shown


def test_the_three_sine_forms_coincide(ws, qtbot):
    t = ws
    _choose(t, "sine", epochs=200)
    t.controls.forms.setChecked(True)
    assert t.controls.optimizer.currentData() == "sgd"
    t.start()
    assert [r.name for r in t.runs] == ["NumPy form", "autograd form", "nn.Linear form"]
    _finish(t, qtbot)
    assert all(r.status == "completed" for r in t.runs)
    coeffs = np.array([r.record.epochs[-1]["coefficients"] for r in t.runs])
    np.testing.assert_allclose(coeffs, np.broadcast_to(coeffs[0], coeffs.shape), rtol=1e-5)
    assert "the three forms after 200 steps" in t.plots.details.text()
    assert len(t.plots.sine_view.curves) == 3


def test_linear_regression_shows_points_and_line(ws, qtbot):
    t = ws
    _choose(t, "linreg_noisy", epochs=30)
    t.start()
    _finish(t, qtbot)
    run = t.runs[-1]
    assert t.plots.task_view.currentWidget() is t.plots.line_view
    px, py = t.plots.line_view.points.getData()
    assert len(px) == 200
    lx, ly = t.plots.line_view.lines[0].getData()
    w, b = run.record.epochs[-1]["w"], run.record.epochs[-1]["b"]
    np.testing.assert_allclose(ly, w * lx + b, rtol=1e-9)
    assert abs(w - 2) < 0.3 and abs(b - 1) < 0.6  # y = 2x + 1 + noise


def test_a_run_stopped_while_paused_leaves_the_pause_out_of_its_time(ws, qtbot):
    t = ws
    _choose(t, "linreg", epochs=100_000, lr=0.01)
    t.start()
    run = t.runs[-1]
    qtbot.waitUntil(lambda: len(run.record.steps["step"]) >= 3, timeout=30_000)
    t0 = run.t0
    t.toggle_pause()
    qtbot.wait(300)
    t.stop()
    _finish(t, qtbot, 30_000)
    assert run.status == "stopped"
    # the run's Time leaves out the pause it ended in (300 ms, less a Qt timer's early fire)
    assert run.t0 - t0 >= 0.2


def test_lenet_pause_resume_stop_digits_and_confusion(ws, qtbot):
    t = ws
    _choose(t, "lenet", dataset="synthetic", epochs=50, limit=400)
    t.start()
    run = t.runs[-1]
    qtbot.waitUntil(lambda: len(run.record.epochs) >= 1, timeout=120_000)
    t0 = run.t0
    t.toggle_pause()
    paused = time.monotonic()
    assert t.pause_btn.text() == "Resume" and run.status == "paused"
    # the bar says so, without an ETA that no longer moves (it counted down while paused)
    assert t.progress.format().startswith("paused at epoch") and "ETA" not in t.progress.format()
    # while it trains, the step axis spans the whole run (no relabelling on every redraw)
    t.plots.redraw(force=True)
    st = run.record.started
    assert t.plots.loss_plot.viewRange()[0][1] >= st["epochs"] * st["steps_per_epoch"]
    qtbot.wait(300)
    n = len(run.record.steps["step"])
    qtbot.wait(400)
    assert len(run.record.steps["step"]) <= n + 1  # at most the step under way
    pause = time.monotonic() - paused
    t.toggle_pause()
    assert run.t0 - t0 >= pause  # the pause is left out of the run's clock (ETA, Time)
    qtbot.waitUntil(lambda: len(run.record.steps["step"]) > n + 2, timeout=30_000)
    t.stop()
    _finish(t, qtbot, 30_000)
    assert run.status == "stopped"
    assert run.record.finished["steps"] < 50 * 13
    # the digits: the first 32 validation images, their labels and the latest predictions
    grid = t.plots.digits_view.grid
    assert t.plots.task_view.currentWidget() is t.plots.digits_view
    assert grid.images.shape == (32, 28, 28) and grid.images.dtype == np.uint8
    assert grid.predicted is not None and len(grid.predicted) == 32
    wrong = int((grid.predicted != grid.labels).sum())
    assert f"{wrong} of 32 sample digits wrong" in t.plots.digits_view.caption.text()
    m = t.plots.digits_view.confusion.matrix
    assert m.shape == (10, 10) and m.sum() == 100  # limit 400 -> 100 validation images
    acc = run.record.epochs[-1]["val_accuracy"]
    assert np.trace(m) / m.sum() == pytest.approx(acc)
    image = t.grab().toImage()  # the painted views do not fail
    assert not image.isNull()


def test_two_runs_compare_rename_hide_remove(ws, qtbot):
    t = ws
    _choose(t, "linreg", epochs=40, lr=0.01)
    t.start()
    _finish(t, qtbot)
    t.controls.optimizer.setCurrentIndex(t.controls.optimizer.findData("adam"))
    t.controls.hyper["lr"] = 0.1
    t.start()
    _finish(t, qtbot)
    a, b = t.runs
    assert (a.name, b.name) == ("SGD 0.01", "Adam 0.1") and a.colour != b.colour
    for run in (a, b):
        x, y = t.plots.curves[run].smooth.getData()
        assert len(x) == 40 and t.plots.curves[run].smooth.isVisible()
    assert len(t.plots.legend.items) == 2
    # hover reads the nearest step of both runs
    t.plots.hover.at(20.2)
    assert [(n, x) for n, x, _ in t.plots.hover.last] == [("SGD 0.01", 20.0), ("Adam 0.1", 20.0)]
    # rename (the table edit), hide, remove
    t.table.item(1, 1).setText("Adam fast")
    assert b.name == "Adam fast" and b.record.name == "Adam fast"
    t.table.item(0, 0).setCheckState(QtCore.Qt.CheckState.Unchecked)
    assert not a.shown and not t.plots.curves[a].smooth.isVisible()
    assert len(t.plots.legend.items) == 1
    t.table.selectRow(0)
    t.remove_selected()
    assert t.runs == [b] and t.table.rowCount() == 1
    assert t.table.item(0, 1).text() == "Adam fast"


def test_exports_and_reopening(ws, qtbot, tmp_path):
    from core.train.runs import load_runs

    t = ws
    _choose(t, "linreg", epochs=25)
    t.start()
    _finish(t, qtbot)
    t.controls.hyper["lr"] = 0.05
    t.start()
    _finish(t, qtbot)
    assert t.export_csv(str(tmp_path / "runs.csv"))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "runs.csv").read_text())))
    assert len(rows) == 50 and {r["run"] for r in rows} == {"SGD 0.01", "SGD 0.05"}
    first = [r for r in rows if r["run"] == "SGD 0.01"]
    assert float(first[3]["loss"]) == pytest.approx(t.runs[0].record.steps["loss"][3], rel=1e-8)
    assert first[-1]["val_loss"] != ""  # the epoch's validation loss on its last step
    assert t.export_json(str(tmp_path / "runs.json"))
    records = load_runs(tmp_path / "runs.json")
    assert [r.name for r in records] == ["SGD 0.01", "SGD 0.05"]
    assert records[1].steps["loss"] == pytest.approx(t.runs[1].record.steps["loss"])
    assert t.export_image(str(tmp_path / "plots.png"))
    image = QtGui.QImage(str(tmp_path / "plots.png"))
    assert image.width() == 2 * t.plots.width()
    assert t.export_image(str(tmp_path / "plots.svg"))
    root = ET.parse(tmp_path / "plots.svg").getroot()
    assert root.tag.endswith("svg") and len(list(root.iter())) > 50
    # reopen: the curves come back as they were
    t.remove_runs(list(t.runs))
    opened = t.open_runs(str(tmp_path / "runs.json"))
    assert [r.name for r in opened] == ["SGD 0.01", "SGD 0.05"]
    t.plots.redraw(force=True)
    x, y = t.plots.curves[opened[1]].smooth.getData()
    assert len(x) == 25
    # a single saved run with its trajectory
    assert t.save_run(opened[0], str(tmp_path / "one.json"))
    assert json.loads((tmp_path / "one.json").read_text())["format"] == "losslab-run-1"
    # bad files and paths: a message, never an exception
    (tmp_path / "bad.json").write_text("{not json")
    assert t.open_runs(str(tmp_path / "bad.json")) == []
    assert "not a readable JSON run file" in t.error.text()
    assert not t.export_csv(str(tmp_path / "missing-folder" / "x.csv"))
    assert "Export failed" in t.error.text() and "does not exist" in t.error.text()


def test_an_error_in_the_worker_reaches_the_ui(ws, qtbot, monkeypatch):
    def broken(config, control):
        yield from ()
        raise RuntimeError("the GPU caught fire")

    t = ws
    monkeypatch.setattr(t.controller, "train", broken)
    _choose(t, "linreg", epochs=5)
    t.start()
    _finish(t, qtbot, 10_000)
    assert "Training failed (SGD 0.01): RuntimeError: the GPU caught fire" in t.error.text()
    assert t.runs[-1].status == "failed" and t.table.item(0, 4).text() == "failed"
    assert t.start_btn.isEnabled()


def test_divergence_is_shown_not_raised(ws, qtbot):
    t = ws
    _choose(t, "linreg", epochs=200, lr=5.0)
    t.start()
    _finish(t, qtbot)
    run = t.runs[-1]
    assert run.status == "diverged" and t.table.item(0, 4).text() == "diverged"
    d = run.record.finished["divergence"]  # core's Divergence: where, why, what to try
    for text in (t.error.text(), t.plots.details.text(), t.table.item(0, 4).toolTip()):
        assert d["reason"] in text and d["advice"] in text and f"epoch {d['epoch']}" in text
    assert f"step {d['step']}" in d["reason"]


def test_closing_during_training_joins_the_thread(qtbot, tmp_path):
    from app.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "s.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, restore=False)
    w.show()
    _choose(w.train, "lenet", dataset="synthetic", epochs=50, limit=400)
    w.train.start()
    run = w.train.runs[-1]
    thread = run.job.thread
    qtbot.waitUntil(lambda: len(run.record.steps["step"]) >= 1, timeout=60_000)
    w.close()
    assert not thread.isRunning()


def test_bad_values_and_missing_data_are_refused_before_start(ws, tmp_path, monkeypatch):
    t = ws
    _choose(t, "sine")
    t.controls.hyper["lr"] = 1e9  # out of the allowed range
    t.start()
    assert not t.runs and "Invalid lr" in t.error.text()
    monkeypatch.setenv("LOSSLAB_DATA_DIR", str(tmp_path / "empty"))
    _choose(t, "lenet", dataset="mnist")
    assert "MNIST not found" in t.controls.data_status.text()
    assert t.controls.download_btn.isVisibleTo(t.controls)
    t.start()
    assert not t.runs and "Press Download MNIST" in t.error.text()


def test_download_mnist_from_the_window(ws, qtbot, tmp_path, monkeypatch, server):
    """The Download button fetches into the data folder (a local server stands in)."""
    from core.train import data

    def idx(arr):
        dims = b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        return bytes([0, 0, 0x08, arr.ndim]) + dims + arr.tobytes()

    files = {
        "t10k-images-idx3-ubyte.gz": gzip.compress(idx(np.zeros((20, 28, 28), np.uint8))),
        "t10k-labels-idx1-ubyte.gz": gzip.compress(idx(np.arange(20, dtype=np.uint8) % 10)),
    }
    server.routes = {f"/m/{n}": b for n, b in files.items()}
    monkeypatch.setattr(data, "MIRRORS", (f"{server.url}/m/",))
    monkeypatch.setattr(data, "FILES", {n: hashlib.md5(b).hexdigest() for n, b in files.items()})
    monkeypatch.setenv("LOSSLAB_DATA_DIR", str(tmp_path / "mnist"))
    t = ws
    _choose(t, "lenet", dataset="mnist")
    assert "MNIST not found" in t.controls.data_status.text()
    t.download_mnist()
    qtbot.waitUntil(lambda: not t.download.running, timeout=30_000)
    assert "MNIST test set found" in t.controls.data_status.text()
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(files)


def test_a_finished_run_goes_to_landscape(ws, qtbot):
    t = ws
    _choose(t, "linreg", epochs=20)
    assert not t.landscape_btn.isEnabled()
    t.start()
    _finish(t, qtbot)
    assert t.landscape_btn.isEnabled()
    with qtbot.waitSignal(t.landscape_requested) as sig:
        t.landscape_btn.click()
    run = sig.args[0]
    assert run is t.runs[-1] and run.checkpoint.name == "best.pt"


def test_a_number_box_marks_bad_text_and_clears_when_fixed(ws):
    from app.widgets import NumberEdit

    box = ws.controls.hyper_form.itemAt(0, QtWidgets.QFormLayout.ItemRole.FieldRole).widget()
    assert isinstance(box, NumberEdit)
    committed = []
    box.committed.connect(committed.append)
    box.text.setText("abc")
    box.text.editingFinished.emit()
    assert box.text.toolTip() == "'abc' is not a number" and not committed
    assert "border" in box.text.styleSheet()
    box.text.setText("0.05")
    box.text.editingFinished.emit()
    assert committed == [0.05] and box.text.styleSheet() == "" and box.text.toolTip() == ""
