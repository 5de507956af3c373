"""Sharpness tracked during training: the estimate against the dense Hessian, the stability
limits against what torch.optim really does, the loop's events and record, and a loss that
cannot be differentiated twice."""

import math
import textwrap

import pytest
import torch

from core.optimizers import OptimizerSpec, build_optimizer
from core.train.sharpness import SharpnessTracker, stability_limit
from core.train.training import Finished, Sharpness, Step, TrainConfig, train

# linreg: x = [1, 2, 3], mean squared error; the Hessian is 2/3 [[14, 6], [6, 3]]
LINREG_LAMBDA = (17 + math.sqrt(17**2 - 4 * 6)) / 2 * 2 / 3


def _events(config):
    return list(train(config))


def test_the_limits_are_the_known_ones():
    assert stability_limit(OptimizerSpec("sgd", {"lr": 0.1})).at(0.1) == pytest.approx(20)
    m = stability_limit(OptimizerSpec("momentum", {"lr": 0.01, "momentum": 0.9}))
    assert m.at(0.01) == pytest.approx(380) and "2(1+β)/lr" in m.label and "0.9" in m.label
    n = stability_limit(OptimizerSpec("nesterov", {"lr": 0.01, "momentum": 0.5}))
    assert n.at(0.01) == pytest.approx(2 * 1.5 / 2 / 0.01) and "Nesterov" in n.label
    wd = stability_limit(OptimizerSpec("sgd", {"lr": 0.1, "weight_decay": 0.5}))
    assert wd.at(0.1) == pytest.approx(19.5) and "wd" in wd.label
    adam = stability_limit(OptimizerSpec("adam", {"lr": 1e-3}))
    assert adam.factor is None and adam.label == "" and math.isnan(adam.at(1e-3))
    assert "preconditioned" in adam.note


@pytest.mark.parametrize(
    "name,hyper",
    [
        ("sgd", {}),
        ("momentum", {"momentum": 0.9}),
        ("momentum", {"momentum": 0.5, "dampening": 0.3}),
        ("nesterov", {"momentum": 0.7}),
        ("sgd", {"momentum": 0.6, "weight_decay": 0.4}),
    ],
)
def test_torch_optim_is_stable_just_below_the_limit_and_diverges_just_above(name, hyper):
    """The oracle: torch.optim itself on the quadratic lam/2 x^2, whose sharpness is lam."""
    lr = 0.1
    limit = stability_limit(OptimizerSpec(name, {"lr": lr, **hyper})).at(lr)

    def final(lam):
        x = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
        opt = build_optimizer(OptimizerSpec(name, {"lr": lr, **hyper}), [x])
        for _ in range(200):
            opt.zero_grad()
            (0.5 * lam * x**2).sum().backward()
            opt.step()
        return abs(float(x.detach()))

    # after 200 steps: below ends under 1.2e-5 in every case, above beyond 1e5
    assert final(0.97 * limit) < 1
    assert not final(1.03 * limit) < 1e3


def test_the_estimate_matches_the_dense_hessian_and_the_warm_start_is_cheap():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1)
    ).double()
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randn(20, 1, dtype=torch.float64)
    params = list(model.parameters())

    def loss_of(flat):
        chunks, i = [], 0
        for p in params:
            chunks.append(flat[i : i + p.numel()].view_as(p))
            i += p.numel()
        names = [name for name, _ in model.named_parameters()]
        out = torch.func.functional_call(model, dict(zip(names, chunks, strict=True)), x)
        return ((out - y) ** 2).mean()

    flat = torch.cat([p.detach().reshape(-1) for p in params])
    dense = torch.autograd.functional.hessian(loss_of, flat)
    eig = torch.linalg.eigvalsh(dense)
    top = float(eig[eig.abs().argmax()])
    tracker = SharpnessTracker(1, stability_limit(OptimizerSpec("sgd", {"lr": 0.1})))
    estimates = []
    for step in range(1, 8):  # the same weights: each warm start refines the last estimate
        e = tracker.measure(params, lambda: ((model(x) - y) ** 2).mean(), step, 1, 0.1)
        estimates.append(e)
    assert estimates[-1].value == pytest.approx(top, rel=1e-4)
    assert estimates[-1].products < estimates[0].products
    assert estimates[-1].limit == pytest.approx(20)


