import os
import subprocess
import sys

from PIL import Image


def test_app_starts_and_exits_cleanly(tmp_path):
    png = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run(
        [sys.executable, "-m", "app", "--quit-after", "300", "--screenshot", str(png)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    with Image.open(png) as im:
        assert im.size[0] >= 800 and im.size[1] >= 500


def test_version_and_help_need_no_display():
    out = subprocess.run(
        [sys.executable, "-m", "app", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "QT_QPA_PLATFORM": "none"},
    )
    assert out.returncode == 0 and "LossLab" in out.stdout


def test_main_window_has_three_workspaces(qtbot):
    from app.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    assert [w.tabs.tabText(i) for i in range(w.tabs.count())] == ["Race", "Train", "Landscape"]
