"""The curvature panel: computes on a worker thread, shows the cost first, cancels and joins."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtWidgets

from app.landscape import curvature_panel as cp
from core.landscape import curvature_job as cj

EXPERIMENT = """
import torch
from torch import nn

def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))

def batches():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 2, generator=g)
    return [(x, x[:, :1] ** 2)]

def loss(model, batch):
    return ((model(batch[0]) - batch[1]) ** 2).mean()
"""


@pytest.fixture
def panel(qtbot):
    p = cp.CurvaturePanel()
    qtbot.addWidget(p)
    p.resize(1000, 560)
    p.show()
    yield p
    p.shutdown()


@pytest.fixture
def experiment(tmp_path):
    f = tmp_path / "exp.py"
    f.write_text(EXPERIMENT)
    return str(f)


def find(panel, cls, name):
    w = panel.findChild(cls, name)
    assert w is not None, name
    return w


def test_nothing_to_compute_until_a_source_is_set(panel, experiment):
    button = find(panel, QtWidgets.QPushButton, "curvatureCompute")
    assert panel.objectName() == "curvaturePanel"
    assert not button.isEnabled()
    # the empty log axis spans decades (pyqtgraph's default, one decade, showed only 2..9)
    low, high = find(panel, cp.DensityPlot, "curvatureDensity").viewRange()[1]
    assert high - low >= 3
    panel.set_source(None, None, experiment)
    assert button.isEnabled()


def test_compute_shows_the_cost_then_every_part(panel, qtbot, experiment):
    panel.set_source(None, None, experiment)
    plans = []
    find(panel, QtWidgets.QPushButton, "curvatureCompute").click()
    panel.job.item.connect(
        lambda e: isinstance(e, cj.Planned) and plans.append(panel.status.text())
    )
    qtbot.waitUntil(lambda: panel.job is None, timeout=60_000)
    assert find(panel, QtWidgets.QLabel, "curvatureError").text() == ""
    r = panel.result
    assert r is not None and r.parameters == 33
    assert plans and "Hessian-vector products" in plans[0]
    assert len(r.top_eigenvalues) == 5 and r.trace is not None and r.density is not None
    summary = find(panel, QtWidgets.QLabel, "curvatureSummary").text()
    assert "top eigenvalues" in summary and "±" in summary
    # the plot holds the density, the bars one bar per layer
    x, y = panel.plot.curve.getData()
    assert len(x) == 1000 and np.all(np.isfinite(y))
    assert [t for _, t in panel.bars.getAxis("left")._tickLevels[0]] == [
        "0 (Linear)", "2 (Linear)",
    ]  # fmt: skip
    assert find(panel, QtWidgets.QProgressBar, "curvatureProgress").format().startswith("done")


def test_a_loss_without_a_hessian_says_so_beside_the_panel(panel, qtbot, tmp_path):
    f = tmp_path / "bad.py"
    # cdist of a few points has no second derivative in torch (of many points it has)
    f.write_text(
        EXPERIMENT.replace(
            "((model(batch[0]) - batch[1]) ** 2).mean()",
            "torch.cdist(model(batch[0][:8]).repeat(1, 2), batch[1][:8].repeat(1, 2)).mean()",
        )
    )
    panel.set_source(None, None, str(f))
    panel.compute()
    qtbot.waitUntil(lambda: panel.job is None, timeout=60_000)
    assert "cannot be differentiated twice" in panel.error.text()
    assert "timing" not in panel.status.text()  # no stale "timing one product..." above it
    assert panel.compute_btn.isEnabled()  # the user can fix the file and try again


def test_a_long_analysis_waits_for_start_and_cancel_joins(panel, qtbot, experiment, monkeypatch):
    monkeypatch.setattr(cp, "CONFIRM_SECONDS", 0.0)  # every analysis counts as long
    panel.set_source(None, None, experiment)
    panel.compute()
    qtbot.waitUntil(lambda: panel.compute_btn.text().startswith("Start"), timeout=60_000)
    assert "Press <b>Start</b>" in panel.status.text()
    assert panel.cancel_btn.isEnabled()
    job = panel.job
    panel.cancel()
    qtbot.waitUntil(lambda: panel.job is None, timeout=30_000)
    assert job.thread.wait(30_000)  # the thread is gone (a loaded machine: 5 s once missed)
    assert panel.result is None and "Cancelled" in panel.status.text()
    assert panel.compute_btn.text() == "Compute" and panel.compute_btn.isEnabled()


def test_start_goes_on_after_the_estimate(panel, qtbot, experiment, monkeypatch):
    monkeypatch.setattr(cp, "CONFIRM_SECONDS", 0.0)
    panel.set_source(None, None, experiment)
    panel.top.setValue(2)
    panel.compute()
    qtbot.waitUntil(lambda: panel.compute_btn.text().startswith("Start"), timeout=60_000)
    panel.compute_btn.click()
    qtbot.waitUntil(lambda: panel.job is None, timeout=60_000)
    assert panel.result is not None and len(panel.result.top_eigenvalues) == 2


def test_shutdown_while_running_joins_the_thread(qtbot, experiment):
    p = cp.CurvaturePanel()
    qtbot.addWidget(p)
    p.set_source(None, None, experiment)
    p.compute()
    job = p.job
    p.shutdown()
    assert p.job is None and not job.thread.isRunning()


def test_nothing_asked_for_is_said_beside_the_button(panel, experiment):
    panel.set_source(None, None, experiment)
    panel.top.setValue(0)
    for box in (panel.trace, panel.density, panel.per_layer):
        box.setChecked(False)
    panel.compute()
    assert panel.job is None
    assert "nothing to compute" in panel.error.text()


def test_a_new_source_cancels_the_old_analysis(panel, qtbot, experiment, tmp_path, monkeypatch):
    # a job waiting for Start kept running after the source changed, and Compute then
    # started the old source's analysis
    monkeypatch.setattr(cp, "CONFIRM_SECONDS", 0.0)
    panel.set_source(None, None, experiment)
    panel.compute()
    qtbot.waitUntil(lambda: panel.compute_btn.text().startswith("Start"), timeout=60_000)
    other = tmp_path / "other.py"
    other.write_text(EXPERIMENT.replace("nn.Linear(8, 1)", "nn.Linear(8, 2), nn.Linear(2, 1)"))
    panel.set_source(None, None, str(other))
    qtbot.waitUntil(lambda: panel.job is None, timeout=30_000)
    assert panel.result is None and "source changed" in panel.status.text()
    assert panel.compute_btn.text() == "Compute" and panel.compute_btn.isEnabled()
    monkeypatch.setattr(cp, "CONFIRM_SECONDS", 1e9)
    panel.top.setValue(1)
    panel.compute_btn.click()
    qtbot.waitUntil(lambda: panel.job is None, timeout=60_000)
    assert (
        panel.result is not None and panel.result.parameters == 45
    )  # the new model, not the 33 of the old


def test_the_same_source_again_keeps_the_analysis(panel, qtbot, experiment, monkeypatch):
    monkeypatch.setattr(cp, "CONFIRM_SECONDS", 0.0)
    panel.set_source(None, None, experiment)
    panel.compute()
    qtbot.waitUntil(lambda: panel.compute_btn.text().startswith("Start"), timeout=60_000)
    panel.set_source(None, None, experiment, samples=0)  # e.g. the workspace re-sent it
    assert panel.job is not None and not panel._cancel.is_set()
    panel.compute_btn.click()
    qtbot.waitUntil(lambda: panel.job is None, timeout=60_000)
    assert panel.result is not None


def test_the_curvature_tab_hides_the_maps_line_and_facts(lw, qtbot):
    lw.show()
    line = lw.line
    assert line.isVisible()
    lw.centre_tabs.setCurrentIndex(1)
    assert not line.isVisible()
    lw.centre_tabs.setCurrentIndex(0)
    assert line.isVisible()
