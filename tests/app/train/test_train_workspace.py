"""The Train workspace on its own (no main window): validation as typed, which runs are drawn,
readable ticks, divergence, continuing a run, reopened runs, tooltips, layout, event bundles."""

import json
import shutil

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets


def _lr_box(ws):
    from app.widgets import NumberEdit

    box = ws.controls.findChild(NumberEdit, "param_lr")
    assert box is not None
    return box


def _type(box, text):
    box.text.setText(text)
    box.text.editingFinished.emit()


def test_a_value_is_checked_as_typed_and_start_says_why_it_refuses(ws):
    box = _lr_box(ws)
    _type(box, "1e9")
    first = box.error_text()
    assert "1e9" in first and box.error.isVisibleTo(ws)
    _type(box, "abc")  # the later bad value is the one reported, not the earlier one
    assert box.error_text() == "'abc' is not a number" and "1e9" not in box.error_text()
    ws.start()
    assert not ws.runs
    assert "lr: 'abc' is not a number" in ws.error.text() and "1e9" not in ws.error.text()
    _type(box, "")
    assert box.error_text() == "empty: type a number"
    _type(box, "0.02")
    assert box.error_text() == "" and ws.controls.hyper["lr"] == 0.02
    assert ws.controls.problems() == []


def test_a_switch_torch_refuses_is_explained_under_the_rows(ws):
    c = ws.controls
    c.optimizer.setCurrentIndex(c.optimizer.findData("sgd"))
    nesterov = c.findChild(QtWidgets.QCheckBox, "param_nesterov")
    nesterov.setChecked(True)  # with momentum 0: torch refuses Nesterov
    assert "Nesterov" in c.hyper_error.text()
    ws.start()
    assert not ws.runs and "Nesterov" in ws.error.text()
    nesterov.setChecked(False)
    assert c.hyper_error.text() == "" and c.problems() == []


def test_ticks_carry_real_values(ws, train_in):
    from app.theme import tick_strings

    assert tick_strings([0.0002, 0.0004], 1, 0.0002) == ["0.0002", "0.0004"]
    assert tick_strings([0, 20000, 70000], 1, 10000) == ["0", "20000", "70000"]
    assert tick_strings([1e6, 1.5e6], 1, 5e5) == ["1e6", "1.5e6"]
    train_in(ws, "linreg", 5, lr=0.01)
    for plot in ws.plots.plots:
        axis = plot.getAxis("left")
        assert not axis.autoSIPrefix
        assert "(x" not in axis.labelString()  # no scale hidden in the title
    axis = ws.plots.lr_plot.getAxis("left")
    assert axis.tickStrings([0.004, 0.008], 1, 0.004) == ["0.004", "0.008"]
    # a short axis gets few labels (pyqtgraph gave 0.002 steps: six labels in 90 px)
    assert axis.tickSpacing(0, 0.011, 90)[0][0] == pytest.approx(0.005)
    assert axis.tickSpacing(0, 0.011, 600)[0][0] <= 0.002


def test_runs_of_another_task_are_not_drawn_unless_asked(ws, tmp_path, train_in):
    sine = train_in(ws, "sine", 30)
    line = train_in(ws, "linreg", 10)
    p = ws.plots
    assert p.which.currentData() == "task" and p.drawn() == [line]
    assert not p.curves[sine].smooth.isVisible() and p.curves[line].smooth.isVisible()
    assert len(p.legend.items) == 1
    assert ws.export_csv(str(tmp_path / "runs.csv"))
    assert "Sine" not in (tmp_path / "runs.csv").read_text().split("\n", 2)[1]
    ws.table.selectRow(0)  # the sine run: its task's runs are drawn
    assert p.drawn() == [sine] and p.curves[sine].smooth.isVisible()
    p.which.setCurrentIndex(p.which.findData("all"))
    assert p.drawn() == [sine, line] and len(p.legend.items) == 2
    assert p.curves[line].smooth.isVisible()


def _diverged_file(tmp_path, trained_run):
    data = json.loads(trained_run.record.read_text())
    data["finished"] = dict(
        data["finished"],
        status="diverged",
        reason="diverged",
        divergence={
            "step": 12,
            "epoch": 1,
            "reason": "the loss became nan",
            "advice": "a smaller learning rate",
        },
    )
    for npz in trained_run.folder.glob("*.npz"):  # the trajectory beside the record
        shutil.copy(npz, tmp_path / npz.name)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return path