def test_training_yields_the_series_and_records_it():
    events = _events(TrainConfig(task="linreg", epochs=12, track_sharpness=4))
    sharp = [e for e in events if isinstance(e, Sharpness)]
    assert [e.step for e in sharp] == [4, 8, 12]
    for e in sharp:
        assert e.value == pytest.approx(LINREG_LAMBDA, rel=1e-4)
        assert e.limit == pytest.approx(2 / 0.01) and 0 <= e.share <= 1 and not e.message
    final = events[-1].final["sharpness"]
    assert final["steps"] == [4, 8, 12] and final["limit"] == "2/lr" and final["every"] == 4
    assert final["values"] == [e.value for e in sharp]


def test_tracking_does_not_change_the_training():
    """Shuffled batches (linreg_noisy): the measurements draw no random numbers the run uses."""
    base = TrainConfig(task="linreg_noisy", epochs=3)
    plain = [e.loss for e in _events(base) if isinstance(e, Step)]
    tracked = [
        e.loss
        for e in _events(TrainConfig(task="linreg_noisy", epochs=3, track_sharpness=3))
        if isinstance(e, Step)
    ]
    assert tracked == plain


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="track_sharpness"):
        TrainConfig(task="linreg", track_sharpness=-1).resolved()
    with pytest.raises(ValueError, match="nn.Linear form"):
        TrainConfig(
            task="sine",
            form="numpy",
            optimizer=OptimizerSpec("sgd", {"lr": 1e-6}),
            loss=None,
            track_sharpness=5,
        ).resolved()


ONCE = """
import torch
from torch import nn
from torch.autograd.function import once_differentiable


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    {decorator}
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return {grad}


def model():
    torch.manual_seed(0)
    return nn.Linear(2, 1)


def batches():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 2, generator=g)
    return [(x, x.sum(1, keepdim=True))]


def loss(model, batch):
    x, y = batch
    return Square.apply(model(x) - y).mean()
"""


@pytest.mark.parametrize(
    "decorator,grad",
    [
        ("@once_differentiable", "2 * x * g"),  # torch refuses the double backward
        ("", "torch.from_numpy(2 * x.detach().numpy()) * g"),  # leaves autograd
    ],
)
def test_a_loss_without_second_derivatives_turns_tracking_off_and_training_goes_on(
    tmp_path, decorator, grad
):
    path = tmp_path / "once.py"
    path.write_text(textwrap.dedent(ONCE.format(decorator=decorator, grad=grad)))
    config = TrainConfig(
        task="experiment",
        model_file=str(path),
        optimizer=OptimizerSpec("sgd", {"lr": 0.05}),
        epochs=6,
        track_sharpness=2,
    )
    events = _events(config)
    sharp = [e for e in events if isinstance(e, Sharpness)]
    assert len(sharp) == 1 and "turned off" in sharp[0].message  # said once, then quiet
    assert "differentiated twice" in sharp[0].message or "second derivative" in sharp[0].message
    done = events[-1]
    assert isinstance(done, Finished) and done.status == "completed" and done.steps == 6
    assert done.final["sharpness"]["message"] == sharp[0].message


def test_an_experiment_file_is_tracked(tmp_path):
    path = tmp_path / "ok.py"
    path.write_text(textwrap.dedent(ONCE.format(decorator="", grad="2 * x * g")))
    config = TrainConfig(
        task="experiment",
        model_file=str(path),
        optimizer=OptimizerSpec("momentum", {"lr": 0.05, "momentum": 0.9}),
        epochs=4,
        track_sharpness=2,
    )
    sharp = [e for e in _events(config) if isinstance(e, Sharpness)]
    assert [e.step for e in sharp] == [2, 4] and all(e.value > 0 for e in sharp)
    assert sharp[0].limit == pytest.approx(2 * 1.9 / 0.05)


def test_a_larger_negative_eigenvalue_is_not_reported_as_the_sharpness():
    # eigenvalues 2, 0.5 and -3: power iteration alone found -3 (LeNet near its start plotted
    # negative sharpness); the sharpness is the top eigenvalue, 2 (to ~1e-3: the tracker TOL)
    w = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    d = torch.tensor([2.0, 0.5, -3.0], dtype=torch.float64)
    tracker = SharpnessTracker(1, stability_limit(OptimizerSpec("sgd", {"lr": 0.1})))
    e = tracker.measure([w], lambda: 0.5 * (d * w**2).sum(), 1, 1, 0.1)
    assert e.message == "" and e.value == pytest.approx(2.0, rel=5e-3)
    again = tracker.measure([w], lambda: 0.5 * (d * w**2).sum(), 2, 1, 0.1)  # warm-started
    assert again.value == pytest.approx(2.0, rel=5e-3)
