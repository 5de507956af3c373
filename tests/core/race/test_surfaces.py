import math

import numpy as np
import pytest
import torch

from core.race.surfaces import CATALOGUE, get_surface, nearest_minimum

# Literature values, typed independently of core/surfaces.py.
LITERATURE = {
    "quadratic": [(0, 0, 0)],
    "ill_conditioned": [(0, 0, 0)],
    "rotated_bowl": [(0, 0, 0)],
    "rosenbrock": [(1, 1, 0)],
    "beale": [(3, 0.5, 0)],
    "himmelblau": [
        (3, 2, 0),
        (-2.805118, 3.131312, 0),
        (-3.779310, -3.283186, 0),
        (3.584428, -1.848126, 0),
    ],
    "booth": [(1, 3, 0)],
    "matyas": [(0, 0, 0)],
    "rastrigin": [(0, 0, 0)],
    "ackley": [(0, 0, 0)],
    "goldstein_price": [(0, -1, 3)],
    "six_hump_camel": [(0.0898, -0.7126, -1.0316), (-0.0898, 0.7126, -1.0316)],
    "styblinski_tang": [(-2.903534, -2.903534, -78.33233)],
}


def test_catalogue_has_at_least_twelve_classics():
    assert len(CATALOGUE) >= 12
    assert set(LITERATURE) <= set(CATALOGUE)


@pytest.mark.parametrize("key", sorted(LITERATURE))
def test_minima_match_literature_and_are_stationary(key):
    s = get_surface(key)
    for lx, ly, lvalue in LITERATURE[key]:
        i, dist = nearest_minimum(s, lx, ly)
        assert dist < 1e-3, f"{key}: no listed minimum near ({lx}, {ly})"
        m = s.minima[i]
        x = torch.tensor(m.x, dtype=torch.float64, requires_grad=True)
        y = torch.tensor(m.y, dtype=torch.float64, requires_grad=True)
        f = s(x, y)
        assert f.item() == pytest.approx(lvalue, abs=1e-4)
        assert m.value == pytest.approx(lvalue, abs=1e-4)
        f.backward()
        assert abs(x.grad.item()) < 1e-6 and abs(y.grad.item()) < 1e-6


@pytest.mark.parametrize("key", sorted(CATALOGUE))
def test_gradients_match_finite_differences(key):
    s = get_surface(key)
    xmin, xmax, ymin, ymax = s.bounds
    gen = np.random.default_rng(0)
    pts = gen.uniform([xmin, ymin], [xmax, ymax], size=(20, 2))
    x = torch.tensor(pts[:, 0], requires_grad=True)
    y = torch.tensor(pts[:, 1], requires_grad=True)
    s(x, y).sum().backward()
    h = 1e-6
    with torch.no_grad():
        xd, yd = torch.tensor(pts[:, 0]), torch.tensor(pts[:, 1])
        fdx = (s(xd + h, yd) - s(xd - h, yd)) / (2 * h)
        fdy = (s(xd, yd + h) - s(xd, yd - h)) / (2 * h)
    scale = 1 + fdx.abs() + fdy.abs()
    assert torch.all((x.grad - fdx).abs() / scale < 1e-5)
    assert torch.all((y.grad - fdy).abs() / scale < 1e-5)


@pytest.mark.parametrize("key", sorted(CATALOGUE))
def test_every_surface_is_complete(key):
    s = get_surface(key)
    xmin, xmax, ymin, ymax = s.bounds
    assert xmin < xmax and ymin < ymax
    assert xmin <= s.start[0] <= xmax and ymin <= s.start[1] <= ymax
    assert s.scale in ("linear", "log")
    assert s.name and s.caption and s.formula
    _, _, z = s.grid(64)
    assert z.shape == (64, 64) and torch.isfinite(z).all()
    if s.scale == "log":
        assert z.min() >= 0  # a log colour scale needs a non-negative surface


def test_grid_is_row_major_in_y():
    # An asymmetric surface: z[i, j] must be f(xs[j], ys[i]).
    s = get_surface("rosenbrock")
    xs, ys, z = s.grid(33, dtype=torch.float64)
    i, j = 5, 27
    assert z[i, j].item() == pytest.approx(s(xs[j], ys[i]).item())
    assert z[i, j].item() != pytest.approx(s(xs[i], ys[j]).item())


def test_unknown_surface_names_choices():
    with pytest.raises(ValueError, match="rosenbrock"):
        get_surface("rosenbrok")


def test_grid_resolution_is_validated():
    with pytest.raises(ValueError, match="resolution"):
        get_surface("quadratic").grid(1)


def test_saddles_have_no_minimum():
    for key in ("saddle", "monkey_saddle"):
        s = get_surface(key)
        assert s.minima == ()
        assert nearest_minimum(s, 0.0, 0.0) == (-1, math.inf)
