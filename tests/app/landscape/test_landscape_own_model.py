"""The Landscape tab on the user's own model (an experiment file), resuming a cancelled grid,
and landscapes in loss-landscape's HDF5 layout (#14, #15, #19)."""

import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from app.landscape.facts import OWN_LOSS
from app.landscape.workspace import LandscapeWorkspace
from core.landscape.plane import Landscape
from core.train.experiment import load_experiment
from core.train.runs import runs_dir

EXAMPLES = Path(__file__).resolve().parents[3] / "core" / "train" / "examples"
MLP = EXAMPLES / "mlp_regression.py"


def _w(lw, cls, name):
    found = lw.findChild(cls, name)
    assert found is not None, name
    return found


def _settings(lw, resolution=5, eigen=0):
    combo = _w(lw, QtWidgets.QComboBox, "landscape_directions")
    combo.setCurrentIndex(combo.findData("random"))
    _w(lw, QtWidgets.QSpinBox, "landscape_resolution").setValue(resolution)
    _w(lw, QtWidgets.QSpinBox, "landscape_eigenvalues").setValue(eigen)


def _open_model(lw, qtbot, path) -> None:
    assert lw.open_model_file(str(path))
    qtbot.waitUntil(lambda: lw.loader is None, timeout=60_000)


def _compute(lw, qtbot):
    qtbot.mouseClick(
        _w(lw, QtWidgets.QPushButton, "landscape_compute"), QtCore.Qt.MouseButton.LeftButton
    )
    qtbot.waitUntil(lambda: lw.job is None, timeout=120_000)
    assert lw.finished_ok, lw.error.text()
    return lw.landscape


def _partials() -> list[Path]:
    return sorted((runs_dir() / "landscapes").glob("*.partial.npz"))


def test_an_own_model_file_is_computed_and_its_centre_is_its_mean_loss(
    lw, qtbot, settings, tmp_path
):
    note = _w(lw, QtWidgets.QLabel, "landscape_model_note")
    assert "python file.py" in note.text() and "your own Python code" in note.text()
    assert "python file.py" in _w(lw, QtWidgets.QPushButton, "landscape_open_model").toolTip()
    _open_model(lw, qtbot, MLP)
    assert lw.model_check is not None, lw.error.text()
    assert settings.value("landscape/model_file") == str(MLP)  # remembered
    assert "mlp_regression.py" in lw.source.text() and "4 batches" in lw.source.text()
    # an experiment file: fp32 only, its own batches (no sampling)
    assert not lw.precision.model().item(1).isEnabled()
    assert not _w(lw, QtWidgets.QSpinBox, "landscape_samples").isEnabled()
    _settings(lw)
    _w(lw, QtWidgets.QComboBox, "landscape_device").setCurrentIndex(0)
    _w(lw, QtWidgets.QCheckBox, "landscape_bias_bn").setChecked(True)
    assert lw.request().bias_bn and lw.request().device == "cpu"
    land = _compute(lw, qtbot)
    exp = load_experiment(MLP)
    expected = exp.mean_loss(exp.build_model().eval(), exp.batches())
    assert land.meta["centre_loss"] == pytest.approx(expected, rel=1e-6)
    assert land.loss[2, 2] == pytest.approx(expected, rel=1e-5)  # the grid's middle point
    assert land.meta["bias_bn"] is True
    facts = lw.facts.text()
    assert OWN_LOSS in facts and "mlp_regression.py" in facts
    assert "all 4 of the file's batches" in facts and "as model() builds it" in facts
    assert "biases and BatchNorm moved too" in facts
    assert _partials() == []  # a completed grid leaves nothing to resume
    # the data round trip through loss-landscape's layout
    assert lw.export_h5(str(tmp_path / "land.h5"))
    with h5py.File(tmp_path / "land.h5") as f:
        assert f["train_loss"].shape == (5, 5)
    assert lw.open_landscape(str(tmp_path / "land.h5"))
    np.testing.assert_allclose(lw.view.loss, land.loss)
    assert OWN_LOSS in lw.facts.text()
    # ParaView's file, and a bad suffix's message from the core
    assert lw.export_vtp(str(tmp_path / "land.vtp"))
    assert ET.parse(tmp_path / "land.vtp").getroot().tag == "VTKFile"
    assert not lw.export_data(str(tmp_path / "land.txt"))
    assert "Export failed" in lw.error.text() and "unknown format" in lw.error.text()
    labels = [e.label for e in lw.exports()]
    assert "Landscape data as &HDF5 (loss-landscape)..." in labels
    assert "Landscape as &VTK for ParaView..." in labels


def test_a_remembered_model_file_reopens_with_reload(qtbot, settings):
    settings.setValue("landscape/model_file", str(MLP))
    w = LandscapeWorkspace(settings=settings)
    qtbot.addWidget(w)
    try:
        assert "Last model file" in w.source.text() and str(MLP) in w.source.text()
        assert w.model_file is None  # nothing of the user's code runs until asked
        qtbot.mouseClick(
            _w(w, QtWidgets.QPushButton, "landscape_reload_model"),
            QtCore.Qt.MouseButton.LeftButton,
        )
        qtbot.waitUntil(lambda: w.loader is None, timeout=60_000)
        assert w.model_file == str(MLP) and w.model_check is not None
        assert w.compute_btn.isEnabled()
    finally:
        w.shutdown()


