import dataclasses
import math
import os
import threading

import numpy as np
import pytest
import torch

from core.optimizers import OptimizerSpec, SchedulerSpec
from core.train import data
from core.train.losses import LossSpec
from core.train.runs import RunFileError, RunRecord
from core.train.training import (
    EXPLODE_FACTOR,
    Checkpoint,
    CheckpointError,
    Divergence,
    Epoch,
    Finished,
    Started,
    Step,
    TrainConfig,
    TrainControl,
    check_divergence,
    load_checkpoint,
    train,
)

SHARED = os.environ.get(data.ENV_VAR)


def losses(config, control=None):
    return [e.loss for e in train(config, control) if isinstance(e, Step)]


def test_event_sequence_and_contents():
    events = list(train(TrainConfig(task="linreg_noisy", epochs=3, batch_size=50)))
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
    steps = [e for e in events if isinstance(e, Step)]
    epochs = [e for e in events if isinstance(e, Epoch)]
    assert len(steps) == 3 * 4 and len(epochs) == 3
    assert [s.step for s in steps] == list(range(1, 13))
    assert steps[3].seen == 200 and steps[3].total == 200
    assert all(s.grad_norm > 0 and s.lr == 0.01 for s in steps)
    assert epochs[-1].train_loss == pytest.approx(np.mean([s.loss for s in steps[-4:]]))
    assert events[0].n_params == 2


def test_same_seed_same_losses_and_other_seed_differs():
    # seeds 1 and 0: the synthetic digits of each are drawn once (~1 s) and kept for others
    cfg = TrainConfig(task="lenet", dataset="synthetic", limit=256, epochs=1, batch_size=32, seed=1)
    a, b = losses(cfg), losses(cfg)
    assert a == b
    assert losses(TrainConfig(**{**cfg.__dict__, "seed": 0})) != a


def test_stop_takes_effect_within_one_step():
    control = TrainControl()
    gen = train(TrainConfig(task="sine", epochs=1000), control)
    seen = 0
    for e in gen:
        if isinstance(e, Step):
            seen += 1
            if seen == 5:
                control.stop()
        if isinstance(e, Finished):
            final = e
    assert seen == 5
    assert final.status == "stopped"


def test_pause_blocks_and_resume_continues():
    control = TrainControl()
    gen = train(TrainConfig(task="linreg", epochs=50), control)
    steps = []
    first_step = threading.Event()
    resumed = threading.Event()

    def consume():
        for e in gen:
            if isinstance(e, Step):
                steps.append(e.step)
                if e.step == 3:
                    control.pause()
                    first_step.set()

    t = threading.Thread(target=consume)
    t.start()
    assert first_step.wait(10)
    # paused: no progress while we wait (unpaused, 0.2 s would be ~200 linreg steps)
    t.join(0.2)
    assert t.is_alive() and steps == [1, 2, 3]
    control.resume()
    resumed.set()
    t.join(30)
    assert not t.is_alive() and steps == list(range(1, 51))


def test_best_checkpoint_is_a_copy_of_the_best_weights(tmp_path):
    path = tmp_path / "best.pt"
    # lr high enough that validation loss gets worse again after improving
    cfg = TrainConfig(
        task="linreg_noisy",
        epochs=8,
        batch_size=10,
        checkpoint=str(path),
        optimizer=OptimizerSpec("sgd", {"lr": 0.045}),
    )
    events = list(train(cfg))
    epochs = [e for e in events if isinstance(e, Epoch)]
    saved = [e for e in events if isinstance(e, Checkpoint)]
    best = min(epochs, key=lambda e: e.val_loss)
    assert saved[-1].epoch == best.epoch
    payload = load_checkpoint(path)  # weights_only=True inside
    assert payload["epoch"] == best.epoch
    assert payload["val_loss"] == pytest.approx(best.val_loss)
    w = payload["model"]["weight"].item()
    assert w == pytest.approx(best.details["w"])  # the best epoch's weights, not the last
    assert not list(tmp_path.glob("*.tmp"))
    assert events[-1].best_epoch == best.epoch


