"""Training the user's own model (an experiment file) with the real loop: the same events,
options, checkpoints, resume, divergence and trajectory as the built-in tasks."""

import dataclasses
import hashlib
import math
import re
import sys
import textwrap

import pytest
import torch

from core.optimizers import OptimizerSpec, SchedulerSpec
from core.train.checkpoints import load_checkpoint
from core.train.experiment import ExperimentError, load_experiment
from core.train.runs import RunRecord
from core.train.training import Epoch, Finished, Started, Step, TrainConfig, TrainControl, train
from core.train.weights import load_weights

# A tiny classifier with BatchNorm and dropout (train/eval differ), its own training batches
# reshuffled from torch's generator, and a probe module that logs how loss() is called.
BN_FILE = """
import torch
from torch import nn
import {probe} as probe

def model():
    return nn.Sequential(
        nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3)
    )

def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()

def batches():
    x, y = _data(48, 1)
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16)]

def train_batches():
    x, y = _data(64, 2)
    order = torch.randperm(64)
    return [(x[order[i : i + 16]], y[order[i : i + 16]]) for i in range(0, 64, 16)]
"""

OWN_LOSS_FILE = """
import torch
from torch import nn
import {probe} as probe

def model():
    return nn.Linear(2, 1)

def batches():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 2, generator=g)
    y = x @ torch.tensor([[2.0], [-1.0]]) + 0.5
    return [{{"x": x[i : i + 8], "y": y[i : i + 8]}} for i in range(0, 32, 8)]

def loss(model, batch):
    probe.calls.append((model.training, torch.is_grad_enabled()))
    return nn.functional.mse_loss(model(batch["x"]), batch["y"])
"""


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here trains: one thread (see conftest)."""


class Files:
    """Writes experiment files beside a probe module they can log into (``probe.calls``)."""

    def __init__(self, folder, probe):
        self.folder, self.probe = folder, probe

    def __call__(self, text, name="exp.py"):
        path = self.folder / name
        path.write_text(textwrap.dedent(text.format(probe=self.probe)))
        return path

    @property
    def calls(self):
        return sys.modules[self.probe].calls


@pytest.fixture
def make(tmp_path, request, monkeypatch):
    """``make(TEXT)`` writes an experiment file; ``make.calls`` is what its loss logged."""
    probe = "probe_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]
    (tmp_path / f"{probe}.py").write_text("calls = []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield Files(tmp_path, probe)
    sys.modules.pop(probe, None)


def run(config):
    events = list(train(config))
    rec = RunRecord.for_config(config)
    for e in events:
        rec.add(e)
    return events, rec


def config(path, **kw):
    kw.setdefault("epochs", 2)
    return TrainConfig(task="experiment", model_file=str(path), **kw)


def test_config_defaults_round_trip_and_refusals(make, tmp_path):
    path = make(BN_FILE)
    c = config(path, epochs=None).resolved()
    assert c.optimizer == OptimizerSpec("adam", {"lr": 1e-3}) and c.epochs == 5
    assert c.loss is None and c.batch_size is None and c.model_file == str(path.resolve())
    assert TrainConfig.from_dict(c.to_dict()) == c
    for bad, words in [
        (dict(batch_size=8), "batch size"),
        (dict(dataset="synthetic"), "data set"),
        (dict(dtype="float64"), "dtype"),
        (dict(form="numpy"), "tutorial form"),
    ]:
        with pytest.raises(ValueError, match=words):
            dataclasses.replace(c, **bad).resolved()
    with pytest.raises(ValueError, match="task 'experiment', not 'lenet'"):
        TrainConfig(task="lenet", model_file=str(path)).resolved()
    with pytest.raises(ValueError, match="needs model_file"):
        TrainConfig(task="experiment").resolved()


def test_best_checkpoint_val_loss_is_the_files_mean_loss_in_eval_mode(make, tmp_path):
    """The number the landscape's centre will be checked against."""
    path = make(BN_FILE)
    ckpt = tmp_path / "best.pt"
    events, rec = run(
        config(path, epochs=3, checkpoint=str(ckpt), optimizer=OptimizerSpec("adam", {"lr": 0.05}))
    )
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.status == "completed"
    payload = load_checkpoint(ckpt)
    exp = load_experiment(path)
    model = exp.build_model()
    assert load_weights(model, ckpt) == "LossLab checkpoint"
    centre = exp.mean_loss(model.eval(), exp.batches())
    assert centre == pytest.approx(payload["val_loss"], rel=1e-6, abs=1e-9)
    assert centre == pytest.approx(fin.best_val_loss, rel=1e-6, abs=1e-9)
    best = min(rec.epochs, key=lambda r: r["val_loss"])
    assert payload["epoch"] == fin.best_epoch == best["epoch"]
    # the file and its digest, in the checkpoint and the run record
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert payload["model_file"] == str(path.resolve()) and payload["model_digest"] == digest
    assert rec.started["model_digest"] == digest and rec.config["model_file"] == str(path.resolve())
    assert payload["task"] == "experiment" and rec.name == "exp"
    # accuracy, from the default cross-entropy on (inputs, targets)
    assert all(0 <= r["val_accuracy"] <= 1 for r in rec.epochs)


