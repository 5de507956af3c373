"""The Landscape tab: a trained run opened, computed on a worker thread, cancelled, exported."""

import xml.etree.ElementTree as ET
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.landscape.view import LandscapeView, epoch_marks, labelled_marks
from core.landscape.job import PathResult
from core.landscape.plane import Landscape
from core.train.runs import RunRecord


def _w(lw, cls, name):
    """A widget of the workspace by its objectName."""
    found = lw.findChild(cls, name)
    assert found is not None, name
    return found


def _settings(lw, directions="pca", resolution=7, samples=0, eigen=1):
    combo = _w(lw, QtWidgets.QComboBox, "landscape_directions")
    combo.setCurrentIndex(combo.findData(directions))
    _w(lw, QtWidgets.QSpinBox, "landscape_resolution").setValue(resolution)
    _w(lw, QtWidgets.QSpinBox, "landscape_samples").setValue(samples)
    _w(lw, QtWidgets.QSpinBox, "landscape_eigenvalues").setValue(eigen)


def _compute(lw, qtbot):
    lw.compute()
    qtbot.waitUntil(lambda: lw.job is None, timeout=120_000)
    assert lw.finished_ok, lw.error.text()
    return lw.landscape


def test_a_run_is_computed_with_its_path_and_exported(
    lw, qtbot, trained_run, tmp_path, monkeypatch
):
    import torch

    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", str(threads))  # the user's count: kept (it was set
    # to all cores, and a test worker's neighbours then ran up to 5x slower)
    opened = []
    lw.file_opened.connect(lambda kind, path: opened.append((kind, path)))
    assert lw.open_run_file(str(trained_run.record))
    assert opened == [("run", str(trained_run.record))]
    assert str(trained_run.record) in lw.source.text()
    _settings(lw)
    rows, formats = [], []
    lw.view.image.sigImageChanged.connect(lambda: rows.append(1))
    lw.progress.valueChanged.connect(lambda _: formats.append(lw.progress.format()))
    compute = _w(lw, QtWidgets.QPushButton, "landscape_compute")
    cancel = _w(lw, QtWidgets.QPushButton, "landscape_cancel")
    qtbot.mouseClick(compute, QtCore.Qt.MouseButton.LeftButton)
    assert not compute.isEnabled() and cancel.isEnabled()
    qtbot.waitUntil(lambda: lw.job is None, timeout=120_000)
    assert lw.finished_ok, lw.error.text()
    assert torch.get_num_threads() == threads
    # no partial grid, no resume note: the run's name stays bold when the grid is done
    assert lw.status.text().startswith(f"<b>{RunRecord.load(trained_run.record).name}</b>")
    land = lw.landscape
    assert land.loss.shape == (7, 7) and np.isfinite(land.loss).all()
    assert len(rows) >= 7  # the heatmap filled in row by row
    assert any("points/s" in f and "left" in f for f in formats), formats  # speed and ETA
    # the checkpoint's value is the run's validation loss, on all of its validation set
    recorded = RunRecord.load(trained_run.record).checkpoints[-1]["val_loss"]
    assert land.meta["centre_loss"] == pytest.approx(recorded, rel=1e-5)
    facts = lw.facts.text()
    assert f"Train's validation loss for it: {recorded:.5g}" in facts
    assert "all 64 validation samples" in facts
    assert land.explained is not None and "PCA" in facts and "Hessian" in facts
    x, _ = lw.view.path.getData()
    assert len(x) == len(RunRecord.load(trained_run.record).snapshots)
    # hover on a path point: its step, true loss and loss on the plane
    c = lw.path.coords[3]
    text = lw.view.hover(float(c[0]), float(c[1]))
    assert f"step {int(lw.path.steps[3])}: true loss" in text and "on the plane" in text
    t, _ = lw.line.curve.getData()
    assert len(t) == 41
    # exports
    assert lw.export_png(str(tmp_path / "l.png"))
    assert not QtGui.QImage(str(tmp_path / "l.png")).isNull()
    assert lw.export_svg(str(tmp_path / "l.svg"))
    assert ET.parse(tmp_path / "l.svg").getroot().tag.endswith("svg")
    assert lw.export_npz(str(tmp_path / "l.npz"))
    back = Landscape.load(tmp_path / "l.npz")
    np.testing.assert_array_equal(back.loss, land.loss)
    assert not lw.export_npz(str(tmp_path / "missing" / "l.npz"))
    assert "Export failed" in lw.error.text()
    # reopening the saved file shows the same plane, path and facts
    assert lw.open_landscape(str(tmp_path / "l.npz"))
    assert opened[-1] == ("landscape", str(tmp_path / "l.npz"))
    np.testing.assert_array_equal(lw.view.loss, land.loss)
    assert len(lw.view.path.getData()[0]) == len(x)
    assert f"Train's validation loss for it: {recorded:.5g}" in lw.facts.text()


