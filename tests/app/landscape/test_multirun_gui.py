"""Several runs on one Landscape plane: chosen in Train, computed, drawn with a legend and the
barrier under the map, exported and reopened."""

from types import SimpleNamespace

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.landscape.terrain import show_terrain
from core.landscape.plane import Landscape
from core.optimizers import OptimizerSpec
from core.train.runs import RunRecord


def _run(save_run, folder, name, **kw):
    """A saved run as Train hands it over: its name, JSON and checkpoint."""
    file = save_run(folder, name, **kw)
    return SimpleNamespace(name=name, file=file, checkpoint=folder / f"{name}.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, save_run):
    folder = tmp_path_factory.mktemp("gui_multi")
    a = _run(save_run, folder, "sgd", optimizer=OptimizerSpec("sgd", {"lr": 1e-6, "momentum": 0.9}))
    b = _run(save_run, folder, "adam", optimizer=OptimizerSpec("adam", {"lr": 0.01}))
    a.colour, b.colour = "#e6194b", "#4363d8"
    return a, b


def _w(lw, cls, name):
    found = lw.findChild(cls, name)
    assert found is not None, name
    return found


def test_two_runs_share_a_plane_with_legend_hover_and_barrier(lw, qtbot, runs, tmp_path):
    lw.open_run(list(runs))
    box = _w(lw, QtWidgets.QGroupBox, "landscape_runs")
    assert box.isVisible() and "2. adam" in _w(lw, QtWidgets.QLabel, "landscape_source").text()
    combo = _w(lw, QtWidgets.QComboBox, "landscape_directions")
    assert combo.currentData() == "endpoints"
    init_final = combo.model().item(combo.findData("init-final"))
    assert not init_final.isEnabled()  # a plane of one run
    assert _w(lw, QtWidgets.QComboBox, "landscape_run_b").currentData() == 1
    _w(lw, QtWidgets.QSpinBox, "landscape_resolution").setValue(7)
    lw.compute()
    qtbot.waitUntil(lambda: lw.job is None, timeout=120_000)
    assert lw.finished_ok, lw.error.text()
    # every run drawn in its Train colour, named in the legend
    layer = lw.view.runs
    assert [p.name for p in layer.paths] == ["sgd", "adam"]
    assert [p.colour for p in layer.paths] == ["#e6194b", "#4363d8"]
    assert [label.text for _, label in layer.legend.items] == ["sgd", "adam"]
    assert "θA - θ0" in lw.view.plot.getAxis("bottom").labelText  # the axes say what they are
    # the hover read-out of a point of the second run
    c = layer.paths[1].coords[2]
    text = lw.view.hover(float(c[0]), float(c[1]), tolerance=(1e-6, 1e-6))
    assert text.startswith("adam, step") and "true loss" in text and "on the plane" in text
    # the line between the end points and its barrier, under the map
    t, loss = lw.line.curve.getData()
    assert t[0] == 0 and t[-1] == 1 and len(loss) == 41
    assert "barrier height" in lw.line.barrier.title and "barrier height" in lw.facts.text()
    # the data and the picture
    assert lw.export_npz(str(tmp_path / "m.npz"))
    with np.load(tmp_path / "m.npz") as z:
        assert {"path_0", "path_1", "run_names", "end_points"} <= set(z.files)
    assert lw.export_png(str(tmp_path / "m.png"))
    assert not QtGui.QImage(str(tmp_path / "m.png")).isNull()
    # reopened: the same runs, legend and barrier
    lw.view.set_runs([])
    assert lw.open_landscape(str(tmp_path / "m.npz"))
    assert [p.name for p in lw.view.runs.paths] == ["sgd", "adam"]
    # opened in a fresh Landscape: Source names the file's runs, not "No run yet"
    lw.run_sources = []
    assert lw.open_landscape(str(tmp_path / "m.npz"))
    source = _w(lw, QtWidgets.QLabel, "landscape_source").text()
    assert "A saved landscape of 2 runs" in source and "2. adam" in source
    assert "barrier height" in lw.line.barrier.title
    assert Landscape.load(tmp_path / "m.npz").meta["runs"][1]["colour"] == "#4363d8"
    # the 3-D terrain draws every run in its colour (a stand-in for the OpenGL view)
    drawn = {}
    terrain = SimpleNamespace(
        set_grid=lambda *a: None,
        set_minima=lambda *a: None,
        set_paths=lambda paths, colours: drawn.update(paths=paths, colours=colours),
    )
    show_terrain(terrain, lw.view, None)
    assert drawn["colours"] == ["#e6194b", "#4363d8"] and len(drawn["paths"][1]) > 1


def test_runs_of_different_tasks_are_refused_with_a_message(lw, runs, tmp_path, save_run):
    lin = _run(save_run, tmp_path, "lin", task="linreg", epochs=2)
    assert not lw.open_runs([runs[0], lin])
    assert "different tasks or models" in lw.error.text()
    assert not _w(lw, QtWidgets.QGroupBox, "landscape_runs").isVisible()


def test_one_run_offers_hessian_directions_and_not_endpoints(lw, runs):
    lw.open_run(runs[0])
    combo = _w(lw, QtWidgets.QComboBox, "landscape_directions")
    assert combo.model().item(combo.findData("hessian")).isEnabled()
    assert not combo.model().item(combo.findData("endpoints")).isEnabled()
    assert not _w(lw, QtWidgets.QGroupBox, "landscape_runs").isVisible()


def test_a_run_without_its_trajectory_is_its_end_point_and_said(lw, qtbot, runs, tmp_path):
    rec = RunRecord.load(runs[1].file)
    rec.snapshots = rec.snapshot_steps = None
    rec.save(tmp_path / "bare.json")
    bare = SimpleNamespace(name="bare", file=tmp_path / "bare.json", checkpoint=runs[1].checkpoint)
    assert lw.open_runs([runs[0], bare])
    _w(lw, QtWidgets.QSpinBox, "landscape_resolution").setValue(5)
    lw.compute()
    qtbot.waitUntil(lambda: lw.job is None, timeout=120_000)
    assert lw.finished_ok, lw.error.text()
    assert len(lw.view.runs.paths[1].coords) == 1
    assert "end point only" in lw.facts.text()
    assert "no trajectory" in lw.view.runs.legend.items[1][1].text


def test_train_hands_several_selected_runs_to_the_landscape(main_window, qtbot):
    t = main_window.train
    t.controls.set_task("linreg")
    t.controls.epochs.setValue(5)
    for _ in range(2):
        t.start()
        qtbot.waitUntil(lambda: not t.running, timeout=60_000)
        qtbot.waitUntil(lambda: not t.save_jobs, timeout=30_000)
    t.table.selectAll()
    button = t.findChild(QtWidgets.QPushButton, "open_in_landscape")
    assert button.isEnabled() and "2 selected runs" in button.toolTip()
    with qtbot.waitSignal(t.landscape_requested) as sig:
        qtbot.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)
    assert sig.args[0] == t.runs[-2:]
    land = main_window.landscape
    assert main_window.tabs.currentWidget() is land
    # each named as in Train, with its optimizer (Train names both runs "linreg...")
    for s, r in zip(land.run_sources, t.runs[-2:], strict=True):
        assert s.name.startswith(f"{r.name} · ") and "lr " in s.name
    assert [s.colour for s in land.run_sources] == [r.colour for r in t.runs[-2:]]
    assert land.compute_btn.isEnabled()


