"""The commands in a fresh interpreter with no display: no DISPLAY and no QT_QPA_PLATFORM, as
over ssh or on a cluster node. One child process runs them one after the other (each one
loading PyTorch in its own process cost ~5 s): ``train`` first, which must not load Qt at
all, then ``race``, which picks Qt's offscreen platform by itself, then ``landscape``. Each
command's exit code and its own stdout and stderr (the file descriptors, where Qt writes its
warnings) are kept apart."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from core.landscape.plane import Landscape

DRIVER = """
import json, os, sys, tempfile

from app.main import main

results = []
for argv in json.loads(sys.argv[1]):
    files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    sys.stdout.flush(), sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(files[0].fileno(), 1), os.dup2(files[1].fileno(), 2)
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
    texts = []
    for f in files:
        f.seek(0)
        texts.append(f.read().decode("utf-8", "replace"))
    qt = sorted(m for m in sys.modules if m.startswith("PySide6"))
    results.append({"code": code, "stdout": texts[0], "stderr": texts[1], "qt": qt,
                    "platform": os.environ.get("QT_QPA_PLATFORM")})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def runs(trained_run, tmp_path_factory):
    """name -> that command's {code, stdout, stderr, qt (PySide6 modules loaded after it),
    platform} and the folder its files went to."""
    folder = tmp_path_factory.mktemp("no_display")
    race = ["race", "--preset", "lr_too_high", "--steps", "5", "--size", "320x240"]
    race += ["--out", str(folder / "r.png")]
    land = ["landscape", "--checkpoint", str(trained_run.checkpoint)]
    land += ["--run", str(trained_run.record), "--directions", "pca", "--grid", "5"]
    land += ["--samples", "40", "--eigenvalues", "1", "--size", "600x450"]
    for ext in ("png", "svg", "npz"):
        land += ["--out", str(folder / f"land.{ext}")]
    commands = {
        "train": ["train", "linreg", "--lr", "5", "--epochs", "100"],
        "race": race,
        "landscape": land,
    }
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(list(commands.values()))],
        capture_output=True, text=True, timeout=300, env=env, cwd=folder,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    results = dict(zip(commands, json.loads(out.stdout.splitlines()[-1]), strict=True))
    return results, folder


@pytest.mark.slow  # a fresh interpreter: PyTorch and Qt load
def test_train_loads_no_qt_and_exits_3_on_divergence(runs):
    r = runs[0]["train"]
    assert r["code"] == 3, r["stderr"]
    assert "Diverged in epoch" in r["stderr"] and "Traceback" not in r["stderr"]
    assert r["qt"] == [] and r["platform"] is None  # nothing of Qt was needed


@pytest.mark.slow
def test_race_picks_the_offscreen_platform_by_itself(runs):
    r, folder = runs[0]["race"], runs[1]
    assert r["code"] == 0, r["stderr"]
    assert r["platform"] == "offscreen" and "Traceback" not in r["stderr"]
    with Image.open(folder / "r.png") as im:
        assert im.size == (320, 240)


@pytest.mark.slow
def test_landscape_writes_png_svg_and_npz_and_no_qt_warnings(runs):
    r, folder = runs[0]["landscape"], runs[1]
    assert r["code"] == 0, r["stderr"]
    assert r["stderr"] == ""  # no Qt warnings (the offscreen platform's propagateSizeHints)
    out = r["stdout"]
    assert "grid rows 5/5" in out and "PCA explains" in out
    assert "points/s" in out  # the speed of the grid
    assert "40 of 64 validation samples" in out
    assert "NOT MNIST" in out  # the data is named plainly
    with Image.open(folder / "land.png") as im:
        assert im.size == (600, 450)
    assert ET.parse(folder / "land.svg").getroot().tag.endswith("svg")
    land = Landscape.load(folder / "land.npz")
    assert land.loss.shape == (5, 5) and np.isfinite(land.loss).all()
    assert land.directions == "pca" and land.n_eval == 40
    assert land.extras["path"].shape[1] == 2 and len(land.extras["hessian"]) == 1
    # the grid covers the projected path (automatic range)
    assert np.abs(land.extras["path"]).max() <= land.alphas[-1]