def test_a_run_handed_over_by_train(lw, trained_run):
    run = SimpleNamespace(file=trained_run.record, checkpoint=trained_run.checkpoint, name="tiny")
    lw.open_run(run)
    assert str(trained_run.checkpoint) in lw.source.text() and lw.compute_btn.isEnabled()


def test_cancel_keeps_the_rows_and_clears_the_old_hover(lw, qtbot, trained_run):
    assert lw.open_checkpoint(str(trained_run.checkpoint))
    _settings(lw, directions="random", resolution=5, eigen=0)
    _compute(lw, qtbot)
    assert "loss" in lw.view.hover(0.0, 0.0)
    assert lw.view.readout.text
    _settings(lw, directions="random", resolution=101, eigen=0)
    lw.compute()
    assert lw.view.readout.text == "" and lw.view.last_hover == ""  # not the old grid's
    qtbot.waitUntil(lambda: lw._rows >= 1, timeout=60_000)
    qtbot.mouseClick(
        _w(lw, QtWidgets.QPushButton, "landscape_cancel"), QtCore.Qt.MouseButton.LeftButton
    )
    qtbot.waitUntil(lambda: lw.job is None, timeout=30_000)
    assert not lw.finished_ok and "Cancelled" in lw.status.text()
    assert 1 <= lw._rows < 101
    assert lw.progress.format() == "cancelled"
    assert lw.compute_btn.isEnabled()
    assert "not computed yet" in lw.view.hover(0.0, float(lw.view.betas[-1]))


def test_a_cancelled_runs_line_is_said_to_come_after_the_grid(lw, qtbot, trained_run):
    """The line from the initial weights comes after the grid: cancelled before it, the plot
    said it "needs a run's JSON" with one loaded (seen by a new user)."""
    from app.landscape.view import LINE_HINT, LINE_LATER

    assert lw.open_run_file(str(trained_run.record))
    _settings(lw, directions="random", resolution=101, eigen=0)
    lw.compute()
    assert lw.line.hint.isVisible() and lw.line.hint.toPlainText() == LINE_LATER
    qtbot.waitUntil(lambda: lw._rows >= 1, timeout=60_000)
    lw.cancel()
    qtbot.waitUntil(lambda: lw.job is None, timeout=30_000)
    assert lw.line.hint.toPlainText() == LINE_LATER
    lw.line.set_line(None, None, has_run=False)  # a checkpoint alone: no recorded path
    assert lw.line.hint.toPlainText() == LINE_HINT


def test_the_hover_readout_follows_new_rows_and_forgets_old_grids(qtbot):
    view = LandscapeView()
    qtbot.addWidget(view)
    axis = np.linspace(-1, 1, 5)
    view.set_plane(axis, axis)
    assert "not computed yet" in view.hover(0.0, 1.0)
    view.set_row(4, np.arange(5.0))  # the hovered row arrives under a resting mouse
    assert view.readout.text == "a = 0, b = 1: loss 2"
    view.set_plane(axis * 2, axis * 2)  # a new plane: the old text would describe another grid
    assert view.readout.text == "" and view.last_hover == ""
    view.set_row(0, np.ones(5))
    assert view.readout.text == ""  # nothing hovered since