def test_a_bad_model_file_says_its_line_and_reload_picks_up_the_fix(lw, qtbot, tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("import torch\n\ndef model(:\n    pass\n")
    _open_model(lw, qtbot, bad)
    assert "broken.py, line 3" in lw.error.text() and "syntax error" in lw.error.text()
    assert lw.model_check is None and not lw.compute_btn.isEnabled()
    # weights that do not fit a model are named too (after the file is fixed)
    bad.write_text(MLP.read_text())
    qtbot.mouseClick(
        _w(lw, QtWidgets.QPushButton, "landscape_reload_model"), QtCore.Qt.MouseButton.LeftButton
    )
    qtbot.waitUntil(lambda: lw.loader is None, timeout=60_000)
    assert lw.error.text() == "" and lw.model_check is not None
    assert lw.compute_btn.isEnabled()
    import torch

    torch.save({"w": torch.zeros(3)}, tmp_path / "other.pt")
    assert lw.set_weights(str(tmp_path / "other.pt"))
    qtbot.waitUntil(lambda: lw.loader is None, timeout=60_000)
    assert "Cannot use the model file" in lw.error.text() and "other.pt" in lw.error.text()


def test_a_cancelled_grid_resumes_on_the_next_compute(lw, qtbot, trained_run):
    assert lw.open_checkpoint(str(trained_run.checkpoint))
    _settings(lw, resolution=101)
    lw.compute()
    qtbot.waitUntil(lambda: lw._rows >= 2, timeout=60_000)
    lw.cancel()
    qtbot.waitUntil(lambda: lw.job is None, timeout=30_000)
    assert not lw.finished_ok and "resumes" in lw.status.text()
    kept = _partials()
    assert len(kept) == 1  # the rows done are in the partial file
    rows_before = lw._rows
    said = []
    lw.message.connect(said.append)
    lw.compute()
    qtbot.waitUntil(lambda: lw.resumed is not None, timeout=60_000)
    e = lw.resumed
    assert e.why == "" and e.path == str(kept[0])
    assert e.done >= rows_before * 101 and e.total == 101 * 101
    note = f"resuming from the partial grid: {e.done} of {e.total} points done"
    # said first, right under the progress bar, and in the window's status bar
    assert lw.status.text().startswith(f"<b>{note}</b><br>") and note[1:] in said[-1]
    assert str(kept[0]) in lw.status.toolTip()
    lw.cancel()
    qtbot.waitUntil(lambda: lw.job is None, timeout=30_000)
    # other settings: the file there is not mixed in, and the status says why
    _settings(lw, resolution=99)
    lw.compute()
    qtbot.waitUntil(lambda: lw.resumed is not None, timeout=60_000)
    assert lw.resumed.done == 0 and "other inputs" in lw.resumed.why
    assert "starting afresh" in lw.status.text().split("<br>")[0] and "starting afresh" in said[-1]
    lw.cancel()
    qtbot.waitUntil(lambda: lw.job is None, timeout=30_000)
    # a grid that ends: the note stays, no longer in bold (it read as a warning after success)
    _settings(lw, resolution=5)
    lw.compute()
    qtbot.waitUntil(lambda: lw.job is None, timeout=60_000)
    assert lw.finished_ok and lw.resumed is not None and lw.resumed.why
    assert lw.status.text().startswith("the partial grid kept was computed from other inputs")


def test_loss_landscape_files_open_in_the_tab(lw, tmp_path):
    # a 2-D surface written as loss-landscape's h5_util does: (nx, ny) datasets
    x, y = np.linspace(-1, 1, 5), np.linspace(-0.5, 0.5, 3)
    xx, yy = np.meshgrid(x, y)  # (ny, nx): rows are y
    loss = 1.0 + xx + 10 * yy  # asymmetric: orientation shows
    with h5py.File(tmp_path / "surf.h5", "w") as f:
        f["xcoordinates"], f["ycoordinates"] = x, y
        f["train_loss"] = loss.ravel().reshape(len(x), len(y))
        f["train_acc"] = np.full((len(x), len(y)), 50.0)
    assert lw.open_landscape(str(tmp_path / "surf.h5"))
    np.testing.assert_allclose(lw.view.loss, loss)
    np.testing.assert_allclose(lw.view.alphas, x)
    assert "a = 1, b = 0.5: loss 7" in lw.view.hover(1.0, 0.5)  # 1 + a + 10 b
    facts = lw.facts.text()
    assert "samples unknown" in facts and "loss-landscape's" in facts
    # its 1-D file: the line plot, with a note
    with h5py.File(tmp_path / "line.h5", "w") as f:
        f["xcoordinates"] = np.linspace(-1, 1, 11)
        f["train_loss"] = np.linspace(-1, 1, 11) ** 2
    assert lw.open_landscape(str(tmp_path / "line.h5"))
    t, values = lw.line.curve.getData()
    assert len(t) == 11 and values[5] == pytest.approx(0.0)
    assert "1-D" in lw.status.text() and "line plot" in lw.status.text()
    assert "samples unknown" in lw.facts.text() and lw.view.loss is None
    assert not lw.npz_btn.isEnabled()  # nothing on the plane to export
    # a file without the datasets: its message, nothing else changes
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f["other"] = np.zeros(3)
    assert not lw.open_landscape(str(tmp_path / "empty.h5"))
    assert "no train_loss" in lw.error.text()
    assert len(lw.line.curve.getData()[0]) == 11


def test_npz_landscapes_still_open(lw, tmp_path):
    axis = np.linspace(-1, 1, 3)
    land = Landscape(
        axis, axis, np.ones((3, 3)), None, np.zeros(2), np.ones(2), np.ones(2), "random"
    )
    land.save(tmp_path / "l.npz")
    assert lw.open_landscape(str(tmp_path / "l.npz"))
    np.testing.assert_array_equal(lw.view.loss, np.ones((3, 3)))
