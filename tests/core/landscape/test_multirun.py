"""Several runs on one plane (core.landscape.multirun) and the Hessian plane of one run."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from core.hessian import hvp_of
from core.landscape import job as lj
from core.landscape import multirun as mr
from core.landscape.directions import LandscapeError, flat_parameters, project
from core.landscape.plane import Landscape
from core.landscape.subject import load_model_subject, load_subject
from core.optimizers import OptimizerSpec

ROOT = Path(__file__).resolve().parents[3]
MLP = ROOT / "core" / "train" / "examples" / "mlp_regression.py"
SMALL = lj.Request(resolution=5, eigenvalues=0)


@pytest.fixture(scope="module")
def sine_runs(tmp_path_factory, save_run):
    """Three sine fits: two optimizers from the same start (seed 0), one from another start."""
    folder = tmp_path_factory.mktemp("multi")
    return [
        save_run(folder, "sgd", optimizer=OptimizerSpec("sgd", {"lr": 1e-6, "momentum": 0.9})),
        save_run(folder, "adam", optimizer=OptimizerSpec("adam", {"lr": 0.01})),
        save_run(folder, "other", seed=3, optimizer=OptimizerSpec("adam", {"lr": 0.01})),
    ]


def _subjects(files):
    return [load_subject(None, str(f)) for f in files]


def _done(subjects, **kw) -> mr.MultiDone:
    kw.setdefault("base", SMALL)
    events = list(mr.run_many(subjects, mr.MultiRequest(**kw)))
    assert isinstance(events[-1], mr.MultiDone)
    return events[-1]


# --- the barrier ------------------------------------------------------------------------------


def test_the_barrier_of_a_known_1d_function():
    t = np.linspace(0, 1, 101)
    loss = 1 + 2 * t + 3 * np.sin(np.pi * t)  # the chord is 1 + 2t: the rise is 3 sin(pi t)
    height, at = mr.barrier_height(t, loss)
    assert height == pytest.approx(3.0) and at == pytest.approx(0.5)
    # a line below its chord (a convex bowl between the ends... upside down) has no barrier
    assert mr.barrier_height(t, -3 * np.sin(np.pi * t))[0] == 0.0
    # points beyond [0, 1] are not between the end points
    wide = np.linspace(-0.5, 1.5, 201)
    assert mr.barrier_height(wide, (wide - 0.5) ** 2)[0] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="t = 0 and t = 1"):
        mr.barrier_height(np.linspace(0.1, 0.9, 5), np.zeros(5))


def test_the_barrier_of_a_run_with_itself_is_zero(sine_runs):
    s = _subjects(sine_runs[:1])[0]
    done = _done([s, s], directions="random")
    assert done.barrier.height == 0.0
    assert np.ptp(done.barrier.loss) == pytest.approx(0.0, abs=1e-9 * done.barrier.loss[0])


# --- the planes -------------------------------------------------------------------------------


def test_each_end_point_lies_on_the_endpoints_plane(sine_runs):
    subjects = _subjects(sine_runs[:2])
    done = _done(subjects, directions="endpoints")
    land = done.landscape
    for s, p in zip(subjects, done.paths, strict=True):
        theta = flat_parameters(s.model).numpy()
        coords, off = project(theta[None], land.centre, land.d1, land.d2)
        assert off[0] == pytest.approx(0.0, abs=1e-5)  # the projection error
        assert coords[0] == pytest.approx(p.end, abs=1e-5)
    # theta0 at (0, 0), A's end at (1, 0), B's at b = 1
    assert done.paths[0].end == pytest.approx([1.0, 0.0], abs=1e-5)
    assert done.paths[1].end[1] == pytest.approx(1.0, abs=1e-5)
    assert done.paths[0].coords[0] == pytest.approx([0.0, 0.0], abs=1e-5)  # the shared start
    assert "θA - θ0" in land.meta["axes"][0] and not land.meta["notes"]
    # every path and end point is on the map
    for p in done.paths:
        assert land.alphas[0] < p.coords[:, 0].min() and p.coords[:, 0].max() < land.alphas[-1]
        assert land.betas[0] < p.coords[:, 1].min() and p.coords[:, 1].max() < land.betas[-1]
    # a sine fit is linear in its parameters: its loss is convex, so no barrier
    assert done.barrier.height == pytest.approx(0.0, abs=1e-6 * done.barrier.loss.max())


def test_different_starts_use_the_plane_of_three_end_points_and_say_so(sine_runs):
    subjects = _subjects(sine_runs)  # "other" starts elsewhere
    done = _done(subjects, directions="endpoints")
    land = done.landscape
    assert any("different weights" in n for n in land.meta["notes"])
    for s in subjects:
        _, off = project(flat_parameters(s.model).numpy()[None], land.centre, land.d1, land.d2)
        assert off[0] == pytest.approx(0.0, abs=1e-5)
    # two runs from different starts: A's start is the third point
    done2 = _done([subjects[0], subjects[2]], directions="endpoints")
    assert "A's start" in " ".join(done2.landscape.meta["notes"])


def test_pca_random_and_hessian_planes_draw_every_run(sine_runs):
    subjects = _subjects(sine_runs[:2])
    for directions in ("pca", "random", "hessian"):
        done = _done(subjects, directions=directions, colours=("#e6194b", "#3cb44b"))
        assert [p.name for p in done.paths] == ["sgd", "adam"]
        assert all(
            len(p.coords) == len(s.trajectory) for p, s in zip(done.paths, subjects, strict=True)
        )
        assert done.paths[0].end == pytest.approx([0.0, 0.0], abs=1e-5)  # centred on A
        assert np.isfinite(done.landscape.loss).all()
        assert done.landscape.meta["runs"][1]["colour"] == "#3cb44b"


def test_the_npz_keeps_each_path_the_names_and_the_end_points(sine_runs, tmp_path):
    done = _done(_subjects(sine_runs[:2]), directions="endpoints", colours=("#111111", "#222222"))
    done.landscape.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        assert z["path_0"].shape == (len(done.paths[0].coords), 2)
        assert z["path_1"].shape[1] == 2
        assert list(z["run_names"]) == ["sgd", "adam"]
        assert z["end_points"] == pytest.approx(np.array([p.end for p in done.paths]))
    back = Landscape.load(tmp_path / "m.npz")
    paths = mr.paths_of(back)
    assert [p.name for p in paths] == ["sgd", "adam"] and paths[1].colour == "#222222"
    assert paths[1].coords == pytest.approx(done.paths[1].coords)
    assert mr.barrier_of(back).height == pytest.approx(done.barrier.height)


# --- bad input --------------------------------------------------------------------------------


def test_runs_of_different_tasks_are_refused(sine_runs, tmp_path, save_run):
    lin = load_subject(None, str(save_run(tmp_path, "lin", task="linreg", epochs=3)))
    with pytest.raises(LandscapeError, match="different tasks or models"):
        list(mr.run_many([_subjects(sine_runs[:1])[0], lin], mr.MultiRequest(base=SMALL)))


def test_a_run_without_its_trajectory_is_its_end_point_and_says_so(sine_runs):
    a, b = _subjects(sine_runs[:2])
    b = dataclasses.replace(b, trajectory=None, steps=None)
    done = _done([a, b], directions="endpoints")
    assert len(done.paths[1].coords) == 1 and not done.paths[1].trajectory
    assert done.paths[1].coords[0] == pytest.approx(done.paths[1].end)
    assert any("adam: no recorded trajectory" in n for n in done.landscape.meta["notes"])


def test_endpoints_need_two_runs():
    with pytest.raises(LandscapeError, match="at least 2 runs"):
        mr.MultiRequest(base=SMALL, directions="endpoints").check([object()])
    with pytest.raises(LandscapeError, match="Invalid directions"):
        mr.MultiRequest(base=SMALL, directions="init-final").check([object(), object()])


# --- own models and the Hessian plane ---------------------------------------------------------


@pytest.mark.slow
def test_own_model_runs_share_a_plane(tmp_path, save_run):
    files = []
    for name, opt in (("sgd", OptimizerSpec("sgd", {"lr": 0.05, "momentum": 0.9})),
                      ("adam", OptimizerSpec("adam", {"lr": 0.01}))):  # fmt: skip
        files.append(
            save_run(
                tmp_path, name, task="experiment", model_file=str(MLP), epochs=1, optimizer=opt
            )
        )
    subjects = [load_model_subject(str(MLP), None, str(f)) for f in files]
    done = _done(subjects, directions="endpoints")
    assert done.barrier.height >= 0 and np.isfinite(done.barrier.loss).all()
    assert done.landscape.meta["model_file"] and len(done.paths) == 2


def test_the_hessian_plane_of_one_run_is_its_top_two_eigenvectors(sine_runs):
    s = _subjects(sine_runs[1:2])[0]
    events = list(lj.run(s, dataclasses.replace(SMALL, directions="hessian")))
    land = events[-1].landscape
    assert land.directions == "hessian"
    # the dense Hessian of the summed loss, column by column from Hessian-vector products
    m = s.model
    params = list(m.parameters())
    hvp = hvp_of(params, lambda: [s.loss_fn(m(s.x), s.y)])
    n = sum(p.numel() for p in params)
    dense = torch.stack([hvp(torch.eye(n, dtype=params[0].dtype)[i]) for i in range(n)])
    values, vectors = torch.linalg.eigh(dense.double())
    order = torch.argsort(values.abs(), descending=True)
    for d, k in zip((land.d1, land.d2), order[:2], strict=True):
        u = torch.as_tensor(d, dtype=torch.float64)
        cos = float((u / u.norm()) @ vectors[:, k])
        assert abs(cos) == pytest.approx(1.0, abs=1e-3)


def test_a_relative_checkpoint_is_found_next_to_the_run_file(tmp_path, monkeypatch):
    """`losslab train --checkpoint best.pt` records "best.pt": from another folder the run had
    lost its checkpoint (Train's "Open in Landscape" stayed greyed out)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "best.pt").write_bytes(b"x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert mr.find_checkpoint("best.pt", runs / "a.json") == runs / "best.pt"
    assert mr.find_checkpoint("runs/best.pt", runs / "a.json") == runs / "best.pt"
    assert mr.find_checkpoint("best.pt", None) is None
    assert mr.find_checkpoint("gone.pt", runs / "a.json") is None
    assert mr.find_checkpoint(str(runs / "best.pt"), None) == runs / "best.pt"
