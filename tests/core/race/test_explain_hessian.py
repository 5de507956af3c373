"""The Race's curvature: the 2x2 Hessian at a racer's point and its learning-rate limits (#17)."""

import math

import numpy as np
import pytest
import torch

from core.optimizers import OptimizerSpec, SchedulerSpec
from core.race.formula import formula_surface
from core.race.hessian import contraction, critical_a, curvature_at
from core.race.race import Race, RacerSpec
from core.race.stability import live_state, racer_stability, stability
from core.race.surfaces import CATALOGUE, get_surface


def rosenbrock_hessian(x, y):
    return np.array([[2 - 400 * (y - x**2) + 800 * x**2, -400 * x], [-400 * x, 200.0]])


@pytest.mark.parametrize(
    "key, point, hessian",
    [
        ("quadratic", (0.7, -1.2), np.diag([2.0, 2.0])),
        ("ill_conditioned", (1.0, 0.5), np.diag([1.0, 20.0])),
        ("rotated_bowl", (0.3, 0.1), np.array([[10.5, -9.5], [-9.5, 10.5]])),
        ("rosenbrock", (1.0, 1.0), rosenbrock_hessian(1.0, 1.0)),
        ("rosenbrock", (-1.5, 2.0), rosenbrock_hessian(-1.5, 2.0)),
        ("rosenbrock", (0.2, 0.9), rosenbrock_hessian(0.2, 0.9)),
        ("saddle", (0.4, -0.3), np.diag([2.0, -2.0])),
    ],
)
def test_eigen_pairs_match_the_analytic_hessian(key, point, hessian):
    c = curvature_at(get_surface(key).fn, point)
    assert c.finite and c.smooth
    np.testing.assert_allclose(c.hessian, hessian, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(c.eigenvalues, np.linalg.eigvalsh(hessian)[::-1], rtol=1e-10)
    assert c.eigenvalues[0] >= c.eigenvalues[1]
    for i in range(2):
        v = c.eigenvectors[:, i]
        assert np.linalg.norm(v) == pytest.approx(1.0)
        np.testing.assert_allclose(hessian @ v, c.eigenvalues[i] * v, atol=1e-8 * 1000)


def test_the_saddle_has_one_negative_direction_and_says_so():
    c = curvature_at(get_surface("saddle").fn, (0.5, 0.1))
    assert c.eigenvalues[0] > 0 > c.eigenvalues[1]
    np.testing.assert_allclose(np.abs(c.eigenvectors[:, 1]), [0.0, 1.0], atol=1e-12)  # along y
    st = stability("SGD", {"momentum": 0.0}, 0.1, c)
    assert st.limit == pytest.approx(2 / 2.0)
    assert not st.exceeded
    text = " ".join(st.lines)
    assert "negative along v2" in text and "curves down" in text
    assert st.factors[1] == pytest.approx(1 + 0.1 * 2.0)  # |1 - lr*lam| with lam = -2: grows


def final_offset(key, lr, steps=200, **hyper):
    """|y| after ``steps`` real torch.optim steps on 0.5 x^2 + 10 y^2 from (0, 1)."""
    spec = RacerSpec(OptimizerSpec(key, {"lr": lr, **hyper}))
    race = Race(get_surface("ill_conditioned"), [spec], starts=[0.0, 1.0])
    race.step(steps)
    return race, abs(float(race.positions[0, 0, 1]))


@pytest.mark.parametrize(
    "key, hyper, limit",
    [
        ("sgd", {}, 2 / 20),
        ("momentum", {"momentum": 0.9}, 2 * 1.9 / 20),
        ("momentum", {"momentum": 0.5, "dampening": 0.3}, 2 * 1.5 / (0.7 * 20)),
        ("nesterov", {"momentum": 0.9}, 2 * 1.9 / (2.8 * 20)),
        ("sgd", {"weight_decay": 0.5}, 2 / 20.5),
    ],
)
def test_the_limit_is_where_torch_optim_starts_to_diverge(key, hyper, limit):
    """Below the stated limit the real optimizer converges along v1, above it it blows up."""
    race, _ = final_offset(key, 0.5 * limit, steps=0, **hyper)
    _, st = racer_stability(race, 0)
    assert st.limit == pytest.approx(limit, rel=1e-9)
    # in 200 steps: below ends under 1.2e-5 in every case, above has diverged by step 91
    _, below = final_offset(key, 0.97 * limit, **hyper)
    race_above, above = final_offset(key, 1.03 * limit, **hyper)
    assert below < 1e-2
    assert above > 1.0 or race_above.diverged_at[0, 0] >= 0


@pytest.mark.parametrize(
    "key, hyper, kind",
    [("sgd", {}, "gd"), ("momentum", {}, "heavy_ball"), ("nesterov", {}, "nesterov")],
)
def test_the_stated_factor_per_step_is_what_torch_did(key, hyper, kind):
    lr = 0.6 * {"gd": 0.1, "heavy_ball": 0.19, "nesterov": 0.0679}[kind]
    race, _ = final_offset(key, lr, steps=0, **hyper)
    _, st = racer_stability(race, 0)
    assert st.kind == kind
    race.step(200)
    y = np.abs(race.trajectory(0).pos[:, 1])
    observed = (y[200] / y[100]) ** (1 / 100)
    assert observed == pytest.approx(st.factors[0], rel=2e-2)


def test_critical_a_is_the_edge_of_the_iteration_matrix():
    for kind, beta in (("gd", 0.0), ("heavy_ball", 0.9), ("heavy_ball", 0.3), ("nesterov", 0.9)):
        a = critical_a(kind, beta)
        assert contraction(kind, beta, 0.999 * a) < 1 < contraction(kind, beta, 1.001 * a)
    with pytest.raises(ValueError, match="gd, heavy_ball or nesterov"):
        critical_a("adam", 0.9)


def test_the_issue_sentence_for_plain_sgd_above_the_limit():
    race = Race(get_surface("rosenbrock"), [RacerSpec(OptimizerSpec("sgd", {"lr": 0.05}))])
    curv, st = racer_stability(race, 0)
    assert st.exceeded
    assert st.lines[0].startswith(f"lr 0.05 > 2/λmax = {2 / curv.eigenvalues[0]:.3g}: plain ")
    assert "oscillates and diverges along v1" in st.lines[0]


def test_momentum_teaches_the_ema_form_of_the_same_limit():
    race = Race(
        get_surface("ill_conditioned"), [RacerSpec(OptimizerSpec("momentum", {"lr": 0.01}))]
    )
    _, st = racer_stability(race, 0)
    text = " ".join(st.lines)
    assert "2(1+β)/λmax = 0.19" in text
    assert "EMA form" in text and f"{0.19 / 0.1:.3g}" in text


def test_adam_uses_the_preconditioned_curvature_from_torch_state():
    s = get_surface("rosenbrock")
    race = Race(
        s, [RacerSpec(OptimizerSpec("adam", {"lr": 0.05}))], starts=[[-1.5, 2.0], [0.5, 0.5]]
    )
    _, st0 = racer_stability(race, 0)
    assert st0.kind == "none" and math.isnan(st0.limit)
    assert "no state yet" in " ".join(st0.lines)
    assert "for plain gradient descent" in " ".join(st0.lines)
    race.step(7)
    for k in range(2):
        curv, st = racer_stability(race, 0, k)
        torch_state = race._state(0)  # Adam's real state: (K, 2) tensors
        v = torch_state["exp_avg_sq"][k].numpy()
        t = float(torch_state["step"])
        denom = np.sqrt(v) / math.sqrt(1 - 0.999**t) + 1e-8  # torch's own order of operations
        np.testing.assert_allclose(live_state(race, 0, k)["exp_avg_sq"], v)
        ph = curv.hessian / np.sqrt(denom)[:, None] / np.sqrt(denom)[None, :]
        lam = np.linalg.eigvalsh(ph)[::-1]
        np.testing.assert_allclose(st.curvature, lam, rtol=1e-9)
        bc1 = 1 - 0.9 ** (t + 1)
        assert st.kind == "heavy_ball"
        assert st.limit == pytest.approx(2 * 1.9 * bc1 / (0.1 * lam[0]), rel=1e-9)
        assert "does not apply" in st.lines[0]
        eff = 0.05 / denom  # the per-coordinate learning rate Adam really steps m_hat with
        assert f"effective lr per coordinate is ({eff[0]:.3g}, {eff[1]:.3g})" in st.lines[0]


@pytest.mark.parametrize("key", ["rmsprop", "adagrad", "adadelta", "adamax", "nadam", "radam"])
def test_every_adaptive_method_gets_a_preconditioned_limit(key):
    race = Race(get_surface("beale"), [RacerSpec(OptimizerSpec(key))])
    race.step(3)
    _, st = racer_stability(race, 0)
    assert st.kind in ("gd", "heavy_ball")
    assert math.isfinite(st.limit) and st.limit > 0
    assert "λ̃" in " ".join(st.lines)


@pytest.mark.parametrize("key", ["rprop", "lbfgs"])
def test_methods_without_a_curvature_limit_say_the_limit_is_for_plain_gd(key):
    race = Race(get_surface("rosenbrock"), [RacerSpec(OptimizerSpec(key))])
    race.step(2)
    _, st = racer_stability(race, 0)
    assert st.kind == "none"
    assert "is for plain gradient descent" in st.lines[-1]


@pytest.mark.parametrize(
    "lr, says", [(0.15, "once it falls below the limit"), (0.05, "moves only")]
)
def test_clipping_and_schedules_are_explained(lr, says):
    spec = RacerSpec(
        OptimizerSpec("sgd", {"lr": lr}),
        scheduler=SchedulerSpec("step", {"step_size": 30, "gamma": 0.1}),
        clip="norm",
        clip_value=1.0,
    )
    race = Race(get_surface("ill_conditioned"), [spec])  # 2/λmax = 0.1
    _, st = racer_stability(race, 0)
    text = " ".join(st.lines)
    assert "Clipping caps each step" in text and says in text


def test_a_kink_is_named_not_given_a_limit():
    s = formula_surface("abs(x) + y**2")
    kink = curvature_at(s.fn, (0.0, 0.5))
    assert kink.finite and not kink.smooth
    st = stability("SGD", {"momentum": 0.0}, 0.1, kink)
    assert st.kind == "none" and "Not smooth" in st.lines[0]
    side = curvature_at(s.fn, (1.0, 0.5))  # away from the kink abs is linear: smooth
    assert side.smooth
    np.testing.assert_allclose(side.eigenvalues, [2.0, 0.0], atol=1e-12)
    assert "flat along v2" in " ".join(stability("SGD", {"momentum": 0.0}, 0.1, side).lines)


@pytest.mark.parametrize(
    "text, point",
    [("sqrt(x) + y**2", (-1.0, 0.0)), ("log(x*y)", (0.0, 0.0)), ("x + y", (0.0, 0.0))],
)
def test_nan_points_and_flat_planes_do_not_crash(text, point):
    s = formula_surface(text)
    c = curvature_at(s.fn, point)
    st = stability("SGD", {"momentum": 0.0}, 0.1, c)
    assert st.lines
    if not c.finite:
        assert "No curvature here" in st.lines[0] and math.isnan(st.limit)
    else:
        assert st.limit == math.inf and not st.exceeded  # a plane curves nowhere


def test_a_non_finite_point_and_a_constant_surface_do_not_crash():
    s = get_surface("quadratic")
    assert not curvature_at(s.fn, (math.nan, 0.0)).finite
    assert not curvature_at(s.fn, (math.inf, 1.0)).finite
    const = curvature_at(lambda x, y: torch.tensor(3.0, dtype=torch.float64), (0.0, 0.0))
    assert const.finite
    np.testing.assert_allclose(const.eigenvalues, [0.0, 0.0])


def test_a_diverged_racer_is_explained_at_its_held_point():
    race = Race(get_surface("rosenbrock"), [RacerSpec(OptimizerSpec("sgd", {"lr": 0.05}))])
    race.step(30)
    assert race.diverged_at[0, 0] >= 0
    curv, st = racer_stability(race, 0)
    assert curv.finite and st.exceeded


@pytest.mark.parametrize("key", list(CATALOGUE))
def test_the_batched_double_backward_equals_torch_functional_hessian(key):
    s = get_surface(key)
    xmin, xmax, ymin, ymax = s.bounds
    rng = np.random.default_rng(0)
    for fx, fy in rng.uniform(0.05, 0.95, size=(4, 2)):
        p = torch.tensor(
            [xmin + fx * (xmax - xmin), ymin + fy * (ymax - ymin)], dtype=torch.float64
        )
        dense = torch.autograd.functional.hessian(lambda w: s.fn(w[0], w[1]), p).numpy()
        c = curvature_at(s.fn, p.numpy())
        assert c.smooth, (key, p)  # every catalogue surface is smooth away from Ackley's origin
        np.testing.assert_allclose(c.hessian, dense, rtol=1e-10, atol=1e-10 * np.abs(dense).max())


def test_a_hilltop_and_a_plane_get_one_plain_sentence():
    top = curvature_at(formula_surface("-(x**2) - 2*y**2").fn, (0.1, 0.2))
    st = stability("SGD", {"momentum": 0.0}, 0.1, top)
    assert st.lines == [st.lines[0]] and "hilltop" in st.lines[0]
    assert st.limit == math.inf and not st.exceeded
    plane = curvature_at(formula_surface("x + 2*y").fn, (0.1, 0.2))
    lines = stability("SGD", {"momentum": 0.0}, 0.1, plane).lines
    assert lines == [
        "The surface does not curve up here: there is no learning-rate limit; "
        "only the slope moves the racer."
    ]


@pytest.mark.parametrize("key", ["adam", "rmsprop", "adagrad", "adamax"])
def test_a_coordinate_without_gradient_gets_no_frozen_state_limit(key):
    """On the saddle's ridge y = 0 the y gradient is exactly 0: v_y stays 0, and 1/eps would
    promise a step of 1e8 * lr that the real optimizer never takes."""
    race = Race(get_surface("saddle"), [RacerSpec(OptimizerSpec(key))], starts=[-1.5, 0.0])
    race.step(5)
    assert race.positions[0, 0, 1] == 0.0
    _, st = racer_stability(race, 0)
    assert st.kind == "none"
    assert "has seen no gradient along y yet" in st.lines[0]
    assert "is for plain gradient descent" in st.lines[-1]


def test_adams_written_limit_is_the_number_it_states():
    """On x^2+y^2 the panel said "lr 0.02 < 2(1+β1)/((1-β1)λ̃max) = 18", but that formula
    gives 52: the number held the bias correction the formula left out."""
    race = Race(get_surface("quadratic"), [RacerSpec(OptimizerSpec("adam", {"lr": 0.02}))])
    race.step(3)
    _, st = racer_stability(race, 0)
    t = 4  # the coming step
    assert st.formula == f"2(1+β1)(1-β1^{t})/((1-β1)λ̃max)"
    by_hand = 2 * 1.9 * (1 - 0.9**t) / (0.1 * st.curvature[0])
    assert st.limit == pytest.approx(by_hand, rel=1e-12)
    text = " ".join(st.lines)
    assert f"{st.formula} = {st.limit:.3g}" in text
    late = 2 * 1.9 / (0.1 * st.curvature[0])
    assert f"tends to 2(1+β1)/((1-β1)λ̃max) = {late:.3g}" in text