def test_resume_continues_where_the_checkpoint_left_off(tmp_path):
    path = tmp_path / "ckpt.pt"
    full = TrainConfig(task="linreg_noisy", epochs=4, batch_size=50, seed=2)
    straight = losses(full)
    first = TrainConfig(**{**full.__dict__, "epochs": 2, "checkpoint": str(path)})
    list(train(first))
    payload = load_checkpoint(path)
    assert payload["epoch"] == 2
    resumed = TrainConfig(**{**full.__dict__, "resume": str(path)})
    events = list(train(resumed))
    assert events[0].start_epoch == 3
    rest = [e.loss for e in events if isinstance(e, Step)]
    np.testing.assert_allclose(rest, straight[8:], rtol=1e-6)


def test_bad_checkpoints_are_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(bad)
    # a pickled object (code could run on unpickling) is refused without advising to allow it
    torch.save({"format": 1, "f": threading.Thread}, tmp_path / "code.pt")
    with pytest.raises(CheckpointError, match="not a readable") as info:
        load_checkpoint(tmp_path / "code.pt")
    assert "weights_only" not in str(info.value) and "never runs code" in str(info.value)
    torch.save({"hello": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a LossLab checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        list(train(TrainConfig(task="linreg", resume=str(tmp_path / "none.pt"))))


def test_snapshots_are_bounded_and_cover_the_run():
    final = list(train(TrainConfig(task="linreg", epochs=300, snapshots=10)))[-1]
    assert final.snapshots.shape[1] == 2
    assert len(final.snapshots) <= 20  # at most twice the asked number, for 30x the steps
    assert final.snapshot_steps[0] == 0 and final.snapshot_steps[-1] == 300


def test_divergence_is_reported_not_raised_and_stops_the_run():
    cfg = TrainConfig(task="sine", optimizer=OptimizerSpec("sgd", {"lr": 1.0}), epochs=200)
    events = list(train(cfg))
    final = events[-1]
    d = final.divergence
    assert final.status == "diverged" and isinstance(d, Divergence)
    assert d.step == final.steps and d.epoch == d.step  # full batch: one step per epoch
    steps = [e for e in events if isinstance(e, Step)]
    assert len(steps) == d.step - 1  # nothing ran after the step that gave it away
    assert all(np.isfinite(s.loss) for s in steps)
    assert f"at step {d.step}" in d.reason
    assert d.advice.startswith("lower the learning rate to 0.1 (10x smaller)")
    assert "--" not in d.reason + d.advice  # plain words: the GUI shows them too
    assert d.reason in final.message and d.advice in final.message


def test_lenet_at_lr_50_is_named_diverged_not_completed():
    cfg = TrainConfig(
        task="lenet",
        dataset="synthetic",
        limit=256,
        epochs=3,
        optimizer=OptimizerSpec("sgd", {"lr": 50.0}),
    )
    final = list(train(cfg))[-1]
    assert final.status == "diverged" and final.divergence.epoch == 1
    assert final.final["val_accuracy"] is None  # no "completed" accuracy of a broken model


def test_divergence_rule():
    c = TrainConfig(task="linreg").resolved()
    nan = check_divergence(float("nan"), 2.0, 7, 1, c, 0.5)
    assert nan.reason == "loss became NaN at step 7" and nan.step == 7
    assert "inf" in check_divergence(float("inf"), 2.0, 3, 1, c, 0.5).reason
    boom = check_divergence(2.0 * EXPLODE_FACTOR + 1, 2.0, 40, 2, c, 0.5)
    assert boom.reason.startswith("loss exploded to 2e+06 (1e+06x its start) at step 40")
    assert check_divergence(2.0 * EXPLODE_FACTOR, 2.0, 40, 2, c, 0.5) is None
    # a near-zero start (a converged fit resumed) does not turn a blip into a divergence
    assert check_divergence(1e3, 1e-9, 5, 1, c, 0.5) is None
    assert check_divergence(-5.0, -3.0, 5, 1, c, 0.5) is None  # losses can be negative
    assert "use Adam" in boom.advice and "gradient clipping" in boom.advice
    adam = TrainConfig(task="linreg", optimizer=OptimizerSpec("adam"), clip_norm=1.0).resolved()
    advice = check_divergence(math.nan, 1.0, 1, 1, adam, 0.5).advice
    assert "use Adam" not in advice and "clip gradients harder (below 1)" in advice


def test_exploding_loss_stops_before_it_overflows():
    cfg = TrainConfig(task="linreg", optimizer=OptimizerSpec("sgd", {"lr": 2.0}), epochs=500)
    events = list(train(cfg))
    final = events[-1]
    assert final.status == "diverged" and "exploded" in final.divergence.reason
    losses = [e.loss for e in events if isinstance(e, Step)]
    assert max(losses) <= EXPLODE_FACTOR * max(losses[0], 1.0) and len(losses) < 100


def test_the_tutorial_form_diverges_too():
    cfg = TrainConfig(
        task="sine", form="numpy", optimizer=OptimizerSpec("sgd", {"lr": 1e-3}),
        loss=LossSpec("mse", "sum"), epochs=500,
    )  # fmt: skip
    final = list(train(cfg))[-1]
    assert final.status == "diverged" and final.divergence is not None


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"task": "sine", "loss": None, "optimizer": OptimizerSpec("adam", {"lr": 1e3})}, "lr"),
        ({"task": "nope"}, "Unknown task"),
        ({"task": "sine", "epochs": 0}, "Invalid epochs"),
        ({"task": "sine", "device": "tpu"}, "Invalid device"),
        ({"task": "lenet", "form": "numpy"}, "only for the sine fit"),
        ({"task": "sine", "form": "numpy"}, "plain gradient descent"),
        ({"task": "sine", "clip_norm": -1.0}, "clip_norm"),
        ({"task": "lenet", "dataset": "cifar"}, "Invalid dataset"),
        ({"task": "linreg", "optimizer": OptimizerSpec("sgd", {"nesterov": True})}, "Nesterov"),
    ],
)
def test_bad_configs_are_refused_before_training(kw, message):
    with pytest.raises(ValueError, match=message):
        list(train(TrainConfig(**kw)))


