"""Track sharpness in the Train tab: the control checked as typed, the plot with the limit
line that applies (and none for Adam), the details line, and a reopened run's series."""

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtWidgets


def _tracking(every):
    """Track sharpness every ``every`` steps (for train_in's setup)."""

    def setup(ws):
        box, edit, _ = _parts(ws)
        box.setChecked(True)
        edit.setText(str(every))

    return setup


def _parts(ws):
    c = ws.controls
    box = c.findChild(QtWidgets.QCheckBox, "track_sharpness")
    edit = c.findChild(QtWidgets.QLineEdit, "sharpness_every")
    error = c.findChild(QtWidgets.QLabel, "sharpness_error")
    assert box is not None and edit is not None and error is not None
    return box, edit, error


def test_n_is_checked_as_typed_and_start_says_why_it_refuses(ws):
    box, edit, error = _parts(ws)
    ws.controls.set_task("linreg")
    assert not edit.isEnabled() and ws.controls.config().track_sharpness == 0
    box.setChecked(True)
    edit.setText("2.5")  # every keystroke is checked: no need to leave the box
    assert "not a whole number" in error.text() and error.isVisibleTo(ws)
    ws.start()
    assert not ws.runs and "sharpness every: '2.5' is not a whole number" in ws.error.text()
    edit.setText("0")
    assert "out of range" in error.text()
    edit.setText("7")
    assert error.text() == "" and not error.isVisibleTo(ws)
    assert ws.controls.problems() == [] and ws.controls.config().track_sharpness == 7
    edit.setText("x")
    box.setChecked(False)  # off: its box does not count
    assert ws.controls.problems() == [] and ws.controls.config().track_sharpness == 0


def test_the_three_forms_track_in_the_nn_linear_form_only(ws):
    box, edit, _ = _parts(ws)
    ws.controls.set_task("sine")
    ws.controls.forms.setChecked(True)
    box.setChecked(True)
    edit.setText("10")
    assert [(c.form, c.track_sharpness) for c in ws.controls.configs()] == [
        ("numpy", 0),
        ("autograd", 0),
        ("module", 10),
    ]


@pytest.mark.slow
def test_a_tracked_run_is_plotted_against_2_over_lr_and_reopens(ws, tmp_path, train_in):
    plot = ws.plots.findChild(pg.PlotWidget, "sharpness_plot")
    assert plot is not None and not plot.isVisibleTo(ws)  # no run tracks yet: no room taken
    run = train_in(ws, "linreg", 12, setup=_tracking(4))
    assert plot.isVisibleTo(ws)
    curve, line = ws.plots.sharp.items[run]
    x, y = curve.getData()
    assert list(x) == [4, 8, 12] and np.allclose(y, 11.0929, rtol=1e-4)
    lx, ly = line.getData()
    assert len(lx) == 12 and np.allclose(ly, 200)  # 2/lr at lr 0.01, over every step
    caption = ws.plots.findChild(QtWidgets.QLabel, "sharpness_caption").text()
    assert "dashed: the limit 2/lr" in caption
    details = ws.plots.details.text()
    assert "sharpness 11.09 (limit 2/lr = 200)" in details and "of the time" in details
    assert run.record.finished["final"]["sharpness"]["steps"] == [4, 8, 12]
    # saved and reopened: the series comes from the record
    path = tmp_path / "run.json"
    assert ws.save_run(run, str(path))
    (again,) = ws.open_runs(str(path))
    ws.plots.redraw(force=True)
    x2, y2 = ws.plots.sharp.items[again][0].getData()
    assert list(x2) == [4, 8, 12] and np.allclose(y2, y)


@pytest.mark.slow
def test_adam_gets_no_limit_line_and_the_caption_says_why(ws, train_in):
    run = train_in(ws, "linreg", 4, optimizer="adam", setup=_tracking(2))
    curve, line = ws.plots.sharp.items[run]
    assert len(curve.getData()[0]) == 2
    assert line.getData()[0] is None or len(line.getData()[0]) == 0
    caption = ws.plots.findChild(QtWidgets.QLabel, "sharpness_caption").text()
    assert "Adam" in caption and "preconditioned" in caption and "dashed" not in caption


def test_tracking_turned_off_is_said_in_red_under_the_plots(ws):
    """A loss that cannot be differentiated twice (core sends the reason once)."""
    from app.train import sharpness
    from app.train.details import details
    from core.train.runs import RunRecord
    from core.train.training import Sharpness, TrainConfig

    config = TrainConfig(task="linreg", track_sharpness=2).resolved()
    run = ws.controller.add_run(RunRecord.for_config(config, "x"), "running")
    off = "sharpness tracking turned off: the loss cannot be differentiated twice (...)"
    sharpness.add_event(run, Sharpness(2, 1, float("nan"), float("nan"), 0, 0.0, 0.01, off))
    text = details(run, [], ws.runs)
    assert off in text and "color:" in text
    assert sharpness.tracks(run)


def _fake_run(ws, lr: float, values: list[float]):
    """A running SGD run at ``lr`` with one sharpness measurement per step."""
    from app.train import sharpness
    from core.optimizers import OptimizerSpec
    from core.train.runs import RunRecord
    from core.train.training import Sharpness, TrainConfig

    spec = OptimizerSpec("sgd", {"lr": lr})
    config = TrainConfig(task="linreg", track_sharpness=1, optimizer=spec).resolved()
    run = ws.controller.add_run(RunRecord.for_config(config, "x"), "running")
    for i, v in enumerate(values, 1):
        for key in run.record.steps:
            run.record.steps[key].append({"step": i, "lr": lr}.get(key, 1.0))
        sharpness.add_event(run, Sharpness(i, 1, v, v, 0, 0.1, 0.01, ""))
    ws.plots.redraw(force=True)
    return run


def _y_range(ws):
    plot = ws.plots.findChild(pg.PlotWidget, "sharpness_plot")
    return plot.getViewBox().viewRange()[1]


def test_a_limit_far_above_leaves_the_curve_readable(ws):
    # LeNet at lr 0.001: sharpness ~1.3 against 2/lr = 2000 drew the curve flat on 0
    _fake_run(ws, 0.001, [0.5, 1.0, 1.3])
    lo, hi = _y_range(ws)
    assert lo <= 0 and 1.3 < hi < 5
    caption = ws.plots.findChild(QtWidgets.QLabel, "sharpness_caption").text()
    assert "2/lr" in caption and "2000, above the plot" in caption


def test_a_near_limit_is_in_view_and_a_constant_sharpness_reads_flat(ws):
    run = _fake_run(ws, 0.01, [150.0, 170.0, 190.0])  # climbing to 2/lr = 200
    lo, hi = _y_range(ws)
    assert lo <= 0 and hi > 200
    assert "above the plot" not in ws.plots.findChild(QtWidgets.QLabel, "sharpness_caption").text()
    ws.plots.sharp.set_visible(run, False)
    # the sine fit: a constant 5.6e5 with float32 noise of a few units zoomed into the noise
    _fake_run(ws, 1e-7, [562120.0, 562122.0, 562121.0])
    lo, hi = _y_range(ws)
    assert lo <= 0 and hi > 562122


def test_after_the_user_zooms_the_range_is_theirs(ws):
    _fake_run(ws, 0.001, [0.5, 1.0, 1.3])
    plot = ws.plots.findChild(pg.PlotWidget, "sharpness_plot")
    plot.getViewBox().sigRangeChangedManually.emit([False, True])
    plot.setYRange(10, 20, padding=0)
    ws.plots.redraw(force=True)
    assert plot.getViewBox().viewRange()[1] == pytest.approx([10, 20])