def test_training_is_train_mode_and_validation_eval_mode_without_gradients(make):
    path = make(OWN_LOSS_FILE)
    events, rec = run(config(path, epochs=2, optimizer=OptimizerSpec("sgd", {"lr": 0.1})))
    calls = make.calls
    # preflight (eval; one call with a gradient to see that the loss has one), then per epoch
    # 4 training calls (train mode, gradients) and 4 validation calls (eval, no gradients)
    per_epoch = [(True, True)] * 4 + [(False, False)] * 4
    assert calls[-(8 * 2 + 4) :] == per_epoch * 2 + [(False, False)] * 4  # + the final pass
    assert all(r["val_accuracy"] is None for r in rec.epochs)  # a loss of its own: no accuracy
    started = events[0]
    assert isinstance(started, Started) and started.steps_per_epoch == 4 and started.n_train == 32
    assert rec.epochs[-1]["val_loss"] < rec.epochs[0]["val_loss"]


def test_seed_sets_the_initial_weights_unless_the_file_seeds_itself(make, tmp_path):
    path = make(BN_FILE)

    def first_params(p, seed):
        c = config(p, epochs=1, seed=seed)
        for e in train(c):
            if isinstance(e, Finished):
                return e.snapshots[0]

    a, b, a2 = first_params(path, 1), first_params(path, 2), first_params(path, 1)
    assert (a == a2).all() and not (a == b).all()
    seeded = make(
        BN_FILE.replace("def model():\n", "def model():\n    torch.manual_seed(7)\n"), "s.py"
    )
    assert (first_params(seeded, 1) == first_params(seeded, 2)).all()
    torch.manual_seed(7)
    exp = load_experiment(seeded)
    assert (
        first_params(seeded, 3)[:64] == exp.build_model()[0].weight.detach().numpy().ravel()
    ).all()


def test_resume_continues_exactly_where_the_run_stopped(make, tmp_path):
    """2 epochs + resume to 3 == 3 epochs at once: weights, Adam's moments, BatchNorm's
    statistics and the per-epoch data order all come back."""
    path = make(BN_FILE)
    opt = OptimizerSpec("adam", {"lr": 0.01})
    sched = SchedulerSpec("step", {"step_size": 1, "gamma": 0.5})
    _, whole = run(config(path, epochs=3, optimizer=opt, scheduler=sched))
    ckpt = tmp_path / "two.pt"
    _, first = run(config(path, epochs=2, optimizer=opt, scheduler=sched, checkpoint=str(ckpt)))
    assert load_checkpoint(ckpt)["epoch"] == 2  # the premise: the last epoch was the best
    events, rest = run(config(path, epochs=3, optimizer=opt, scheduler=sched, resume=str(ckpt)))
    assert events[0].start_epoch == 3 and [r["epoch"] for r in rest.epochs] == [3]
    assert rest.epochs[0]["val_loss"] == pytest.approx(whole.epochs[2]["val_loss"], rel=1e-5)
    assert rest.steps["lr"][0] == pytest.approx(whole.steps["lr"][8])
    assert rest.steps["step"][0] == 9


def test_step_scheduler_clipping_and_trajectory(make):
    path = make(OWN_LOSS_FILE)
    c = config(
        path,
        epochs=2,
        optimizer=OptimizerSpec("sgd", {"lr": 1.0}),
        scheduler=SchedulerSpec("step", {"step_size": 1, "gamma": 0.5}),
        scheduler_interval="step",
        clip_norm=1e-3,
    )
    events, rec = run(c)
    lrs = rec.steps["lr"]
    assert lrs[:3] == [1.0, 0.5, 0.25]  # the scheduler steps per batch
    fin = events[-1]
    assert fin.snapshots.shape == (len(fin.snapshot_steps), 3)  # Linear(2, 1): 3 parameters
    assert list(fin.snapshot_steps[:3]) == [0, 1, 2]
    moved = torch.linalg.vector_norm(torch.from_numpy(fin.snapshots[1] - fin.snapshots[0]))
    assert float(moved) <= 1e-3 * 1.0001  # clipped to 1e-3, times lr 1
    assert all(g > 1e-3 for g in rec.steps["grad_norm"][:2])  # the norm before clipping