def test_schedulers_per_step_and_on_plateau():
    cfg = TrainConfig(
        task="linreg_noisy",
        epochs=2,
        batch_size=50,
        scheduler=SchedulerSpec("step", {"step_size": 2, "gamma": 0.5}),
        scheduler_interval="step",
    )
    lrs = [e.lr for e in train(cfg) if isinstance(e, Step)]
    assert lrs[:4] == pytest.approx([0.01, 0.01, 0.005, 0.005])
    plateau = TrainConfig(task="linreg", epochs=5, scheduler=SchedulerSpec("plateau"))
    assert list(train(plateau))[-1].status == "completed"


def test_run_record_round_trip(tmp_path):
    cfg = TrainConfig(task="lenet", dataset="synthetic", limit=128, epochs=2, batch_size=64)
    rec = RunRecord.for_config(cfg, "demo")
    for e in train(cfg):
        rec.add(e)
    path = rec.save(tmp_path / "run.json")
    back = RunRecord.load(path)
    assert back.steps["loss"] == pytest.approx(rec.steps["loss"])
    assert back.epochs[-1]["val_accuracy"] == pytest.approx(rec.epochs[-1]["val_accuracy"])
    assert len(back.epochs[-1]["confusion"]) == 10
    np.testing.assert_array_equal(back.snapshots, rec.snapshots)
    assert back.started["dataset"] == "synthetic digits (not MNIST)"
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(RunFileError, match="not a readable JSON"):
        RunRecord.load(tmp_path / "junk.json")
    (tmp_path / "other.json").write_text('{"format": "something-else"}')
    with pytest.raises(RunFileError, match="not a LossLab run"):
        RunRecord.load(tmp_path / "other.json")


