"""``losslab race --sweep``: driven through a parser built here, as race_cli builds it."""

import argparse

import numpy as np
import pytest

from app.race_cli import add_race_parser
from app.sweep_cli import add_sweep_arguments, run_sweep


def parse(argv):
    parser = argparse.ArgumentParser(prog="losslab")
    sub = parser.add_subparsers()
    add_race_parser(sub)
    race = sub.choices["race"]
    if "--sweep" not in race._option_string_actions:  # until race_cli adds them itself
        add_sweep_arguments(race)
    return parser.parse_args(["race", *argv])


def sweep(argv, capsys):
    try:
        code = run_sweep(parse(argv))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_sweep_writes_the_npz_and_a_labelled_png(tmp_path, capsys, qapp):
    npz, png = tmp_path / "sweep.npz", tmp_path / "sweep.png"
    code, out, err = sweep(
        [
            "--surface=ill_conditioned",
            "--racer=momentum:lr=0.05,momentum=0.5",
            "--sweep=lr=0.01:0.3:log",
            "--sweep=momentum=0:0.95",
            "--grid=8",
            "--steps=200",
            f"--out={npz}",
            f"--out={png}",
            "--size=800x600",
        ],
        capsys,
    )
    assert code == 0, err
    assert "8x8 cells" in out and "diverged:" in out
    data = np.load(npz)
    np.testing.assert_allclose(data["x"], np.geomspace(0.01, 0.3, 8))
    np.testing.assert_allclose(data["y"], np.linspace(0, 0.95, 8))
    for name in ("final_loss", "steps_to_converge", "diverged"):
        assert data[name].shape == (8, 8)
    # [iy, ix]: the largest lr at the lowest momentum diverges (0.3 * 20 > 2), the smallest not
    assert data["diverged"][0, 7] and not data["diverged"][0, 0]
    assert data["diverged"].dtype == bool
    assert str(data["x_name"]) == "lr" and bool(data["x_log"])
    from PySide6 import QtGui

    image = QtGui.QImage(str(png))
    assert (image.width(), image.height()) == (800, 600)


def test_png_axes_are_labelled_with_names_and_log(qapp):
    from app.race.sweep_view import SweepView
    from core.optimizers import OptimizerSpec
    from core.race.race import RacerSpec
    from core.race.surfaces import get_surface
    from core.race.sweep import SweepAxis, sweep_map

    racer = RacerSpec(OptimizerSpec("adam", {}))
    x, y = SweepAxis("lr", 1e-3, 0.5, True), SweepAxis("beta1", 0.0, 0.99)
    *_, result = sweep_map(get_surface("rosenbrock"), racer, x, y, grid=4, steps=20)
    view = SweepView()
    view.set_map(result, "loss")
    assert view.plot.getAxis("bottom").labelText == "lr (log)"
    assert view.plot.getAxis("left").labelText == "beta1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sweep=lr=1e-3:1:log"], "give --sweep twice"),
        (["--sweep=lr=1e-3:1:log", "--sweep=gamma=0:1"], "has no hyperparameter 'gamma'"),
        (["--sweep=lr=1e-3:1:log", "--sweep=beta1=0:2"], "beta1"),
        (["--sweep=lr=1e-3:1:log", "--sweep=beta1=0:0.9", "--grid=5000"], "Invalid grid"),
        (["--sweep=lr=1e-3:1:log", "--sweep=beta1=0:0.9", "--out=x.csv"], "writes .npz or .png"),
        (["--sweep=lr:1", "--sweep=beta1=0:0.9"], "NAME=LOW:HIGH"),
    ],
)
def test_bad_sweeps_are_refused_with_a_message(argv, message, tmp_path, capsys):
    outs = [a for a in argv if a.startswith("--out")] or [f"--out={tmp_path / 'm.npz'}"]
    argv = [a for a in argv if not a.startswith("--out")] + outs
    code, out, err = sweep(["--racer=adam", *argv, "--steps=10"], capsys)
    assert code == 2
    assert message in err
    assert not (tmp_path / "m.npz").exists()


def test_a_sweep_takes_one_racer(tmp_path, capsys):
    code, _, err = sweep(
        [
            "--racer=adam",
            "--racer=sgd",
            "--sweep=lr=1e-3:1:log",
            "--sweep=eps=1e-8:1e-4:log",
            f"--out={tmp_path / 'm.npz'}",
        ],
        capsys,
    )
    assert code == 2 and "one racer" in err