def test_lbfgs_and_a_plateau_scheduler_train(make):
    path = make(OWN_LOSS_FILE)
    c = config(
        path,
        epochs=2,
        optimizer=OptimizerSpec("lbfgs", {"lr": 1.0}),
        scheduler=SchedulerSpec("plateau", {}),
    )
    events, rec = run(c)
    assert events[-1].status == "completed"
    assert rec.epochs[-1]["val_loss"] < 0.5 * rec.epochs[0]["val_loss"]


def test_a_diverging_run_stops_with_advice(make):
    path = make(OWN_LOSS_FILE)
    events, _ = run(config(path, epochs=5, optimizer=OptimizerSpec("sgd", {"lr": 50.0})))
    fin = events[-1]
    assert fin.status == "diverged" and "lower the learning rate" in fin.message
    assert fin.final["val_loss"] is None


def test_stop_ends_the_run(make):
    path = make(BN_FILE)
    control = TrainControl()
    seen = []
    for e in train(config(path, epochs=50), control):
        seen.append(e)
        if isinstance(e, Step) and e.step == 3:
            control.stop()
    assert seen[-1].status == "stopped" and not any(isinstance(e, Epoch) for e in seen)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("return nn.functional.mse_loss", "return 0 * math.nan + nn.functional.mse_loss"),
         "loss at the initial weights is nan"),
        (("return nn.functional.mse_loss(model(batch[\"x\"]), batch[\"y\"])",
          "return (model(batch[\"x\"]) - batch[\"y\"]) ** 2"), "shape (8, 1); it must be a scalar"),
        (("return nn.functional.mse_loss(model(batch[\"x\"]), batch[\"y\"])",
          "return torch.tensor(1.0)"), "does not depend on the model's parameters"),
    ],
)  # fmt: skip
def test_a_bad_loss_is_found_before_the_first_event(make, change, words):
    path = make(("import math\n" + OWN_LOSS_FILE).replace(*change))
    gen = train(config(path))
    with pytest.raises(ExperimentError, match=re.escape(words)):
        next(gen)


def test_training_batches_that_loss_cannot_take_are_found_before_the_first_event(make):
    text = BN_FILE + "\ndef train_batches():\n    return [[1, 2, 3]]\n"
    with pytest.raises(ExperimentError, match="not \\(inputs, targets\\)"):
        next(train(config(make(text))))


def test_accuracy_is_none_for_probability_targets(make):
    text = BN_FILE.replace(
        "return x, (x[:, 0] > 0).long()", "return x, torch.softmax(x[:, :3], 1) #"
    )
    events, rec = run(config(make(text), epochs=1))
    assert rec.epochs[0]["val_accuracy"] is None and math.isfinite(rec.epochs[0]["val_loss"])


def test_evaluate_is_the_mean_loss_and_the_accuracy_by_hand(make):
    exp = load_experiment(make(BN_FILE))
    model = exp.build_model().eval()
    batches = exp.batches()
    loss, acc = exp.evaluate(model, batches)
    with torch.no_grad():
        by_hand = [float(torch.nn.functional.cross_entropy(model(x), y)) for x, y in batches]
        hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches)
    assert loss == exp.mean_loss(model, batches) == sum(by_hand) / len(by_hand)
    assert acc == hits / sum(len(y) for _, y in batches)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("defaults = 3", "defaults is a int, not a dict"),
        ("defaults = {'epochs': 0}", "epochs must be a whole number >= 1"),
        ("defaults = {'optimizer': 'adamm'}", "Unknown optimizer"),
        ("defaults = {'lr': -1}", "Invalid"),
    ],
)
def test_bad_defaults_are_named(make, text, words):
    exp = load_experiment(make(BN_FILE + "\n" + text.replace("{", "{{").replace("}", "}}") + "\n"))
    with pytest.raises(ExperimentError, match=words):
        exp.defaults()


def test_defaults_fill_the_optimizer_and_epochs(make):
    text = BN_FILE + "\ndefaults = {{'lr': 0.05, 'epochs': 3}}\n"
    d = load_experiment(make(text)).defaults()
    assert d.optimizer == OptimizerSpec("adam", {"lr": 0.05}) and d.epochs == 3