def test_a_diverged_run_says_where_why_and_what_to_try(ws, tmp_path, trained_run):
    opened = ws.open_runs(str(_diverged_file(tmp_path, trained_run)))
    assert opened, ws.error.text()
    run = opened[0]
    ws.plots.redraw(force=True)
    assert run.status == "diverged (file)"
    status = ws.table.item(0, 4)
    assert status.text() == "diverged (file)"
    assert status.foreground().color().name() != "#000000"
    expected = "at step 12: the loss became nan (epoch 1). Try: a smaller learning rate"
    assert expected in status.toolTip() and status.toolTip().startswith("diverged (file)")
    # the column shows the whole status, not "diverged (fi..."
    margin = 2 * ws.table.style().pixelMetric(QtWidgets.QStyle.PixelMetric.PM_FocusFrameHMargin)
    needed = ws.table.fontMetrics().horizontalAdvance("completed (file)") + margin + 6
    assert ws.table.columnWidth(4) >= needed
    assert "diverged: " + expected in ws.plots.details.text()


def test_a_reopened_lenet_run_does_not_contradict_itself(ws, trained_run):
    run = ws.open_runs(str(trained_run.record))[0]
    ws.plots.redraw(force=True)
    view = ws.plots.digits_view
    assert ws.plots.task_view.currentWidget() is view
    assert view.caption.text() == "Confusion matrix after epoch 2:"
    assert "not kept in run files" in view.grid.placeholder
    assert view.confusion.matrix is not None
    assert run.status == "completed (file)"
    task = ws.table.item(0, 2).text()  # trained on synthetic digits, not "on MNIST"
    assert "synthetic" in task and " on MNIST" not in task


def test_continue_a_run_from_its_checkpoint(ws, qtbot, train_in):
    first = train_in(ws, "linreg", 6, lr=0.01)
    ckpt = first.checkpoint
    assert ckpt is not None and ws.continue_btn.isEnabled()
    ws.controls.epochs.setValue(3)
    ws.controls.hyper["lr"] = 0.02
    messages = []
    ws.message.connect(messages.append)
    ws.table.selectRow(0)
    ws.continue_btn.click()
    assert len(ws.runs) == 2, ws.error.text()
    new = ws.runs[1]
    assert new.record.config["resume"] == str(ckpt)
    done = [r["epoch"] for r in first.record.checkpoints if r["path"] == str(ckpt)][-1]
    assert new.record.config["epochs"] == done + 3
    qtbot.waitUntil(lambda: not ws.running, timeout=60_000)
    ws.plots.redraw(force=True)
    assert new.status == "completed"
    assert new.record.epochs[0]["epoch"] == done + 1  # it went on, not from scratch
    text = ws.plots.details.text()
    assert f"continued from {first.name}'s epoch {done} checkpoint for 3 epochs" in text
    assert new.name.startswith("SGD 0.02, continued")  # the controls' settings
    assert text.count("weight_decay") == 1  # said once: the line has room for two lines
    # and what its first step really used (core reports it with Started)
    used = new.record.steps["lr"][0]
    assert f"in use: lr {used:g}" in text or f"lr in use {used:g}" in text
    assert any(f"completed after {done + 3} epochs" in m for m in messages)  # in all


def test_a_continue_for_another_task_is_refused(ws, train_in):
    train_in(ws, "linreg", 2)
    ws.controls.set_task("sine")
    ws.table.selectRow(0)
    assert ws.continue_run(ws.runs[0]) is None
    assert "choose it in the controls" in ws.error.text() and len(ws.runs) == 1


def test_one_epoch_is_singular(ws, train_in):
    messages = []
    ws.message.connect(messages.append)
    train_in(ws, "linreg", 1)
    assert any("after 1 epoch," in m for m in messages)
    assert not any("1 epochs" in m for m in messages)


