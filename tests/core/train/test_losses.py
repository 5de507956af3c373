import math

import pytest
import torch

from core.train.losses import LOSSES, LossSpec, build_loss, check_loss_for_task, losses_for


def test_tutorial_worked_numbers():
    pred, target = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 5.0])
    assert build_loss(LossSpec("l1", "sum"))(pred, target).item() == pytest.approx(2.0)
    assert build_loss(LossSpec("mse", "sum"))(pred, target).item() == pytest.approx(4.0)
    assert build_loss(LossSpec("l1", "mean"))(pred, target).item() == pytest.approx(2 / 3)
    assert build_loss(LossSpec("mse", "mean"))(pred, target).item() == pytest.approx(4 / 3)
    logits, target = torch.tensor([[2.0, 1.0, 0.1]]), torch.tensor([0])
    probs = torch.softmax(logits, dim=1)[0]
    assert probs.tolist() == pytest.approx([0.659, 0.242, 0.099], abs=1e-3)
    ce = build_loss(LossSpec("cross_entropy"))(logits, target).item()
    assert ce == pytest.approx(0.417, abs=1e-3)
    assert ce == pytest.approx(-math.log(probs[0].item()))
    assert build_loss(LossSpec("nll"))(logits, target).item() == pytest.approx(ce)


def test_huber_is_quadratic_near_zero_and_linear_far_away():
    huber = build_loss(LossSpec("huber", extra={"delta": 1.0}))
    assert huber(torch.tensor([0.5]), torch.tensor([0.0])).item() == pytest.approx(0.125)
    assert huber(torch.tensor([3.0]), torch.tensor([0.0])).item() == pytest.approx(2.5)
    smooth = build_loss(LossSpec("smooth_l1", extra={"beta": 2.0}))
    assert smooth(torch.tensor([3.0]), torch.tensor([0.0])).item() == pytest.approx(2.0)


def test_label_smoothing_and_bce():
    logits, target = torch.tensor([[2.0, 1.0, 0.1]]), torch.tensor([0])
    plain = build_loss(LossSpec("cross_entropy"))(logits, target)
    smooth = build_loss(LossSpec("cross_entropy", extra={"label_smoothing": 0.1}))(logits, target)
    assert smooth.item() > plain.item()
    bce = build_loss(LossSpec("bce_logits"))(torch.tensor([0.0]), torch.tensor([1.0]))
    assert bce.item() == pytest.approx(math.log(2))


def test_every_loss_builds_with_both_reductions():
    for key in LOSSES:
        for red in ("mean", "sum"):
            assert isinstance(build_loss(LossSpec(key, red)), torch.nn.Module)


def test_bad_loss_specs_and_task_mismatch():
    with pytest.raises(ValueError, match="Unknown loss 'hinge'"):
        build_loss(LossSpec("hinge"))
    with pytest.raises(ValueError, match="Invalid reduction"):
        build_loss(LossSpec("mse", "median"))
    with pytest.raises(ValueError, match="Unknown option 'delta' for MSE"):
        build_loss(LossSpec("mse", extra={"delta": 1}))
    with pytest.raises(ValueError, match="Invalid label_smoothing"):
        build_loss(LossSpec("cross_entropy", extra={"label_smoothing": 2}))
    with pytest.raises(ValueError, match="classification loss.*regression task.*mse"):
        check_loss_for_task("cross_entropy", "regression", "the sine fit")
    assert "cross_entropy" in losses_for("classification")
