"""losslab landscape: headless, from a run's checkpoint and record, to PNG, SVG and .npz."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from core.landscape.plane import Landscape
from core.train.runs import RunRecord
from core.train.training import TrainConfig, train


def losslab(*args, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture(scope="module")
def run_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(
        task="lenet", dataset="synthetic", limit=256, epochs=2, checkpoint=str(folder / "b.pt")
    )
    rec = RunRecord.for_config(cfg, "tiny")
    for e in train(cfg):
        rec.add(e)
    rec.save(folder / "run.json")
    return folder


def test_landscape_writes_png_svg_and_npz(run_files, tmp_path):
    outs = [tmp_path / f"land.{ext}" for ext in ("png", "svg", "npz")]
    args = [
        "landscape",
        "--checkpoint",
        str(run_files / "b.pt"),
        "--run",
        str(run_files / "run.json"),
        "--directions",
        "pca",
        "--grid",
        "7",
        "--samples",
        "40",
        "--eigenvalues",
        "1",
        "--size",
        "900x700",
    ]
    for o in outs:
        args += ["--out", str(o)]
    out = losslab(*args)
    assert out.returncode == 0, out.stderr
    assert "grid rows 7/7" in out.stdout and "PCA explains" in out.stdout
    assert "NOT MNIST" in out.stdout  # the data is named plainly
    with Image.open(outs[0]) as im:
        assert im.size == (900, 700)
    assert ET.parse(outs[1]).getroot().tag.endswith("svg")
    land = Landscape.load(outs[2])
    assert land.loss.shape == (7, 7) and np.isfinite(land.loss).all()
    assert land.directions == "pca" and land.n_eval == 40
    assert land.extras["path"].shape[1] == 2 and len(land.extras["hessian"]) == 1
    # the grid covers the projected path (automatic range)
    assert np.abs(land.extras["path"]).max() <= land.alphas[-1]


def test_landscape_errors_are_messages(run_files, tmp_path):
    out = losslab(
        "landscape", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x.npz")
    )
    assert out.returncode == 2 and "no checkpoint at" in out.stderr
    out = losslab(
        "landscape",
        "--checkpoint",
        str(run_files / "b.pt"),
        "--directions",
        "pca",
        "--out",
        str(tmp_path / "x.npz"),
    )
    assert out.returncode == 2 and "need the run's recorded trajectory" in out.stderr
    out = losslab(
        "landscape", "--run", str(run_files / "run.json"), "--out", str(tmp_path / "x.gif")
    )
    assert out.returncode == 2 and "unknown format" in out.stderr
    assert "Traceback" not in out.stderr
