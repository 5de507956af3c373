"""Start-up: the real entry point in a fresh interpreter (what a user runs), kept short."""

import re

import pytest
from PIL import Image


@pytest.mark.slow  # a fresh interpreter: PyTorch and Qt load again
def test_app_starts_and_exits_cleanly(losslab, tmp_path):
    """The window comes up with its three workspaces built, is painted, and closes with 0.
    Its settings go to a temporary folder: a test never reads or writes the user's."""
    png = tmp_path / "window.png"
    env = {
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "LOSSLAB_REPORT_STARTUP": "1",
    }
    r = losslab("--quit-after", 0, "--screenshot", png, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert "workspaces Race,Train,Landscape" in r.stdout
    painted = float(re.search(r"painted-at (\S+)", r.stdout).group(1))
    ready = float(re.search(r"ready-at (\S+)", r.stdout).group(1))
    assert painted <= ready  # the window is painted before PyTorch is loaded
    with Image.open(png) as im:
        assert im.size[0] >= 800 and im.size[1] >= 500


def test_version_needs_no_display(losslab):
    r = losslab("--version", env={"QT_QPA_PLATFORM": "none"}, timeout=60)
    assert r.returncode == 0 and "LossLab" in r.stdout


def test_help_lists_the_subcommands(cli):
    r = cli("--help")
    assert r.returncode == 0
    for command in ("race", "train", "landscape"):
        assert re.search(rf"^\s+{command}\s", r.stdout, re.M), command
    r = cli("race", "--help")
    assert r.returncode == 0
    for option in ("--preset", "--racer", "--start", "--steps", "--tol", "--out", "--frames"):
        assert option in r.stdout
