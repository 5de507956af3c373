"""The Landscape tab: a Train run handed over, computed on a worker thread, cancelled, exported."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PySide6 import QtGui

from core.landscape.plane import Landscape


@pytest.fixture
def window(main_window):
    return main_window


def _trained(window, qtbot):
    t = window.train
    t.controls.set_task("lenet")
    t.controls.dataset.setCurrentIndex(t.controls.dataset.findData("synthetic"))
    t.controls.limit.setValue(256)
    t.controls.epochs.setValue(2)
    t.start()
    qtbot.waitUntil(lambda: not t.running, timeout=120_000)
    qtbot.waitUntil(lambda: not t.save_jobs, timeout=30_000)
    return t.runs[-1]


def _settings(lw, directions="pca", resolution=7, samples=40, eigen=1):
    lw.directions.setCurrentIndex(lw.directions.findData(directions))
    lw.resolution.setValue(resolution)
    lw.samples.setValue(samples)
    lw.eigen.setValue(eigen)


def test_a_train_run_is_computed_with_its_path(window, qtbot, tmp_path):
    run = _trained(window, qtbot)
    window.train.send_to_landscape()
    lw = window.landscape
    assert window.tabs.currentWidget() is lw
    assert str(run.checkpoint) in lw.source.text()
    _settings(lw)
    rows = []
    lw.view.image.sigImageChanged.connect(lambda: rows.append(1))
    lw.compute()
    assert not lw.compute_btn.isEnabled() and lw.cancel_btn.isEnabled()
    qtbot.waitUntil(lambda: lw.job is None, timeout=120_000)
    assert lw.finished_ok, lw.error.text()
    land = lw.landscape
    assert land.loss.shape == (7, 7) and np.isfinite(land.loss).all()
    assert len(rows) >= 7  # the heatmap filled in row by row
    assert land.explained is not None and "PCA" in lw.facts.text()
    assert "Hessian" in lw.facts.text()
    x, y = lw.view.path.getData()
    assert len(x) == len(run.record.snapshots)
    # hover on a path point: its step, true loss and loss on the plane
    c = lw.path.coords[3]
    text = lw.view.hover(float(c[0]), float(c[1]))
    assert f"step {int(lw.path.steps[3])}: true loss" in text and "on the plane" in text
    t, loss = lw.line.curve.getData()
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
    # reopening the saved file shows the same plane and path
    lw.open_landscape(str(tmp_path / "l.npz"))
    np.testing.assert_array_equal(lw.view.loss, land.loss)
    assert len(lw.view.path.getData()[0]) == len(x)


def test_cancel_stops_the_worker_and_keeps_what_was_done(window, qtbot):
    _trained(window, qtbot)
    window.train.send_to_landscape()
    lw = window.landscape
    _settings(lw, directions="random", resolution=61, samples=200, eigen=0)
    lw.compute()
    qtbot.waitUntil(lambda: lw._rows >= 1, timeout=60_000)
    lw.cancel()
    qtbot.waitUntil(lambda: lw.job is None, timeout=30_000)
    assert not lw.finished_ok and "Cancelled" in lw.status.text()
    assert 1 <= lw._rows < 61
    assert lw.compute_btn.isEnabled()


def test_bad_sources_get_messages(window, qtbot, tmp_path):
    lw = window.landscape
    (tmp_path / "x.npz").write_bytes(b"junk")
    assert not lw.open_landscape(str(tmp_path / "x.npz"))
    assert "not a readable landscape" in lw.error.text()
    (tmp_path / "bad.pt").write_bytes(b"junk")
    lw.set_source(None, str(tmp_path / "bad.pt"))
    assert lw.directions.currentData() == "random"  # no trajectory: random only
    lw.compute()
    qtbot.waitUntil(lambda: lw.job is None, timeout=30_000)
    assert "Landscape failed" in lw.error.text() and "not a readable" in lw.error.text()
    assert "Loading" not in lw.status.text()  # the status no longer says it is working
    assert lw.progress.format() == "failed"
