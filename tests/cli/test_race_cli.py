import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from PIL import Image


def losslab(*args, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )  # no display at all: it must render offscreen


def test_race_writes_every_format(tmp_path):
    outs = [tmp_path / f"race.{ext}" for ext in ("png", "svg", "gif", "json", "csv")]
    args = [
        "race",
        "--preset",
        "momentum_overshoot",
        "--steps",
        "60",
        "--frames",
        "20",
        "--size",
        "800x600",
    ]
    for o in outs:
        args += ["--out", str(o)]
    out = losslab(*args)
    assert out.returncode == 0, out.stderr
    with Image.open(outs[0]) as im:
        assert im.size == (800, 600)
    assert ET.parse(outs[1]).getroot().tag.endswith("svg")
    with Image.open(outs[2]) as im:
        assert im.n_frames >= 10
    assert os.path.getsize(outs[2]) < 1_000_000
    doc = json.loads(outs[3].read_text())
    assert doc["steps"] == 60 and len(doc["racers"]) == 3
    assert doc["session"]["surface"]["key"] == "ill_conditioned"
    assert outs[4].read_text().startswith("racer,start,step,x,y,loss,lr")


def test_race_from_racers_and_a_formula(tmp_path):
    out = losslab(
        "race",
        "--formula",
        "x**2 + 3*sin(y)**2",
        "--bounds",
        "-2,2,-2,2",
        "--racer",
        "adam:lr=0.05",
        "--racer",
        "sgd:lr=1e-2,momentum=0.9,noise=0.1",
        "--start",
        "-1.5,1.5",
        "--steps",
        "40",
        "--out",
        str(tmp_path / "r.json"),
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["surface"] == "formula" and doc["racers"][0]["x"][0] == -1.5


def test_list_presets():
    out = losslab("race", "--list-presets")
    assert out.returncode == 0 and "lr_too_high" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--racer", "adam:lrr=1", "--out", "x.png"], "Unknown hyperparameter 'lrr'"),
        (["--racer", "adamm", "--out", "x.png"], "Unknown optimizer 'adamm'"),
        (["--preset", "nope", "--out", "x.png"], "unknown preset"),
        (["--preset", "lr_too_high", "--out", "x.bmp"], "unknown format"),
        (["--preset", "lr_too_high", "--size", "big", "--out", "x.png"], "size must look like"),
        (["--formula", "x +* y", "--racer", "adam", "--out", "x.png"], "syntax error"),
        (["--preset", "lr_too_high"], "--out is required"),
    ],
)
def test_bad_race_options(args, message):
    out = losslab("race", *args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr


def test_unwritable_output(tmp_path):
    out = losslab(
        "race",
        "--preset",
        "lr_too_high",
        "--steps",
        "5",
        "--out",
        str(tmp_path / "missing" / "x.png"),
    )
    assert out.returncode == 1 and "does not exist" in out.stderr
    assert "Traceback" not in out.stderr
