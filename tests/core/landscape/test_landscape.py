"""Loss landscapes: directions, the fast plane against the naive loop and against algebra."""

import numpy as np
import pytest
import torch
from torch import nn

from core.landscape.curvature import hessian_eigs
from core.landscape.directions import (
    LandscapeError,
    flat_parameters,
    init_final_directions,
    pca_directions,
    project,
    random_directions,
)
from core.landscape.evaluator import PlaneEvaluator, naive_loss
from core.landscape.plane import Landscape, compute, interpolate, path_losses
from core.train.losses import LossSpec, build_loss
from core.train.models import LeNet5
from core.train.tasks import build_task


@pytest.fixture(scope="module")
def lenet():
    # seed 0: the synthetic digits the shared trained_run and most LeNet tests draw (kept)
    setup = build_task("lenet", dataset="synthetic", limit=400, seed=0)
    x, y = setup.val_x[:100], setup.val_y[:100]
    return setup.model.eval(), build_loss(LossSpec("cross_entropy")), x, y


def test_filter_normalisation_matches_each_filter_of_the_weights(lenet):
    model, *_ = lenet
    d1, d2 = random_directions(model, seed=3)
    assert not torch.equal(d1, d2)
    start = 0
    for p in model.parameters():
        n = p.numel()
        for d in (d1, d2):
            dp = d[start : start + n].view(p.shape)
            if p.dim() == 1:
                assert torch.count_nonzero(dp) == 0  # biases ignored
            else:
                np.testing.assert_allclose(
                    dp.reshape(p.shape[0], -1).norm(dim=1).numpy(),
                    p.detach().reshape(p.shape[0], -1).norm(dim=1).numpy(),
                    rtol=1e-5,
                )
        start += n
    again, _ = random_directions(model, seed=3)
    assert torch.equal(again, d1)  # seeded


def test_fast_plane_equals_the_naive_loop(lenet):
    model, loss_fn, x, y = lenet
    c = flat_parameters(model)
    d1, d2 = random_directions(model, seed=0)
    ev = PlaneEvaluator(model, loss_fn, x, y, c, d1, d2, classes=10, batch=30)
    for a, b in [(0.0, 0.0), (0.5, -0.25), (-1.0, 1.0), (0.2, 0.9)]:
        fast_loss, fast_acc = ev.at(a, b)
        slow_loss, slow_acc = naive_loss(model, loss_fn, x, y, c + a * d1 + b * d2, classes=10)
        assert fast_loss == pytest.approx(slow_loss, rel=1e-5)
        assert fast_acc == pytest.approx(slow_acc, abs=1e-9)


def test_the_callers_model_is_never_modified(lenet):
    model, loss_fn, x, y = lenet
    before = {k: v.clone() for k, v in model.state_dict().items()}
    c = flat_parameters(model)
    d1, d2 = random_directions(model)
    land = compute(PlaneEvaluator(model, loss_fn, x, y, c, d1, d2, classes=10), 1.0, 5)
    interpolate(model, loss_fn, x, y, c, c + d1, points=5, classes=10)
    hessian_eigs(model, loss_fn, x[:20], y[:20], k=1, iters=3)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert land.loss.shape == (5, 5) and land.acc.shape == (5, 5) and land.complete


