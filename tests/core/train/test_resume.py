"""Resuming from a checkpoint: the weights and optimizer state come from the file, the
hyperparameters from the config (what the user set explicitly wins)."""

import pytest
import torch

from core.optimizers import OptimizerSpec, SchedulerSpec
from core.train.training import Started, Step, TrainConfig, train


def lrs(config):
    events = list(train(config))
    return events[0], [e.lr for e in events if isinstance(e, Step)]


def test_a_new_learning_rate_is_used_after_resuming(tmp_path):
    ckpt = str(tmp_path / "c.pt")
    list(train(TrainConfig(task="linreg", epochs=5, checkpoint=ckpt)))
    spec = OptimizerSpec("sgd", {"lr": 0.05})
    started, used = lrs(TrainConfig(task="linreg", epochs=8, resume=ckpt, optimizer=spec))
    assert used == [0.05, 0.05, 0.05]  # steps 6..8; the saved param_groups said 0.01
    assert isinstance(started, Started) and started.start_epoch == 6
    assert started.hyper["lr"] == 0.05 and started.hyper["momentum"] == 0.0


def test_other_hyperparameters_follow_the_config_and_the_state_is_kept(tmp_path):
    ckpt = str(tmp_path / "c.pt")
    first = OptimizerSpec("adam", {"lr": 0.01, "beta1": 0.8})
    list(train(TrainConfig(task="linreg_noisy", epochs=2, optimizer=first, checkpoint=ckpt)))
    then = OptimizerSpec("adam", {"lr": 0.002, "beta1": 0.95, "weight_decay": 0.1})
    started, used = lrs(TrainConfig(task="linreg_noisy", epochs=3, optimizer=then, resume=ckpt))
    assert started.hyper["beta1"] == 0.95 and started.hyper["weight_decay"] == 0.1
    assert set(used) == {0.002}


def test_resuming_with_the_same_config_matches_a_straight_run_with_a_schedule(tmp_path):
    ckpt = str(tmp_path / "c.pt")
    base = dict(
        task="linreg_noisy",
        batch_size=50,
        scheduler=SchedulerSpec("step", {"step_size": 1, "gamma": 0.5}),
    )
    _, straight = lrs(TrainConfig(**base, epochs=4))
    list(train(TrainConfig(**base, epochs=2, checkpoint=ckpt)))
    _, resumed = lrs(TrainConfig(**base, epochs=4, resume=ckpt))
    assert resumed == pytest.approx(straight[8:])


def test_a_new_lr_under_a_schedule_continues_the_schedule_from_the_new_lr(tmp_path):
    ckpt = str(tmp_path / "c.pt")
    sched = SchedulerSpec("step", {"step_size": 1, "gamma": 0.5})
    base = dict(task="linreg_noisy", batch_size=50, scheduler=sched)
    list(train(TrainConfig(**base, epochs=2, checkpoint=ckpt)))  # lr 0.01, halved twice
    new = OptimizerSpec("sgd", {"lr": 0.04})
    started, used = lrs(TrainConfig(**base, epochs=4, optimizer=new, resume=ckpt))
    # the config's schedule at epoch 3: 0.04 halved twice, then once more at epoch 4
    assert used == pytest.approx([0.01] * 4 + [0.005] * 4)
    assert started.hyper["lr"] == pytest.approx(0.01)


def test_a_per_step_onecycle_is_the_new_configs_schedule_after_resuming(tmp_path):
    ckpt = str(tmp_path / "c.pt")
    base = dict(task="linreg_noisy", batch_size=50, scheduler_interval="step")
    old = SchedulerSpec("onecycle", {"max_lr": 0.02})
    list(train(TrainConfig(**base, epochs=2, scheduler=old, checkpoint=ckpt)))
    new = SchedulerSpec("onecycle", {"max_lr": 0.05})
    _, straight = lrs(TrainConfig(**base, epochs=4, scheduler=new))
    _, resumed = lrs(TrainConfig(**base, epochs=4, scheduler=new, resume=ckpt))
    assert resumed == pytest.approx(straight[8:])


def test_plateau_keeps_its_reductions_and_scales_them_to_the_new_lr(tmp_path):
    ckpt = str(tmp_path / "c.pt")
    # mode max, patience 0, a falling val loss: no epoch after the first counts as better, so
    # each one halves the lr from the next epoch on
    plateau = SchedulerSpec("plateau", {"mode": "max", "patience": 0, "factor": 0.5})
    base = dict(task="linreg_noisy", batch_size=50, scheduler=plateau)
    _, first = lrs(TrainConfig(**base, epochs=3, checkpoint=ckpt))
    assert first == pytest.approx([0.01] * 8 + [0.005] * 4)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 3  # the val loss kept falling
    new = OptimizerSpec("sgd", {"lr": 0.1})
    started, used = lrs(TrainConfig(**base, epochs=4, optimizer=new, resume=ckpt))
    # halved after epochs 2 and 3 (saved with the checkpoint): 0.1 / 4, not the old 0.0025
    assert used == pytest.approx([0.025] * 4)
    assert started.hyper["lr"] == pytest.approx(0.025)
