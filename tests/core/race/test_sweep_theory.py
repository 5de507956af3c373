import numpy as np

from core.optimizers import OptimizerSpec
from core.race.race import RacerSpec
from core.race.surfaces import get_surface
from core.race.sweep import SweepAxis, SweepMap, sweep_map
from core.race.sweep_theory import momentum_curves, quadratic_hessian


def test_quadratic_hessian_is_found_only_for_quadratics():
    np.testing.assert_allclose(quadratic_hessian(get_surface("ill_conditioned")), np.diag([1, 20]))
    np.testing.assert_allclose(
        quadratic_hessian(get_surface("rotated_bowl")),
        [[10.5, -9.5], [-9.5, 10.5]],
        atol=1e-12,
    )
    assert quadratic_hessian(get_surface("rosenbrock")) is None


def test_the_stability_boundary_separates_diverged_cells_from_the_others():
    s = get_surface("ill_conditioned")  # curvatures 1 and 20
    racer = RacerSpec(OptimizerSpec("momentum", {}))
    x, y = SweepAxis("lr", 0.01, 0.3), SweepAxis("momentum", 0.0, 0.95)
    *_, result = sweep_map(s, racer, x, y, grid=16, steps=400)
    assert isinstance(result, SweepMap)
    curves = momentum_curves(s, racer, x, y)
    edge = next(c for c in curves if c.kind == "stability")
    np.testing.assert_allclose(edge.x, 2 * (1 + edge.y) / 20)  # lr on x, momentum on y
    lr, beta = np.meshgrid(result.x, result.y)  # [iy, ix]
    ratio = lr * 20 / (2 * (1 + beta))
    assert result.diverged[ratio > 1.05].all()
    assert not result.diverged[ratio < 0.95].any()


def test_fastest_momentum_curve_passes_through_the_classic_optimum():
    s = get_surface("ill_conditioned")
    racer = RacerSpec(OptimizerSpec("momentum", {}))
    x, y = SweepAxis("momentum", 0.0, 0.99), SweepAxis("lr", 1e-3, 0.3, True)  # lr on y
    best = next(c for c in momentum_curves(s, racer, x, y, n=4000) if c.kind == "optimal")
    k = 20.0
    lr_opt = (2 / (1 + np.sqrt(20))) ** 2
    beta_opt = ((np.sqrt(k) - 1) / (np.sqrt(k) + 1)) ** 2
    i = np.argmin(best.x)  # the lowest momentum on the curve is the optimum
    np.testing.assert_allclose([best.y[i], best.x[i]], [lr_opt, beta_opt], rtol=2e-3)


def test_no_curves_where_the_theory_does_not_apply():
    racer = RacerSpec(OptimizerSpec("momentum", {}))
    x, y = SweepAxis("lr", 0.01, 0.3), SweepAxis("momentum", 0.0, 0.95)
    assert momentum_curves(get_surface("rosenbrock"), racer, x, y) == []
    adam = RacerSpec(OptimizerSpec("adam", {}))
    b1 = SweepAxis("beta1", 0.0, 0.9)
    assert momentum_curves(get_surface("ill_conditioned"), adam, x, b1) == []
    noisy = RacerSpec(OptimizerSpec("momentum", {}), noise=0.1)
    assert momentum_curves(get_surface("ill_conditioned"), noisy, x, y) == []
    one = momentum_curves(get_surface("quadratic"), racer, x, SweepAxis("noise", 0, 1))
    assert one == []  # noise is swept: the theory is for the noiseless iteration
