"""losslab landscape --run a.json --run b.json: several runs on one plane, and the barrier."""

import numpy as np
import pytest
from PIL import Image

from core.landscape.plane import Landscape
from core.optimizers import OptimizerSpec
from core.train.runs import RunRecord

FAST = ["--grid", "5", "--eigenvalues", "0"]


@pytest.fixture(scope="module")
def two(tmp_path_factory, save_run):
    folder = tmp_path_factory.mktemp("cli_multi")
    return (
        save_run(
            folder,
            "sgd",
            task="linreg",
            epochs=8,
            optimizer=OptimizerSpec("sgd", {"lr": 0.01, "momentum": 0.9}),
        ),
        save_run(
            folder, "adam", task="linreg", epochs=8, optimizer=OptimizerSpec("adam", {"lr": 0.05})
        ),
    )


def test_two_runs_on_the_endpoints_plane_print_the_barrier(cli, two, tmp_path):
    outs = [tmp_path / "m.npz", tmp_path / "m.png", tmp_path / "m.h5"]
    args = ["landscape", "--run", two[0], "--run", two[1], *FAST, "--size", "800x600"]
    out = cli(*args, *sum((["--out", o] for o in outs), []))
    assert out.returncode == 0, out.stderr
    assert "barrier height: " in out.stdout and "Plane: endpoints" in out.stdout
    assert "Run 2: 'adam'" in out.stdout
    with np.load(outs[0]) as z:
        assert z["path_0"].ndim == 2 and z["path_0"].shape[1] == 2 and z["path_1"].shape[1] == 2
        assert list(z["run_names"]) == ["sgd", "adam"]
        assert z["end_points"][0] == pytest.approx([1.0, 0.0], abs=1e-5)  # A's end: a = 1
    with Image.open(outs[1]) as im:
        assert im.size == (800, 600)
    land = Landscape.load(outs[0])
    assert land.meta["barrier"] >= 0 and land.directions == "endpoints"


def test_pca_of_both_runs_with_the_pair_reversed(cli, two, tmp_path):
    out = cli(
        "landscape", "--run", two[0], "--run", two[1], "--directions", "pca", "--pair", "2,1",
        *FAST, "--out", tmp_path / "p.npz",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "from 'adam' to 'sgd'" in out.stdout
    land = Landscape.load(tmp_path / "p.npz")
    assert land.meta["pair"] == [1, 0] and land.extras["end_points"][1] == pytest.approx([0, 0])


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--pair", "1,1"], "two different runs"),
        (["--pair", "1,5"], "numbered 1 .. 2"),
        (["--directions", "init-final"], "init-final is for one run"),
        (["--checkpoint", "x.pt"], "give the runs' JSON files alone"),
    ],
)
def test_bad_requests_for_several_runs_get_messages(cli, two, tmp_path, extra, says):
    out = cli("landscape", "--run", two[0], "--run", two[1], *extra, "--out", tmp_path / "x.npz")
    assert out.returncode == 2 and says in out.stderr
    assert not (tmp_path / "x.npz").exists()


def test_runs_of_different_tasks_are_refused(cli, two, tmp_path, save_run):
    sine = save_run(tmp_path, "sine", task="sine", epochs=3)
    out = cli("landscape", "--run", two[0], "--run", sine, *FAST, "--out", tmp_path / "x.npz")
    assert out.returncode == 2 and "different tasks or models" in out.stderr


def test_endpoints_of_one_run_get_a_message(cli, two, tmp_path):
    out = cli(
        "landscape", "--run", two[0], "--directions", "endpoints", "--out", tmp_path / "x.npz"
    )
    assert out.returncode == 2 and "at least 2 runs" in out.stderr


def test_the_hessian_plane_of_one_run(cli, two, tmp_path):
    out = cli("landscape", "--run", two[1], "--directions", "hessian", *FAST,
              "--out", tmp_path / "h.npz")  # fmt: skip
    assert out.returncode == 0, out.stderr
    land = Landscape.load(tmp_path / "h.npz")
    assert land.directions == "hessian" and np.isfinite(land.loss).all()
    # two orthogonal directions (eigenvectors of a symmetric matrix)
    cos = float(land.d1 @ land.d2) / float(np.linalg.norm(land.d1) * np.linalg.norm(land.d2))
    assert abs(cos) < 1e-3


