"""losslab landscape: headless, from a run's checkpoint and record, to PNG, SVG and .npz."""

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.landscape.plane import Landscape
from core.train.runs import RunRecord
from core.train.training import TrainConfig, train

FAST = ["--grid", "5", "--eigenvalues", "0"]


@pytest.fixture(scope="module")
def sine_run(tmp_path_factory):
    """A short sine fit (summed MSE over its 2,000 points) with its record and checkpoint."""
    folder = tmp_path_factory.mktemp("sine")
    cfg = TrainConfig(task="sine", epochs=40, checkpoint=str(folder / "best.pt"))
    rec = RunRecord.for_config(cfg, "sine")
    for e in train(cfg):
        rec.add(e)
    rec.save(folder / "run.json")
    return folder / "run.json"


def test_the_sine_fits_checkpoint_value_is_its_validation_loss(cli, sine_run, tmp_path):
    """Train said 8.85 where the landscape said 4.43: half the points, summed (#12.4)."""
    recorded = RunRecord.load(sine_run).checkpoints[-1]["val_loss"]
    out = cli("landscape", "--run", sine_run, *FAST, "--out", tmp_path / "l.npz")
    assert out.returncode == 0, out.stderr
    assert "all 2,000 validation samples" in out.stdout
    assert f"Train's validation loss for it: {recorded:.6g}" in out.stdout
    land = Landscape.load(tmp_path / "l.npz")
    assert land.meta["centre_loss"] == pytest.approx(recorded, rel=1e-5)
    assert land.loss[2, 2] == pytest.approx(recorded, rel=1e-5)


def test_lenets_checkpoint_value_is_its_validation_loss(cli, trained_run, tmp_path):
    recorded = RunRecord.load(trained_run.record).checkpoints[-1]["val_loss"]
    out = cli(
        "landscape", "--checkpoint", trained_run.checkpoint, *FAST, "--out", tmp_path / "l.npz"
    )
    assert out.returncode == 0, out.stderr
    assert "all 64 validation samples" in out.stdout  # the run's own (limited) validation set
    land = Landscape.load(tmp_path / "l.npz")
    assert land.meta["centre_loss"] == pytest.approx(recorded, rel=1e-5)


@pytest.mark.parametrize(
    ("out", "says"),
    [
        ("missing/x.png", "missing: the folder"),
        ("x.gif", "unknown format '.gif'"),
        ("x", "unknown format '(none)'"),
        (".", "unknown format"),
        ("folder.png", "is a folder, not a file"),
    ],
)
def test_output_paths_are_checked_before_computing(cli, trained_run, tmp_path, out, says):
    (tmp_path / "folder.png").mkdir()
    path = tmp_path / out
    got = cli("landscape", "--checkpoint", trained_run.checkpoint, "--out", tmp_path / "ok.npz",
              "--out", path)  # fmt: skip
    assert got.returncode == 2
    assert str(path) in got.stderr and says.split(": ")[-1] in got.stderr
    assert got.stdout == ""  # nothing loaded, nothing computed
    assert not (tmp_path / "ok.npz").exists()


def test_a_read_only_folder_is_said_before_computing(cli, trained_run, tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access
    # as if the folder were read-only (chmod alone does not stop root, who runs CI here)
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != folder and real_access(p, mode))
    got = cli("landscape", "--checkpoint", trained_run.checkpoint, "--out", folder / "x.png")
    assert got.returncode == 2 and f"the folder {folder} is not writable" in got.stderr
    assert got.stdout == ""


def test_a_failed_write_keeps_the_grid_and_says_where(cli, trained_run, tmp_path, monkeypatch):
    import app.landscape_cli as lc

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lc, "_picture", full_disk)
    monkeypatch.chdir(tmp_path)
    got = cli("landscape", "--checkpoint", trained_run.checkpoint, *FAST, "--out", "l.png")
    assert got.returncode == 1
    assert "cannot write l.png" in got.stderr and "No space left" in got.stderr
    kept = list(tmp_path.glob("losslab-landscape-*.npz"))
    assert len(kept) == 1 and str(kept[0]) in got.stderr
    land = Landscape.load(kept[0])
    assert land.loss.shape == (5, 5) and np.isfinite(land.loss).all()
    assert "Traceback" not in got.stderr


def test_landscape_errors_are_messages(cli, trained_run, tmp_path):
    npz, run, ck = tmp_path / "x.npz", trained_run.record, trained_run.checkpoint
    out = cli("landscape", "--checkpoint", tmp_path / "nope.pt", "--out", npz)
    assert out.returncode == 2 and "no checkpoint at" in out.stderr
    out = cli("landscape", "--checkpoint", ck, "--directions", "pca", "--out", npz)
    assert out.returncode == 2 and "need the run's recorded trajectory" in out.stderr
    out = cli("landscape", "--run", run, "--samples", "-3", "--out", npz)
    assert out.returncode == 2 and "Invalid samples" in out.stderr
    out = cli("landscape", "--run", run, "--grid", "2", "--out", npz)
    assert out.returncode == 2 and "Invalid grid size: 2 points a side (3 .. 401)" in out.stderr
    out = cli("landscape", "--out", npz)
    assert out.returncode == 2 and "give --checkpoint, --run, --model, or --load" in out.stderr
    out = cli("landscape", "--run", run, "--size", "9x9", "--out", tmp_path / "x.png")
    assert out.returncode == 2 and "out of range" in out.stderr
    out = cli("landscape", "--run", run, "--grid", "many", "--out", npz)
    assert out.returncode == 2 and "invalid int value" in out.stderr  # argparse's own
    assert not npz.exists() and "Traceback" not in out.stderr


def test_a_run_trained_with_a_relative_checkpoint_opens_from_another_folder(
    cli, tmp_path, monkeypatch
):
    """`losslab train --checkpoint best.pt` records "best.pt"; `losslab landscape --run` from
    another folder used to fail with "no checkpoint at best.pt"."""
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.chdir(runs)
    r = cli("train", "linreg", "--epochs", "3", "--out", "a.json", "--checkpoint", "best.pt")
    assert r.returncode == 0, r.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = elsewhere / "l.npz"
    r = cli("landscape", "--run", runs / "a.json", "--grid", "5", "--out", out)
    assert r.returncode == 0, r.stderr
    assert out.exists()


def test_a_picture_smaller_than_the_layout_still_has_the_size_asked_for(cli, trained_run, tmp_path):
    """--size 320x240 gave a 576x439 PNG: the layout's smallest size, silently."""
    grid = tmp_path / "g.npz"
    out = cli("landscape", "--checkpoint", trained_run.checkpoint, *FAST, "--samples", "20",
              "--out", grid)  # fmt: skip
    assert out.returncode == 0, out.stderr
    png, svg = tmp_path / "small.png", tmp_path / "small.svg"
    out = cli("landscape", "--load", grid, "--size", "320x240", "--out", png, "--out", svg)
    assert out.returncode == 0, out.stderr
    with Image.open(png) as im:
        assert im.size == (320, 240)
        # drawn, not blank: the scaled-down plots leave many colours
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50
    root = ET.parse(svg).getroot()
    assert (root.get("width"), root.get("height")) == ("320px", "240px")
    assert root.get("viewBox")  # the drawing keeps its own coordinates and is scaled to fit
