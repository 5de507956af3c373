import dataclasses

import numpy as np
import pytest
import torch

from core.optimizers import CATALOGUE, OptimizerSpec, SchedulerSpec
from core.race.formula import formula_surface
from core.race.race import Race, RacerSpec
from core.race.surfaces import get_surface

ELEMENTWISE = sorted(k for k, o in CATALOGUE.items() if o.elementwise)
# Step sizes that make every optimizer move visibly on Himmelblau without leaving it.
LR = {
    "sgd": 2e-3,
    "momentum": 1e-3,
    "nesterov": 1e-3,
    "adagrad": 0.3,
    "adadelta": 1.0,
    "adamax": 0.05,
    "rmsprop": 0.02,
    "rmsprop_centered": 0.02,
    "rprop": 0.01,
    "adam": 0.05,
    "adamw": 0.05,
    "nadam": 0.05,
    "radam": 0.05,
    "asgd": 2e-3,
    "lbfgs": 1.0,
}
STARTS = np.array([[-1.0, 1.0], [0.5, -0.5], [2.0, 1.0], [-3.0, -2.5], [4.0, 4.0]])


def racer(key, **kw):
    return RacerSpec(OptimizerSpec(key, {"lr": LR[key]}), **kw)


def plain_torch_path(surface, key, start, steps, dtype=torch.float64, change=None):
    """A textbook loop: zero_grad, forward, backward, step, on one leaf parameter."""
    info = CATALOGUE[key]
    p = torch.tensor(start, dtype=dtype, requires_grad=True)
    from core.optimizers import build_optimizer

    opt = build_optimizer(OptimizerSpec(key, {"lr": LR[key]}), [p])
    out = [p.detach().clone()]

    def closure():
        opt.zero_grad()
        loss = surface(p[0], p[1])
        loss.backward()
        return loss

    for t in range(steps):
        if change and t == change[0]:
            opt.param_groups[0]["lr"] = change[1]
        if info.elementwise:
            closure()
            opt.step()
        else:
            opt.step(closure)
        out.append(p.detach().clone())
    return torch.stack(out).numpy()