def test_a_relative_checkpoint_next_to_the_opened_json_is_found(tmp_path, monkeypatch, runs):
    """`losslab train --checkpoint best.pt` records "best.pt"; Train opened the JSON from
    elsewhere and found no checkpoint, so "Open in Landscape" stayed greyed out."""
    import shutil

    from app.train.runs import Run

    rec = RunRecord.load(runs[0].file)
    shutil.copy(runs[0].checkpoint, tmp_path / "best.pt")
    rec.checkpoints = [{"path": "best.pt", "epoch": 1, "val_loss": 1.0}]
    monkeypatch.chdir(tmp_path.parent)
    run = Run(rec, "#e6194b", file=tmp_path / "r.json")
    assert run.checkpoint == tmp_path / "best.pt"
    assert Run(rec, "#e6194b").checkpoint is None  # no file to look next to


def test_the_legend_says_which_optimizer_each_run_used():
    run = SimpleNamespace(
        name="sine (2)", file="x.json", checkpoint=None, colour="#3cb44b",
        config_text=lambda: "Adam, lr 0.001, full batch, 3 ep, mse",
    )  # fmt: skip
    from app.landscape.multirun_panel import sources_of

    assert sources_of([run])[0].name == "sine (2) · Adam, lr 0.001"


def test_the_status_shows_an_apostrophe_and_the_barrier_title_fits(lw, qtbot, runs):
    from core.landscape.multirun import Barrier

    lw.status.setText("")
    lw._multi_event([SimpleNamespace(task="own model (m.py)", source="4 batches from m.py's")])
    assert "m.py's" in lw.status.text() and "&#x27;" not in lw.status.text()
    t = np.linspace(0, 1, 41)
    names = ["mlp_regression · Adam, lr 0.01", "mlp_regression (2) · SGD, lr 0.01"]
    lw.line.set_barrier(Barrier(t, 4 * t * (1 - t), 1.0, 0.5), names)
    assert lw.line.barrier.title == "mlp_regression → mlp_regressio…: barrier height 1 at t = 0.50"