def test_lenet_reaches_93_percent_in_one_epoch():
    """On the shared MNIST test set (8,000 train / 2,000 validation) when it is there.

    Adam 2e-3 with a one-cycle schedule, 250 steps of 32: 94.7-95.8% after one epoch over seeds
    0-7 here (97.7-97.9% after three); at lr 1e-8 it stays at 9.8%. Without the
    data the test trains on the offline synthetic digits instead, and says so by skipping with
    the figure it reached: it never passes silently on the wrong data.
    """
    cfg = TrainConfig(
        task="lenet",
        epochs=1,
        batch_size=32,
        optimizer=OptimizerSpec("adam", {"lr": 2e-3}),
        scheduler=SchedulerSpec("onecycle", {"max_lr": 2e-3, "total_steps": 250}),
        scheduler_interval="step",
        data_dir=SHARED,
        dataset="mnist" if SHARED else "synthetic",
    )
    events = list(train(cfg))
    start = events[0]
    accs = [e.val_accuracy for e in events if isinstance(e, Epoch)]
    if not SHARED:
        pytest.skip(
            f"no MNIST (${data.ENV_VAR} unset): synthetic digits reached "
            f"{100 * max(accs):.1f}% instead; the 93% check needs the real data"
        )
    assert start.dataset == "MNIST" and "8,000" in start.source
    assert start.steps_per_epoch == 250
    assert max(accs) >= 0.93, accs


def test_started_carries_what_the_live_views_draw():
    lenet = next(iter(train(TrainConfig(task="lenet", dataset="synthetic", limit=256, epochs=1))))
    assert lenet.preview["images"].shape == (32, 28, 28)
    assert lenet.preview["images"].dtype == np.uint8 and lenet.preview["images"].max() > 100
    assert lenet.preview["labels"].shape == (32,)
    events = list(train(TrainConfig(task="lenet", dataset="synthetic", limit=256, epochs=1)))
    epoch = next(e for e in events if isinstance(e, Epoch))
    assert epoch.details["samples"].shape == (32,)  # predictions for those images
    line = next(iter(train(TrainConfig(task="linreg_noisy", epochs=1))))
    assert line.preview["x"].shape == (200,) and line.preview["y"].shape == (200,)
    assert next(iter(train(TrainConfig(task="sine", epochs=1)))).preview == {}


def test_onecycle_takes_the_runs_length_unless_told():
    cfg = TrainConfig(
        task="linreg_noisy",
        epochs=3,
        batch_size=50,
        scheduler=SchedulerSpec("onecycle", {"max_lr": 0.05}),
        scheduler_interval="step",
    )
    lrs = [e.lr for e in train(cfg) if isinstance(e, Step)]
    assert len(lrs) == 12 and max(lrs) == pytest.approx(0.05, rel=0.05)
    assert lrs[-1] < 1e-4  # annealed to the end exactly when the run ends
    per_epoch = TrainConfig(task="linreg", epochs=4, scheduler=SchedulerSpec("onecycle"))
    assert list(train(per_epoch))[-1].status == "completed"