def test_every_input_says_what_it_does_and_its_range(ws):
    from app.widgets import NumberEdit

    c = ws.controls
    for task in ("lenet", "sine"):
        c.set_task(task)
        c.scheduler.setCurrentIndex(c.scheduler.findData("step"))
        kinds = (QtWidgets.QComboBox, QtWidgets.QSpinBox, QtWidgets.QCheckBox, NumberEdit)
        inputs = [w for w in c.findChildren(QtWidgets.QWidget) if isinstance(w, kinds)]
        assert len(inputs) > 15
        for w in inputs:
            if isinstance(w.parent(), NumberEdit | QtWidgets.QAbstractSpinBox):
                continue
            assert w.toolTip(), f"{w.objectName() or type(w).__name__} has no tooltip"
    for name in ("epochs", "batch", "seed", "limit"):
        assert " .. " in c.findChild(QtWidgets.QSpinBox, name).toolTip()
    assert ws.plots.smoothing.toolTip() and ws.plots.which.toolTip()


def test_the_workspace_fits_small_windows_and_the_controls_scroll(ws, qtbot):
    hint = ws.minimumSizeHint()
    assert hint.width() <= 1000 and hint.height() <= 560
    ws.resize(1270, 610)  # the tab's room in a 1280x720 window
    qtbot.waitUntil(lambda: ws.plots.val_plot.height() > 0, timeout=5000)
    QtWidgets.QApplication.processEvents()
    assert ws.plots.val_plot.height() >= 120 and ws.plots.loss_plot.height() >= 160
    scroll = ws.findChild(QtWidgets.QScrollArea, "controls_scroll")
    assert scroll.verticalScrollBar().maximum() > 0


def test_steps_cross_in_bundles_and_a_pause_flushes_them():
    from app.train.controller import batched
    from core.train.training import Epoch, Step, TrainControl

    def step(i):
        return Step(i, 1, i, i, 10, 1.0, 0.1, 1.0)

    control = TrainControl()
    events = [step(i) for i in range(1, 6)] + [Epoch(1, 5, 1.0, 1.0, None, 0.1)]
    out = list(batched(iter(events), control, every=3600))
    assert [len(b) for b in out] == [6]  # steps wait for the epoch (or the clock)
    out = list(batched(iter(events), control, every=0))
    assert [len(b) for b in out] == [1] * 6
    control.pause()
    out = list(batched(iter(events[:3]), control, every=3600))
    assert [len(b) for b in out] == [1, 1, 1]  # paused: each step shows at once
    assert np.array_equal([e.step for b in out for e in b], [1, 2, 3])


def test_opening_and_saving_runs_reports_the_file(ws, qtbot, tmp_path, trained_run):
    with qtbot.waitSignal(ws.file_opened, timeout=5000) as sig:
        run = ws.open_runs(str(trained_run.record))[0]
    assert sig.args == ["run", str(trained_run.record)]
    with qtbot.waitSignal(ws.file_opened, timeout=5000) as sig:
        assert ws.save_run(run, str(tmp_path / "again.json"))
    assert sig.args == ["run", str(tmp_path / "again.json")]
    (tmp_path / "bad.json").write_text("{")
    with qtbot.assertNotEmitted(ws.file_opened):
        assert ws.open_runs(str(tmp_path / "bad.json")) == []


def test_closing_waits_for_nothing_when_idle(ws):
    ws.shutdown()
    assert not ws.running and not ws.download.running
    assert isinstance(ws.controller, QtCore.QObject)


def test_torch_threads_follow_the_openmp_wait_policy(monkeypatch):
    import torch

    from app.train import controller

    before = torch.get_num_threads()
    monkeypatch.setattr(controller.os, "cpu_count", lambda: 2)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        controller.leave_a_core()  # spinning threads: a core is left to the window
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("GOMP_SPINCOUNT", "0")
        controller.leave_a_core()  # sleeping threads share the cores with it
        assert torch.get_num_threads() == 2
        # the user's OMP_NUM_THREADS (torch's count at start) stands
        torch.set_num_threads(1)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        controller.leave_a_core()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_removed_run_is_freed_with_its_jobs(ws, qtbot, train_in):
    """A finished run's jobs (its training and its autosave) let go of it: removed from the
    table, the run and its trajectory are freed. Before, every finished job kept its callbacks
    (a child of the controller for good), and each LeNet run kept 30-50 MB for the session."""
    import gc
    import weakref

    from app.workers import Job

    run = train_in(ws, "linreg", 3)
    ref = weakref.ref(run)
    jobs = ws.controller.findChildren(Job)
    assert jobs  # its training and its autosave
    qtbot.waitUntil(lambda: not any(j.running() for j in jobs), timeout=10_000)
    ws.remove_runs([run])
    del run
    qtbot.waitUntil(lambda: gc.collect() >= 0 and ref() is None, timeout=10_000)