def test_while_several_runs_compute_the_line_plot_waits_for_a_and_b(lw, qtbot, runs):
    assert lw.open_runs(list(runs))
    # several runs compute no Hessian eigenvalues: the setting is off while they are loaded
    assert not _w(lw, QtWidgets.QSpinBox, "landscape_eigenvalues").isEnabled()
    _w(lw, QtWidgets.QSpinBox, "landscape_resolution").setValue(101)
    lw.compute()
    hint = lw.line.hint
    assert hint.isVisible() and "runs A's and B's end points" in hint.toPlainText()
    assert lw.line.getAxis("bottom").labelText.startswith("t  (0 = A's end point")
    qtbot.waitUntil(lambda: lw._rows >= 1 or lw.job is None, timeout=60_000)
    lw.cancel()
    qtbot.waitUntil(lambda: lw.job is None, timeout=60_000)
    assert not lw.finished_ok
    # several runs keep no partial file: no promise that Compute resumes
    assert "Cancelled" in lw.status.text() and "resumes" not in lw.status.text()
    lw.open_run(runs[0])  # one run again: the hint is the initial-weights line's
    assert _w(lw, QtWidgets.QSpinBox, "landscape_eigenvalues").isEnabled()
    lw.line.set_line(None, None)
    assert "initial weights" in lw.line.hint.toPlainText()


def test_the_facts_write_no_minus_zero():
    from app.landscape.multirun_panel import facts_of_runs

    land = Landscape(
        np.linspace(-1, 1, 3), np.linspace(-1, 1, 3), np.zeros((3, 3)), None,
        np.zeros(2), np.ones(2), np.ones(2), "endpoints", "fp32", 10, None,
        {"runs": [{"name": "a", "colour": "", "trajectory": False}]},
        {
            "end_points": np.array([[1.0, -1e-9]]), "path_0": np.array([[1.0, -1e-9]]),
            "path_0_off": np.zeros(1), "path_0_steps": np.zeros(1),
            "path_0_loss": np.ones(1), "path_0_plane_loss": np.ones(1),
        },
    )  # fmt: skip
    assert "end point at (1, 0)" in facts_of_runs(land)