def _quadratic(seed=0):
    """Linear regression with MSE: the loss is an exact quadratic in (w, b)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(50, 3, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64) + 0.3
    model = nn.Linear(3, 1).double()
    return model, build_loss(LossSpec("mse")), x, y


def test_a_quadratic_models_landscape_is_the_analytic_quadratic():
    model, loss_fn, x, y = _quadratic()
    c = flat_parameters(model)
    d1 = torch.tensor([1.0, 0.0, 0.5, 0.2], dtype=torch.float64)
    d2 = torch.tensor([0.0, 1.0, -1.0, 0.0], dtype=torch.float64)
    land = compute(PlaneEvaluator(model, loss_fn, x, y, c, d1, d2), span=2.0, resolution=9)

    def residual(theta):  # parameters(): weight (1, 3), then bias (1,)
        return (x @ theta[:3].reshape(3, 1) + theta[3] - y).numpy().ravel()

    r0, r1, r2 = residual(c), residual(d1) + y.numpy().ravel(), residual(d2) + y.numpy().ravel()
    a, b = np.meshgrid(land.alphas, land.betas)
    expected = np.mean(
        (r0[None, None] + a[..., None] * r1[None, None] + b[..., None] * r2[None, None]) ** 2,
        axis=-1,
    )
    np.testing.assert_allclose(land.loss, expected, rtol=1e-10)


def test_hessian_eigenvalues_of_a_known_quadratic():
    model, loss_fn, x, y = _quadratic()
    xa = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    exact = np.sort(np.linalg.eigvalsh((2 / len(x) * xa.T @ xa).numpy()))[::-1]
    values, vectors = hessian_eigs(model, loss_fn, x, y, k=2, iters=500, tol=1e-12)
    np.testing.assert_allclose(values, exact[:2], rtol=1e-6)
    assert vectors.shape == (2, 4)
    assert abs(float(vectors[0] @ vectors[1])) < 1e-4


def test_pca_of_a_straight_line_trajectory_is_that_line():
    centre = torch.randn(40, dtype=torch.float64)
    u = torch.randn(40, dtype=torch.float64)
    t = np.linspace(3.0, 0.0, 25)
    traj = np.stack([(centre + s * u).numpy() for s in t])
    d1, d2, explained = pca_directions(traj, centre)
    assert abs(float(d1 @ u) / float(u.norm())) == pytest.approx(1.0, abs=1e-10)
    assert explained[0] == pytest.approx(1.0, abs=1e-12) and explained[1] < 1e-20
    with pytest.raises(LandscapeError, match="at least 3"):
        pca_directions(traj[:2], centre)


def test_projection_recovers_points_on_the_plane_and_measures_the_rest():
    rng = np.random.default_rng(0)
    c, d1, d2 = rng.normal(size=(3, 30))
    coords = rng.normal(size=(6, 2))
    on = c + coords[:, :1] * d1 + coords[:, 1:] * d2
    got, off = project(on, c, d1, d2)
    np.testing.assert_allclose(got, coords, rtol=1e-10)
    assert np.all(off < 1e-10)
    normal = rng.normal(size=30)
    normal -= normal @ d1 / (d1 @ d1) * d1
    normal -= (normal @ d2) / (d2 @ d2) * d2  # not exactly orthogonal to d1 now; small is fine
    _, off2 = project(on + 5 * normal, c, d1, d2)
    assert np.all(off2 > 0.1)


def test_interpolation_ends_at_the_two_weight_vectors(lenet):
    model, loss_fn, x, y = lenet
    start = flat_parameters(LeNet5())
    end = flat_parameters(model)
    line = interpolate(model, loss_fn, x, y, start, end, points=5, lo=0.0, hi=1.0, classes=10)
    assert line.loss[0] == pytest.approx(naive_loss(model, loss_fn, x, y, start)[0], rel=1e-5)
    assert line.loss[-1] == pytest.approx(naive_loss(model, loss_fn, x, y, end)[0], rel=1e-5)
    truth = path_losses(model, loss_fn, x, y, np.stack([start.numpy(), end.numpy()]))
    np.testing.assert_allclose(truth, line.loss[[0, -1]], rtol=1e-5)


def test_init_final_directions(lenet):
    model, *_ = lenet
    start = flat_parameters(LeNet5())
    d1, d2 = init_final_directions(start, model)
    torch.testing.assert_close(d1, flat_parameters(model) - start)
    assert abs(float(d1 @ d2)) < 1e-3 * float(d1.norm() * d2.norm())
    assert float(d2.norm()) == pytest.approx(float(d1.norm()), rel=1e-5)


def test_the_sine_fits_four_parameters():
    setup = build_task("sine")
    model, loss_fn = setup.model, build_loss(LossSpec("mse", "sum"))
    c = flat_parameters(model)
    d1, d2 = random_directions(model, ignore_bias_bn=False)
    ev = PlaneEvaluator(model, loss_fn, setup.val_x, setup.val_y, c, d1, d2)
    slow, _ = naive_loss(model, loss_fn, setup.val_x, setup.val_y, c + 0.3 * d1 - 0.7 * d2)
    assert ev.at(0.3, -0.7)[0] == pytest.approx(slow, rel=1e-5)


def test_save_and_load(tmp_path, lenet):
    model, loss_fn, x, y = lenet
    c = flat_parameters(model)
    d1, d2 = random_directions(model)
    land = compute(
        PlaneEvaluator(model, loss_fn, x, y, c, d1, d2, classes=10),
        0.5,
        3,
        meta={"task": "lenet"},
    )
    land.save(tmp_path / "l.npz")
    back = Landscape.load(tmp_path / "l.npz")
    np.testing.assert_array_equal(back.loss, land.loss)
    np.testing.assert_array_equal(back.d2, land.d2)
    assert back.meta == {"task": "lenet"} and back.directions == "random" and back.n_eval == 100
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(LandscapeError, match="not a readable landscape"):
        Landscape.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "objects.npz", info=np.array([{"a": 1}], dtype=object))
    with pytest.raises(LandscapeError, match="pickled objects") as info:
        Landscape.load(tmp_path / "objects.npz")
    assert "allow_pickle" not in str(info.value)
    with pytest.raises(LandscapeError, match="no landscape file"):
        Landscape.load(tmp_path / "missing.npz")


# ~7 s of CPU whatever the model: importing the compiler, compiling the kernels and
# inductor's probes of the CPU (child processes), even with its on-disk cache warm
@pytest.mark.slow
def test_compiled_plane_gives_the_eager_numbers(lenet):
    model, loss_fn, x, y = lenet
    c = flat_parameters(model)
    d1, d2 = random_directions(model, seed=2)
    eager = PlaneEvaluator(model, loss_fn, x, y, c, d1, d2, classes=10, batch=50)
    compiled = PlaneEvaluator(model, loss_fn, x, y, c, d1, d2, classes=10, batch=50)
    compiled.compile()
    assert compiled.compiled, compiled.compile_error
    alphas = [-0.5, 0.0, 0.7]
    for (le, ae), (lc, ac) in zip(eager.row(alphas, 0.3), compiled.row(alphas, 0.3), strict=True):
        assert lc == pytest.approx(le, rel=1e-6) and ac == ae