@pytest.mark.parametrize("key", sorted(CATALOGUE))
def test_race_equals_a_plain_torch_loop(key):
    s = get_surface("himmelblau")
    race = Race(s, [racer(key)], starts=STARTS[0])
    race.step(40)
    expected = plain_torch_path(s, key, STARTS[0], 40)
    np.testing.assert_allclose(race.trajectory(0).pos, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("key", ELEMENTWISE + ["lbfgs"])
def test_batched_starts_equal_separate_runs(key):
    s = get_surface("himmelblau")
    batched = Race(s, [racer(key)], starts=STARTS)
    batched.step(20)
    for k, start in enumerate(STARTS):
        alone = Race(s, [racer(key)], starts=start)
        alone.step(20)
        diff = np.abs(batched.trajectory(0, k).pos - alone.trajectory(0).pos).max()
        assert diff <= 1e-6, (key, k, diff)


def test_one_forward_backward_per_step_for_all_racers():
    s = get_surface("himmelblau")
    calls = []

    def counting(x, y):
        calls.append(x.shape)
        return s.fn(x, y)

    counted = dataclasses.replace(s, fn=counting)
    keys = ["sgd", "momentum", "adam", "rmsprop", "adagrad", "nadam"]
    race = Race(counted, [racer(k) for k in keys], starts=STARTS[:3])
    calls.clear()
    race.step(10)
    assert (race.diverged_at < 0).all()  # a divergence re-evaluates once, by design
    assert len(calls) == 10
    assert calls[0] == (len(keys), 3)  # every racer and start in one pass


def test_fused_and_plain_kernels_agree():
    s = get_surface("rosenbrock")
    specs = [racer(k) for k in ("sgd", "momentum", "adam", "adamw", "adagrad")]
    fused, plain = Race(s, specs, fused=True), Race(s, specs, fused=False)
    fused.step(100)
    plain.step(100)
    np.testing.assert_allclose(fused.positions, plain.positions, rtol=1e-10, atol=1e-12)


def test_divergence_is_marked_and_the_others_go_on():
    s = get_surface("rosenbrock")
    race = Race(s, [RacerSpec(OptimizerSpec("sgd", {"lr": 0.05})), racer("adam")])
    race.step(200)
    assert race.diverged_at[0, 0] > 0
    assert "bounds" in race.diverge_reason[0, 0] or "non-finite" in race.diverge_reason[0, 0]
    assert race.diverged_at[1, 0] == -1
    frozen = race.positions[0, 0].copy()
    adam_before = race.positions[1, 0].copy()
    race.step(10)
    np.testing.assert_array_equal(race.positions[0, 0], frozen)  # stopped where it diverged
    assert np.isfinite(frozen).all()
    assert not np.array_equal(race.positions[1, 0], adam_before)  # the other goes on


def test_non_finite_loss_diverges_with_its_reason():
    s = formula_surface("log(x) + y**2", bounds=(-1, 3, -2, 2), start=(0.5, 1.0))
    race = Race(s, [RacerSpec(OptimizerSpec("sgd", {"lr": 1.0}))])
    race.step(5)
    assert race.diverged_at[0, 0] >= 1
    assert race.diverge_reason[0, 0] == "loss became non-finite"


def test_constant_formula_has_zero_gradient():
    s = formula_surface("3", bounds=(-1, 1, -1, 1), start=(0.2, 0.3))
    race = Race(s, [racer("adam")])
    race.step(3)
    np.testing.assert_array_equal(race.positions[0, 0], [0.2, 0.3])


def test_hyperparameters_change_mid_race():
    s = get_surface("himmelblau")
    race = Race(s, [racer("adam")], starts=STARTS[0])
    race.step(20)
    race.set_hyper(0, "lr", 0.2)
    race.step(20)
    expected = plain_torch_path(s, "adam", STARTS[0], 40, change=(20, 0.2))
    np.testing.assert_allclose(race.trajectory(0).pos, expected, rtol=1e-9, atol=1e-12)
    assert race.trajectory(0).lr[19] == 0.05 and race.trajectory(0).lr[20] == 0.2
    race.set_hyper(0, "beta1", 0.5)
    assert race._group(0)["betas"] == (0.5, 0.999)
    with pytest.raises(ValueError, match="Invalid lr"):
        race.set_hyper(0, "lr", -1.0)


def test_reset_replays_the_same_noisy_path():
    s = get_surface("saddle")
    race = Race(s, [racer("sgd", noise=0.5, seed=3)])
    race.step(30)
    first = race.trajectory(0).pos
    race.reset()
    race.step(30)
    np.testing.assert_array_equal(race.trajectory(0).pos, first)
    race.set_options(0, seed=4)
    race.reset()
    race.step(30)
    assert not np.array_equal(race.trajectory(0).pos, first)


def test_noise_lets_sgd_escape_the_saddle_ridge():
    s = get_surface("saddle")  # started exactly on the ridge y = 0
    race = Race(s, [racer("sgd"), racer("sgd", noise=1.0, seed=1)])
    race.set_hyper(0, "lr", 0.05)
    race.set_hyper(1, "lr", 0.05)
    race.step(150)
    assert abs(race.positions[0, 0, 1]) == 0.0  # no noise: stuck on the ridge
    assert abs(race.positions[1, 0, 1]) > 1.0 or race.diverged_at[1, 0] > 0  # noise: escaped


def test_clip_by_norm_matches_clip_grad_norm():
    s = get_surface("rosenbrock")
    race = Race(s, [RacerSpec(OptimizerSpec("sgd", {"lr": 1e-3}), clip="norm", clip_value=1.0)])
    race.step(1)
    g = torch.tensor(race.trajectory(0).grad[0], requires_grad=False)
    p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_([p], max_norm=1.0)
    np.testing.assert_allclose(race.trajectory(0).used_grad[0], p.grad.numpy(), rtol=1e-12)
    race2 = Race(s, [RacerSpec(OptimizerSpec("sgd", {"lr": 1e-3}), clip="value", clip_value=2)])
    race2.step(1)
    assert np.abs(race2.trajectory(0).used_grad[0]).max() == 2.0


def test_schedulers_drive_the_learning_rate():
    s = get_surface("quadratic")
    step = RacerSpec(
        OptimizerSpec("sgd", {"lr": 0.1}),
        scheduler=SchedulerSpec("step", {"step_size": 30, "gamma": 0.1}),
    )
    cyc = RacerSpec(
        OptimizerSpec("sgd", {"lr": 0.1}),
        scheduler=SchedulerSpec("onecycle", {"max_lr": 0.1, "total_steps": 20}),
    )
    plateau = RacerSpec(OptimizerSpec("adam", {"lr": 0.1}), scheduler=SchedulerSpec("plateau"))
    race = Race(s, [step, cyc, plateau])
    race.step(60)  # OneCycleLR past its total_steps must not raise
    lr = race.trajectory(0).lr
    assert lr[0] == pytest.approx(0.1) and lr[30] == pytest.approx(0.01)
    assert race.trajectory(0).lr[59] == pytest.approx(0.01)


def test_lr_change_keeps_the_schedule_progress():
    s = get_surface("quadratic")
    spec = RacerSpec(
        OptimizerSpec("sgd", {"lr": 0.1}),
        scheduler=SchedulerSpec("step", {"step_size": 10, "gamma": 0.5}),
    )
    race = Race(s, [spec])
    race.step(15)
    assert race.lr(0) == pytest.approx(0.05)
    race.set_hyper(0, "lr", 0.2)
    assert race.lr(0) == pytest.approx(0.1)
    race.step(10)
    assert race.lr(0) == pytest.approx(0.05)


def test_steps_to_converge_on_a_bowl():
    s = get_surface("quadratic")
    race = Race(s, [RacerSpec(OptimizerSpec("sgd", {"lr": 0.1}))], starts=(1.0, 1.0))
    race.step(60)
    m = race.metrics(0)
    # p_t = 0.8^t p_0: within 1e-3 of the origin first at t = 33.
    assert m.steps_to_converge[0] == 33
    assert m.final_distance[0] == pytest.approx(np.sqrt(2) * 0.8**60)
    assert m.final_loss[0] == pytest.approx(2 * 0.8**120)


def test_history_memory_stays_bounded():
    s = get_surface("quadratic")
    # 8 KB hold 46 full-history points of two racers: 500 steps fill it over and over
    race = Race(s, [racer("adam"), racer("sgd")], budget_bytes=8 * 1024)
    race.step(500)
    h = race.history
    assert h.nbytes <= 8 * 1024 + 1024
    assert h.count <= h.capacity and h.stride >= 8  # it really thinned out, repeatedly
    steps = race.trajectory(0).steps
    assert steps[0] == 0 and steps[-1] == 500
    assert np.all(np.diff(steps) > 0)


def test_path_and_none_history_modes():
    s = get_surface("rosenbrock")
    none = Race(s, [racer("adam")], starts=np.zeros((1000, 2)), history="none")
    none.step(5)
    assert none.history.count == 1 and none.positions.shape == (1, 1000, 2)
    path = Race(s, [racer("adam")], history="path")
    path.step(5)
    assert path.trajectory(0).grad is None and len(path.trajectory(0).pos) == 6


def test_bad_race_inputs():
    s = get_surface("rosenbrock")
    with pytest.raises(ValueError, match="start points"):
        Race(s, [racer("adam")], starts=[[1, 2, 3]])
    with pytest.raises(ValueError, match="finite"):
        Race(s, [racer("adam")], starts=[np.nan, 0])
    with pytest.raises(ValueError, match="at least one"):
        Race(s, [])
    with pytest.raises(ValueError, match="Invalid clip"):
        Race(s, [RacerSpec(clip="sometimes")])
    with pytest.raises(ValueError, match="Invalid noise"):
        Race(s, [RacerSpec(noise=-1)])


def test_racer_spec_round_trips_through_dicts():
    spec = RacerSpec(
        OptimizerSpec("adam", {"lr": 0.01}),
        SchedulerSpec("cosine"),
        "norm",
        2.0,
        0.1,
        7,
        "mine",
        "#ff0000",
    )
    assert RacerSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="Unknown racer field"):
        RacerSpec.from_dict({"optimizer": {"name": "adam"}, "speed": 3})


def test_optimizer_state_is_public_per_start_and_a_copy():
    """The explain/stability code reads torch's state through this accessor: it must hold
    torch's own numbers for each start, and not change when the race steps on."""
    race = Race(
        get_surface("himmelblau"),
        [
            RacerSpec(OptimizerSpec("adam", {"lr": 0.05})),
            RacerSpec(OptimizerSpec("lbfgs", {"lr": 1.0})),
        ],
        starts=[[-1.0, 1.0], [2.0, -2.0]],
    )
    assert race.optimizer_state(0, 1) == {}  # nothing before the first step
    race.step(3)
    torch_state = race._state(0)  # Adam's own: (K, 2) tensors for both starts
    for k in range(2):
        got = race.optimizer_state(0, k)
        np.testing.assert_array_equal(got["exp_avg"], torch_state["exp_avg"][k].numpy())
        assert got["exp_avg"].shape == (2,) and float(got["step"]) == 3
    assert set(race.optimizer_state(1, 1)) <= set(race._state(1, 1))  # L-BFGS: per start
    kept = race.optimizer_state(0, 0)
    before = kept["exp_avg"].copy()
    race.step(2)
    np.testing.assert_array_equal(kept["exp_avg"], before)  # a copy, not torch's live tensor
