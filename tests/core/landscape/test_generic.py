"""The plane evaluator for any model: against the naive loop, with and without the first layer
by linearity, in eval mode (BatchNorm's running statistics), with the user's own loss."""

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from core.landscape.directions import LandscapeError, flat_parameters, random_directions, set_flat
from core.landscape.generic import GenericEvaluator
from core.train.experiment import load_experiment

EXAMPLES = Path(__file__).resolve().parents[3] / "core" / "train" / "examples"


def naive(model, batches, loss_fn, theta):
    m = copy.deepcopy(model).eval()
    set_flat(m, theta)
    with torch.no_grad():
        return sum(float(loss_fn(m, b)) for b in batches) / len(batches)


def _first(batch, n):
    """The first ``n`` samples of a batch given as a tuple or a dict of tensors."""
    if isinstance(batch, dict):
        return {k: v[:n] for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(v[:n] for v in batch)
    raise TypeError(f"unexpected batch type {type(batch).__name__}")


@pytest.mark.parametrize(
    ("name", "folds"),
    [("tutorial_cnn.py", True), ("resnet_bn.py", True), ("mlp_regression.py", True)],
)
def test_generic_evaluator_equals_the_naive_loop(name, folds):
    e = load_experiment(EXAMPLES / name)
    model = e.build_model().eval()
    # two batches (the mean over batches is part of the check) of 16 samples each: in eval
    # mode every sample is computed on its own, so more of them prove nothing more
    batches = [_first(b, 16) for b in e.batches()[:2]]
    centre = flat_parameters(model)
    d1, d2 = random_directions(model, seed=4)
    fast = GenericEvaluator(
        model, batches, e.loss, centre, d1, d2, accuracy=not e.own_loss, linear_first="on"
    )
    auto = GenericEvaluator(model, batches, e.loss, centre, d1, d2)  # folded if it is faster
    plain = GenericEvaluator(model, batches, e.loss, centre, d1, d2, linear_first="off")
    assert fast.folded is folds and not plain.folded
    for a, b in [(0.0, 0.0), (0.4, -0.3), (-1.0, 1.0)]:
        want = naive(model, batches, e.loss, centre + a * d1 + b * d2)
        assert fast.at(a, b)[0] == pytest.approx(want, rel=1e-5)
        assert auto.at(a, b)[0] == pytest.approx(want, rel=1e-5)
        assert plain.at(a, b)[0] == pytest.approx(want, rel=1e-6)
    # the centre is the model's own loss on the data, and the caller's model is untouched
    assert fast.at(0, 0)[0] == pytest.approx(e.mean_loss(model, batches), rel=1e-6)
    assert torch.equal(flat_parameters(model), centre)


def test_batchnorm_uses_running_statistics_and_accuracy_is_reported():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    model.train()
    x = torch.randn(64, 3)
    model(x)  # running statistics move away from (0, 1)
    model.eval()
    y = (x[:, 0] > 0).long()
    batches = [(x[:32], y[:32]), (x[32:], y[32:])]

    def loss(m, b):
        return nn.functional.cross_entropy(m(b[0]), b[1])

    c = flat_parameters(model)
    d1, d2 = random_directions(model, 1)
    ev = GenericEvaluator(model, batches, loss, c, d1, d2, accuracy=True)
    value, acc = ev.at(0, 0)
    with torch.no_grad():
        logits = model(x)
    assert value == pytest.approx((loss(model, batches[0]) + loss(model, batches[1])).item() / 2)
    assert acc == pytest.approx(float((logits.argmax(1) == y).float().mean()))


def test_a_first_layer_not_on_the_raw_input_is_not_folded():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 1)

        def forward(self, x):
            return self.fc(2 * x)  # the layer sees a computed tensor, not the batch's

    model = Scaled()
    batches = [{"x": torch.randn(5, 2), "y": torch.randn(5, 1)}]

    def loss(m, b):
        return ((m(b["x"]) - b["y"]) ** 2).mean()

    c = flat_parameters(model)
    ev = GenericEvaluator(model, batches, loss, c, torch.ones_like(c), torch.zeros_like(c))
    assert not ev.folded
    assert ev.at(0.5, 0)[0] == pytest.approx(naive(model, batches, loss, c + 0.5))


def test_bad_requests():
    model = nn.Linear(2, 1)
    c = flat_parameters(model)
    with pytest.raises(LandscapeError, match="no batches"):
        GenericEvaluator(model, [], lambda m, b: m(b).sum(), c, c, c)
    with pytest.raises(LandscapeError, match="entries"):
        GenericEvaluator(model, [torch.ones(1, 2)], lambda m, b: m(b).sum(), c[:2], c[:2], c[:2])
