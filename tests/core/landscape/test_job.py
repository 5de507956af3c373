"""A landscape of a trained run: its value at the checkpoint is the run's validation loss; the
samples it is evaluated on; the speed and time left of a grid."""

import math

import numpy as np
import pytest
import torch

from core.landscape import job as lj
from core.landscape.directions import LandscapeError
from core.landscape.progress import GridClock, duration
from core.landscape.sampling import AUTO_SAMPLES, evaluation_set, sample_count
from core.train.checkpoints import load_checkpoint
from core.train.losses import LossSpec, build_loss
from core.train.runs import RunRecord
from core.train.training import TrainConfig, train


def _train(folder, **config) -> tuple[str, str]:
    cfg = TrainConfig(checkpoint=str(folder / "best.pt"), **config)
    rec = RunRecord.for_config(cfg, config["task"])
    for e in train(cfg):
        rec.add(e)
    rec.save(folder / "run.json")
    return str(folder / "run.json"), str(folder / "best.pt")


@pytest.fixture(scope="module")
def sine_run(tmp_path_factory):
    """The sine fit as the tutorial has it (summed MSE over 2,000 points), briefly."""
    return _train(tmp_path_factory.mktemp("sine"), task="sine", epochs=40)


@pytest.fixture(scope="module")
def linreg_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("linreg"), task="linreg", epochs=30)


def _landscape(run_file=None, checkpoint=None, **request) -> lj.Done:
    subject = lj.load_subject(checkpoint, run_file)
    request = {"eigenvalues": 0, "line_points": 3, **request}
    done = [e for e in lj.run(subject, lj.Request(**request)) if isinstance(e, lj.Done)]
    return done[0].landscape


def _recorded_val_loss(run_file, checkpoint) -> float:
    """The validation loss Train recorded for the checkpoint, in the run and in the file."""
    rec = RunRecord.load(run_file)
    from_record = rec.checkpoints[-1]["val_loss"]
    assert load_checkpoint(checkpoint)["val_loss"] == pytest.approx(from_record, rel=1e-12)
    return from_record


@pytest.mark.parametrize("which", ["sine", "linreg", "lenet"])
def test_the_checkpoints_value_is_the_runs_validation_loss(
    which, sine_run, linreg_run, trained_run
):
    run_file, checkpoint = {
        "sine": sine_run,
        "linreg": linreg_run,
        "lenet": (str(trained_run.record), str(trained_run.checkpoint)),
    }[which]
    expected = _recorded_val_loss(run_file, checkpoint)
    land = _landscape(run_file, directions="pca", resolution=5)
    # every validation sample Train used (LeNet's run keeps 64 of its synthetic digits)
    assert land.n_eval == land.meta["n_total"]
    assert land.meta["centre_loss"] == pytest.approx(expected, rel=1e-5)
    assert land.loss[2, 2] == pytest.approx(expected, rel=1e-5)  # the grid's middle point
    assert land.meta["checkpoint_val_loss"] == pytest.approx(expected, rel=1e-12)


def test_the_sine_fit_is_judged_on_all_its_points_with_its_summed_loss(sine_run):
    land = _landscape(sine_run[0], resolution=3)
    assert land.n_eval == 2000 and land.meta["sum_scale"] == 1.0


def test_a_sampled_summed_loss_is_scaled_to_the_whole_set(sine_run):
    expected = _recorded_val_loss(*sine_run)
    land = _landscape(sine_run[0], resolution=3, samples=1000)
    assert land.n_eval == 1000 and land.meta["sum_scale"] == 2.0
    # an estimate of the whole set's sum (not half of it), from evenly spread points
    assert land.meta["centre_loss"] == pytest.approx(expected, rel=0.02)


def test_how_many_samples_are_evaluated():
    assert sample_count(2000, 3, 0) == 2000  # the sine fit: whole
    assert sample_count(3, 1, 0) == 3  # linear regression
    assert sample_count(1000, 784, 0) == 1000  # synthetic digits: whole
    assert sample_count(2000, 784, 0) == AUTO_SAMPLES  # MNIST: sampled
    assert sample_count(10_000, 784, 0) == AUTO_SAMPLES
    assert sample_count(10_000, 784, 40) == 40
    assert sample_count(30, 784, 500) == 30  # never more than there are
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="Invalid samples"):
            sample_count(10, 1, bad)


def test_samples_are_evenly_spread_and_a_mean_is_not_scaled():
    x = torch.arange(100.0).reshape(100, 1)
    data = evaluation_set(x, x, build_loss(LossSpec("mse")), 5)
    assert data.x.ravel().tolist() == [0.0, 25.0, 50.0, 74.0, 99.0]  # rounded linspace
    assert data.scale == 1.0 and not data.whole and data.total == 100


def test_requests_reject_bad_samples(trained_run):
    subject = lj.load_subject(str(trained_run.checkpoint))
    for bad in (-1, 100_001, True):
        with pytest.raises(LandscapeError, match="Invalid samples"):
            lj.Request(samples=bad).check(subject)
    lj.Request(samples=0).check(subject)


def test_the_grid_clock_gives_points_per_second_and_time_left():
    now = [0.0]
    clock = GridClock(100, clock=lambda: now[0])
    assert clock.tick(0).text() == ""  # nothing known yet
    now[0] = 2.0
    eta = clock.tick(20)
    assert eta.rate == pytest.approx(10.0) and eta.left == pytest.approx(8.0)
    assert eta.text() == "10 points/s, about 8 s left"
    now[0] = 10.0
    assert clock.tick(100).text() == "10 points/s"  # done: no time left to announce
    assert [duration(s) for s in (0.2, 8, 125, 3780)] == [
        "< 1 s",
        "8 s",
        "2 min 05 s",
        "1 h 03 min",
    ]
    assert duration(math.nan) == "?"
    with pytest.raises(ValueError):
        GridClock(0)


def test_an_even_grid_still_reports_the_checkpoints_own_value(trained_run):
    land = _landscape(checkpoint=str(trained_run.checkpoint), resolution=4)
    assert 0.0 not in land.alphas
    expected = _recorded_val_loss(str(trained_run.record), str(trained_run.checkpoint))
    assert land.meta["centre_loss"] == pytest.approx(expected, rel=1e-5)
    assert np.isfinite(land.loss).all()
