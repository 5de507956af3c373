import numpy as np
import pytest
import torch

from core.optimizers import OptimizerSpec
from core.race.explain import equivalent_hyper, explain_last_step, momentum_path
from core.race.race import Race, RacerSpec
from core.race.surfaces import get_surface

CASES = [
    ("sgd", {"lr": 1e-3}),
    ("momentum", {"lr": 1e-4, "dampening": 0.3}),
    ("nesterov", {"lr": 1e-4, "weight_decay": 0.01}),
    ("rmsprop", {"lr": 1e-2}),
    ("rmsprop", {"lr": 1e-2, "momentum": 0.5}),
    ("rmsprop_centered", {"lr": 1e-3}),
    ("adagrad", {"lr": 0.1, "lr_decay": 0.01}),
    ("adam", {"lr": 0.05}),
    ("adam", {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}),
    ("adam", {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("adamw", {"lr": 0.05}),
]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("key, hyper", CASES)
def test_explanation_predicts_what_torch_did(key, hyper, fused):
    s = get_surface("rosenbrock")
    race = Race(
        s,
        [RacerSpec(OptimizerSpec(key, hyper), noise=0.3, clip="norm", clip_value=50)],
        starts=[[-1.5, 2.0], [0.3, -0.4]],
        fused=fused,
    )
    assert explain_last_step(race, 0) is None  # nothing to explain before the first step
    for n in (1, 1, 5):
        race.step(n)
        for k in range(2):
            e = explain_last_step(race, 0, k)
            assert e.step == race.step_count
            assert e.predicted is not None
            np.testing.assert_allclose(e.predicted, e.update, rtol=1e-10, atol=1e-15)
            assert any("update" in line for line in e.lines)


def test_adam_terms_equal_torch_state():
    s = get_surface("beale")
    race = Race(s, [RacerSpec(OptimizerSpec("adam", {"lr": 0.02}))])
    race.step(12)
    e = explain_last_step(race, 0)
    state = race._state(0)
    np.testing.assert_allclose(e.terms["m"], state["exp_avg"][0].numpy(), rtol=1e-12)
    np.testing.assert_allclose(e.terms["v"], state["exp_avg_sq"][0].numpy(), rtol=1e-12)
    t = float(state["step"])
    assert t == 12
    np.testing.assert_allclose(e.terms["m_hat"], e.terms["m"] / (1 - 0.9**t), rtol=1e-12)
    np.testing.assert_allclose(e.terms["v_hat"], e.terms["v"] / (1 - 0.999**t), rtol=1e-12)
    np.testing.assert_allclose(e.velocity, e.terms["m"], rtol=1e-12)
    assert "m_hat" in "\n".join(e.lines)


def test_generic_explanation_for_other_optimizers():
    race = Race(get_surface("rosenbrock"), [RacerSpec(OptimizerSpec("adamax"))])
    race.step(3)
    e = explain_last_step(race, 0)
    assert e.predicted is None
    assert any("exp_inf" in line for line in e.lines)
    np.testing.assert_allclose(e.update, e.pos_after - e.pos_before)


def _grad(p):  # the ill-conditioned bowl 0.5 x^2 + 10 y^2
    return np.array([p[0], 20 * p[1]])


@pytest.mark.parametrize("convention", ["pytorch", "classical", "ema"])
def test_momentum_conventions_trace_torch_sgd(convention):
    lr, mu = 0.02, 0.9
    race = Race(
        get_surface("ill_conditioned"),
        [RacerSpec(OptimizerSpec("momentum", {"lr": lr, "momentum": mu}))],
    )
    race.step(100)
    step, decay = equivalent_hyper(convention, lr, mu)
    path = momentum_path(convention, _grad, get_surface("ill_conditioned").start, step, decay, 100)
    np.testing.assert_allclose(path, race.trajectory(0).pos, rtol=1e-10, atol=1e-13)


def test_conventions_differ_without_the_mapping():
    a = momentum_path("pytorch", _grad, (1.0, 1.0), 0.02, 0.9, 20)
    b = momentum_path("ema", _grad, (1.0, 1.0), 0.02, 0.9, 20)
    assert np.abs(a - b).max() > 0.1
    with pytest.raises(ValueError, match="convention"):
        momentum_path("heavy", _grad, (1.0, 1.0), 0.02, 0.9, 2)
    with pytest.raises(ValueError, match="EMA"):
        equivalent_hyper("ema", 0.1, 1.0)


def test_torch_sgd_dampening_is_not_the_ema_form():
    # A pitfall worth teaching: torch's dampening skips the first step, so it is not the EMA.
    p = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.2, momentum=0.9, dampening=0.9)
    p.grad = torch.tensor(_grad(p.detach().numpy()))
    opt.step()
    ema = momentum_path("ema", _grad, (1.0, 1.0), 0.2, 0.9, 1)
    assert not np.allclose(p.detach().numpy(), ema[1])


def test_the_config_line_names_every_setting_lr_first():
    from core.optimizers import SchedulerSpec

    s = get_surface("rosenbrock")
    race = Race(
        s,
        [
            RacerSpec(OptimizerSpec("adam", {"lr": 0.05, "amsgrad": True})),
            RacerSpec(
                OptimizerSpec("sgd", {"lr": 0.01}),
                scheduler=SchedulerSpec("step", {"step_size": 1, "gamma": 0.5}),
            ),
        ],
    )
    race.step(3)
    adam = explain_last_step(race, 0).config
    assert adam.startswith("lr 0.05, beta1 0.9, beta2 0.999, eps 1e-08")
    assert "amsgrad" in adam and "decoupled_weight_decay" not in adam  # a switch when on
    sgd = explain_last_step(race, 1)
    assert sgd.config.startswith(f"lr {sgd.lr:.4g},") and sgd.lr == pytest.approx(0.0025)