def test_a_long_runs_epoch_markers_are_thinned(qtbot):
    """The sine fit's 2,000 epochs on 101 recorded points made a white smear (#12.4)."""
    steps = np.linspace(0, 2000, 101).round().astype(int)
    epoch_index = [int(np.searchsorted(steps, s, side="right") - 1) for s in range(1, 2001)]
    marks = epoch_marks(epoch_index, 101)
    assert 2 <= len(marks) <= 24
    assert marks[0][1] == epoch_index[0] and marks[-1] == (2000, 100)
    coords = np.stack([np.linspace(-1, 0, 101), np.zeros(101)], axis=1)
    labels = labelled_marks(marks, coords)
    assert 1 <= len(labels) <= 8
    # none near "start" (a = -1) or "end" (a = 0): a tenth of the path's extent away
    assert all(coords[i, 0] >= -0.9 and coords[i, 0] <= -0.1 for _, i in labels)
    view = LandscapeView()
    qtbot.addWidget(view)
    view.set_plane(np.linspace(-1.2, 1.2, 5), np.linspace(-1.2, 1.2, 5))
    z = np.zeros(101)
    view.set_path(PathResult(coords, z, steps, z, z, epoch_index))
    assert len(view.epochs.data) == len(marks)
    texts = [label.toPlainText() for label in view.labels]
    assert texts[-2:] == ["start", "end"] and len(texts) <= 10
    assert all(label.zValue() > view.epochs.zValue() for label in view.labels)
    start, end = view.labels[-2:]
    assert start.zValue() > max(label.zValue() for label in view.labels[:-2])


def test_every_input_says_what_it_does_and_its_range(lw):
    inputs = lw.controls.findChildren(QtWidgets.QAbstractSpinBox)
    inputs += lw.controls.findChildren(QtWidgets.QComboBox)
    inputs += lw.controls.findChildren(QtWidgets.QAbstractButton)
    assert len(inputs) >= 16
    for w in inputs:
        assert w.objectName().startswith("landscape_"), w
        assert len(w.toolTip()) > 20, w.objectName()
    for w in lw.controls.findChildren(QtWidgets.QAbstractSpinBox):
        top = int(w.maximum())
        assert str(top) in w.toolTip() or f"{top:,}" in w.toolTip(), w.objectName()


def test_the_workspace_fits_small_screens(lw, qtbot):
    hint = lw.minimumSizeHint()
    assert hint.width() <= 1000 and hint.height() <= 560
    for size in ((1280, 720), (1366, 768)):
        lw.resize(size[0] - 8, size[1] - 90)  # the window's frame, menu, tabs and status bar
        qtbot.waitUntil(lambda size=size: lw.width() == size[0] - 8)
        assert lw.height() == size[1] - 90, size
        assert lw.view.width() >= 500 and lw.view.height() >= 300, size
        assert lw.controls.width() >= 300, size
        assert _w(lw, QtWidgets.QPushButton, "landscape_compute").isVisibleTo(lw), size


def test_bad_sources_get_messages(lw, qtbot, tmp_path):
    opened = []
    lw.file_opened.connect(lambda kind, path: opened.append(kind))
    (tmp_path / "x.npz").write_bytes(b"junk")
    assert not lw.open_landscape(str(tmp_path / "x.npz"))
    assert "not a readable landscape" in lw.error.text()
    (tmp_path / "bad.pt").write_bytes(b"junk")
    assert not lw.open_checkpoint(str(tmp_path / "bad.pt"))
    assert "Cannot open the checkpoint" in lw.error.text()
    (tmp_path / "bad.json").write_text("{")
    assert not lw.open_run_file(str(tmp_path / "bad.json"))
    assert "Cannot open the run" in lw.error.text()
    assert opened == []
    # a bad file handed over without a check fails in the worker, with a message
    lw.set_source(None, str(tmp_path / "bad.pt"))
    assert lw.directions.currentData() == "random"  # no trajectory: random only
    lw.compute()
    qtbot.waitUntil(lambda: lw.job is None, timeout=30_000)
    assert "Landscape failed" in lw.error.text() and "not a readable" in lw.error.text()
    assert "Loading" not in lw.status.text()  # the status no longer says it is working
    assert lw.progress.format() == "failed"


def test_opened_files_reach_the_windows_recent_list(main_window, trained_run):
    lw = main_window.landscape
    assert lw.open_checkpoint(str(trained_run.checkpoint))
    assert [(e.kind, e.path) for e in main_window.recent.entries()][:1] == [
        ("checkpoint", str(trained_run.checkpoint))
    ]