def test_models_seeded_from_several_threads_at_once_are_identical():
    from core.train.tasks import seeded_model

    out = [None] * 8

    def make(i):
        out[i] = torch.cat([p.detach().flatten() for p in seeded_model("lenet", 3).parameters()])

    threads = [threading.Thread(target=make, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for theta in out[1:]:
        assert torch.equal(theta, out[0])


def test_checkpoint_writes_are_throttled_but_the_best_is_on_disk(tmp_path, monkeypatch):
    import core.train.training as training

    monkeypatch.setattr(training, "CHECKPOINT_EVERY_S", 3600.0)
    path = tmp_path / "best.pt"
    events = list(train(TrainConfig(task="sine", epochs=50, checkpoint=str(path))))
    written = [e for e in events if isinstance(e, Checkpoint)]
    # the first improvement is written at once, the rest wait for the end: 2 writes, not 50
    assert [c.epoch for c in written] == [1, 50]
    ck = load_checkpoint(path)
    assert ck["epoch"] == 50
    fin = events[-1]
    np.testing.assert_allclose(
        torch.cat([v.flatten() for v in ck["model"].values()]).numpy(),
        fin.snapshots[-1],
        rtol=1e-6,
    )


def test_several_runs_in_one_file(tmp_path):
    from core.train.runs import load_runs, save_runs

    recs = []
    for lr in (0.01, 0.02):
        cfg = TrainConfig(task="linreg", epochs=5, optimizer=OptimizerSpec("sgd", {"lr": lr}))
        rec = RunRecord.for_config(cfg, f"lr {lr}")
        for e in train(cfg):
            rec.add(e)
        recs.append(rec)
    save_runs(recs, tmp_path / "runs.json")
    back = load_runs(tmp_path / "runs.json")
    assert [r.name for r in back] == ["lr 0.01", "lr 0.02"]
    assert back[1].steps["loss"] == pytest.approx(recs[1].steps["loss"])
    recs[0].save(tmp_path / "one.json")
    assert [r.name for r in load_runs(tmp_path / "one.json")] == ["lr 0.01"]
    (tmp_path / "bad.json").write_text('{"format": "losslab-runs-1", "runs": [{"config": 3}]}')
    with pytest.raises(RunFileError, match="run 1: malformed run"):
        load_runs(tmp_path / "bad.json")


def test_a_diverged_run_record_round_trips_and_old_files_load(tmp_path):
    cfg = TrainConfig(task="linreg", optimizer=OptimizerSpec("sgd", {"lr": 5.0}), epochs=100)
    rec = RunRecord.for_config(cfg)
    for e in train(cfg):
        rec.add(e)
    rec.save(tmp_path / "run.json")
    raw = __import__("json").loads((tmp_path / "run.json").read_text())
    d = raw["finished"]["divergence"]
    assert (
        set(d) == {"step", "epoch", "reason", "advice"} and raw["finished"]["status"] == "diverged"
    )
    back = RunRecord.load(tmp_path / "run.json")
    assert back.divergence == rec.divergence and isinstance(back.divergence, Divergence)
    # a file written before "status" and "divergence" existed
    del raw["finished"]["divergence"]
    raw["finished"]["reason"] = raw["finished"].pop("status")
    (tmp_path / "old.json").write_text(__import__("json").dumps(raw))
    old = RunRecord.load(tmp_path / "old.json")
    assert old.finished["status"] == "diverged" and old.divergence is None


def test_the_config_is_resolved_once(monkeypatch):
    import core.train.config as config_mod

    calls = []
    real = config_mod.get_task
    monkeypatch.setattr(config_mod, "get_task", lambda key: calls.append(key) or real(key))
    c = TrainConfig(task="linreg", epochs=2).resolved()
    assert calls == ["linreg"] and c.is_resolved and not TrainConfig(task="linreg").is_resolved
    assert c.resolved() is c
    rec = RunRecord.for_config(c)
    for e in train(c):
        rec.add(e)
    assert calls == ["linreg"]  # neither the record nor the loop resolved it again
    # the same behaviour as before: an equal, unmarked copy resolves to the same config ...
    assert c == TrainConfig(**{f.name: getattr(c, f.name) for f in dataclasses.fields(c)})
    assert "_resolved" not in c.to_dict()
    # ... and a changed copy is checked again
    with pytest.raises(ValueError, match="Invalid epochs"):
        dataclasses.replace(c, epochs=0).resolved()


def test_lenet_on_synthetic_digits_is_labelled_so():
    started = next(iter(train(TrainConfig(task="lenet", dataset="synthetic", limit=64))))
    assert started.label == "LeNet-5 on synthetic digits (not MNIST)"


def test_a_run_whose_trajectory_is_gone_still_opens_and_says_why(tmp_path):
    """A deleted .trajectory.npz used to make the whole run unreadable; now the run opens as
    its end point alone (the Landscape says so) and the reason is kept."""
    from core.train.runs import RunRecord

    rec = RunRecord.for_config(TrainConfig(task="linreg", epochs=2), name="r")
    for event in train(TrainConfig(task="linreg", epochs=2)):
        rec.add(event)
    out = tmp_path / "r.json"
    rec.save(out)
    back = RunRecord.load(out)
    assert back.snapshots is not None and back.trajectory_problem == ""
    for f in tmp_path.glob("*.npz"):
        f.unlink()
    gone = RunRecord.load(out)
    assert gone.snapshots is None and gone.epochs == back.epochs
    assert "cannot read the trajectory" in gone.trajectory_problem