@pytest.mark.slow
def test_own_model_runs_from_an_experiment_file(cli, tmp_path, save_run):
    from pathlib import Path

    mlp = Path(__file__).resolve().parents[2] / "core" / "train" / "examples" / "mlp_regression.py"
    files = [
        save_run(tmp_path, name, task="experiment", model_file=str(mlp), epochs=1, optimizer=opt)
        for name, opt in (
            ("sgd", OptimizerSpec("sgd", {"lr": 0.05, "momentum": 0.9})),
            ("adam", OptimizerSpec("adam", {"lr": 0.01})),
        )
    ]
    out = cli("landscape", "--run", files[0], "--run", files[1], *FAST, "--out", tmp_path / "o.npz")
    assert out.returncode == 0, out.stderr
    assert "own model (mlp_regression.py)" in out.stdout and "barrier height: " in out.stdout
    land = Landscape.load(tmp_path / "o.npz")
    assert land.meta["model_file"].endswith("mlp_regression.py")
    assert list(land.extras["run_names"]) == ["sgd", "adam"]


@pytest.fixture
def moved(two, tmp_path):
    """The two runs as `losslab train --checkpoint NAME.pt` leaves them: checkpoint paths
    relative to the folder it ran in; the second has lost its .trajectory.npz."""
    import json
    import shutil
    from pathlib import Path

    folder = tmp_path / "runs"
    folder.mkdir()
    out = []
    for k, src in enumerate(two):
        src = Path(src)
        data = json.loads(src.read_text())
        for row in data["checkpoints"]:
            shutil.copy(row["path"], folder / Path(row["path"]).name)
            row["path"] = Path(row["path"]).name
        if k == 0:
            shutil.copy(src.parent / data["trajectory"], folder / data["trajectory"])
        (folder / src.name).write_text(json.dumps(data))
        out.append(folder / src.name)
    return out


def test_runs_opened_from_another_folder_and_a_lost_trajectory(cli, moved, tmp_path):
    out = cli("landscape", "--run", moved[0], "--run", moved[1], *FAST, "--out", tmp_path / "m.npz")
    assert out.returncode == 0, out.stderr
    assert "adam.trajectory.npz cannot be read, so its end point only" in out.stdout
    assert "adam: end point at" in out.stdout and "1 point," in out.stdout
    with np.load(tmp_path / "m.npz") as z:
        assert z["path_1"].shape == (1, 2) and len(z["path_0"]) > 1


def test_a_run_that_saved_no_checkpoint_is_named(cli, two, tmp_path):
    rec = RunRecord.load(two[0])
    rec.checkpoints = []
    bare = rec.save(tmp_path / "bare.json")
    out = cli("landscape", "--run", bare, "--run", two[1], *FAST, "--out", tmp_path / "m.npz")
    assert out.returncode == 2
    assert "bare.json: the run saved no checkpoint (train it with --checkpoint" in out.stderr


def test_no_barrier_is_said_without_a_place(cli, two, tmp_path):
    out = cli("landscape", "--run", two[0], "--run", two[0], *FAST, "--out", tmp_path / "m.npz")
    assert out.returncode == 0, out.stderr
    assert "barrier height: 0 (none: on the line from" in out.stdout
    assert "at t = 0" not in out.stdout


def test_a_failed_write_keeps_the_grid_of_several_runs(cli, two, tmp_path, monkeypatch):
    """A picture that cannot be written used to lose the several-run grid (the one-run path
    kept it): both now keep it in losslab-landscape-*.npz and say where."""
    import app.landscape_cli as lc

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lc, "_picture", full_disk)
    monkeypatch.chdir(tmp_path)
    got = cli("landscape", "--run", two[0], "--run", two[1], *FAST, "--out", "m.png")
    assert got.returncode == 1 and "No space left" in got.stderr
    kept = list(tmp_path.glob("losslab-landscape-*.npz"))
    assert len(kept) == 1 and str(kept[0]) in got.stderr
    with np.load(kept[0]) as z:
        assert z["path_0"].shape[1] == 2 and z["path_1"].shape[1] == 2
