"""Classic 2-D loss surfaces as torch functions, and the catalogue that describes them.

Every surface is one torch function of two tensors ``(x, y)`` of any (broadcastable) shape, so
the same code evaluates a 1024x1024 grid for the heatmap and drives autograd for the racers.
User-typed formulas live in :mod:`core.race.formula` and produce the same :class:`Surface`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

SurfaceFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ColorScale = Literal["linear", "log"]


@dataclass(frozen=True)
class Minimum:
    """A known minimum of a surface."""

    x: float
    y: float
    value: float
    is_global: bool = True


@dataclass(frozen=True)
class Surface:
    """A 2-D test function with everything needed to draw it and race on it."""

    key: str  # catalogue key, e.g. "rosenbrock"
    name: str  # display name
    fn: SurfaceFn  # torch function of (x, y) tensors of any shape
    bounds: tuple[float, float, float, float]  # (xmin, xmax, ymin, ymax) for plotting
    start: tuple[float, float]  # a good default start point
    minima: tuple[Minimum, ...] = ()  # known minima (empty for saddles)
    scale: ColorScale = "linear"  # suggested colour scale
    formula: str = ""  # human-readable formula
    caption: str = ""  # one line on what the surface teaches

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fn(x, y)

    def grid(
        self, resolution: int = 256, dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Evaluate the surface on a ``resolution x resolution`` grid over its bounds.

        Returns ``(xs, ys, z)`` with ``z[i, j] = f(xs[j], ys[i])`` (row-major: rows are y).
        """
        if not 2 <= resolution <= 4096:
            raise ValueError(f"Invalid grid resolution: {resolution} (allowed 2 .. 4096)")
        xmin, xmax, ymin, ymax = self.bounds
        xs = torch.linspace(xmin, xmax, resolution, dtype=dtype)  # (R,)
        ys = torch.linspace(ymin, ymax, resolution, dtype=dtype)  # (R,)
        with torch.no_grad():
            z = self.fn(xs[None, :], ys[:, None])  # (R, R)
            z = torch.broadcast_to(z, (resolution, resolution))
        return xs, ys, z

    @property
    def global_min_value(self) -> float | None:
        values = [m.value for m in self.minima]
        return min(values) if values else None


# --- the functions -------------------------------------------------------------------------


def _quadratic(x, y):
    return x**2 + y**2


def _ill_conditioned(x, y):
    return 0.5 * x**2 + 10.0 * y**2  # condition number 20


_C45 = math.sqrt(0.5)


def _rotated_ill_conditioned(x, y):
    u = _C45 * (x + y)  # rotated by 45 degrees: the long axis is the diagonal
    v = _C45 * (x - y)
    return 0.5 * u**2 + 10.0 * v**2


def _rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _beale(x, y):
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _himmelblau(x, y):
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def _booth(x, y):
    return (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2


def _matyas(x, y):
    return 0.26 * (x**2 + y**2) - 0.48 * x * y


def _rastrigin(x, y):
    two_pi = 2 * math.pi
    return 20 + x**2 - 10 * torch.cos(two_pi * x) + y**2 - 10 * torch.cos(two_pi * y)


# Ackley has a kink at the origin (|r| like); a tiny epsilon inside the root makes autograd
# return the zero subgradient there instead of 0/0 = nan, and changes values by < 1e-20.
_ACKLEY_EPS2 = 1e-40


def _ackley(x, y):
    r = torch.sqrt(0.5 * (x**2 + y**2) + _ACKLEY_EPS2)
    two_pi = 2 * math.pi
    return (
        -20 * torch.exp(-0.2 * r)
        - torch.exp(0.5 * (torch.cos(two_pi * x) + torch.cos(two_pi * y)))
        + math.e
        + 20
    )


def _goldstein_price(x, y):
    a = 1 + (x + y + 1) ** 2 * (19 - 14 * x + 3 * x**2 - 14 * y + 6 * x * y + 3 * y**2)
    b = 30 + (2 * x - 3 * y) ** 2 * (18 - 32 * x + 12 * x**2 + 48 * y - 36 * x * y + 27 * y**2)
    return a * b


def _six_hump_camel(x, y):
    return (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2


def _saddle(x, y):
    return x**2 - y**2


def _monkey_saddle(x, y):
    return x**3 - 3 * x * y**2


def _styblinski_tang(x, y):
    return 0.5 * (x**4 - 16 * x**2 + 5 * x + y**4 - 16 * y**2 + 5 * y)


# Styblinski-Tang separates: g(t) = t^4 - 16 t^2 + 5 t has minima at these two points.
_ST_LO, _ST_HI = -2.9035340276126953, 2.7468027709693316


def _st_value(a: float, b: float) -> float:
    return 0.5 * sum(t**4 - 16 * t**2 + 5 * t for t in (a, b))


_SURFACES: tuple[Surface, ...] = (
    Surface(
        "quadratic",
        "Quadratic bowl",
        _quadratic,
        (-2.0, 2.0, -2.0, 2.0),
        (-1.6, 1.4),
        (Minimum(0.0, 0.0, 0.0),),
        "linear",
        "x^2 + y^2",
        "The friendliest surface: every optimizer heads straight downhill.",
    ),
    Surface(
        "ill_conditioned",
        "Ill-conditioned bowl",
        _ill_conditioned,
        (-2.0, 2.0, -2.0, 2.0),
        (-1.8, 1.0),
        (Minimum(0.0, 0.0, 0.0),),
        "linear",
        "0.5 x^2 + 10 y^2",
        "Steep in y, flat in x (condition number 20): plain SGD zig-zags, momentum helps.",
    ),
    Surface(
        "rotated_bowl",
        "Rotated ill-conditioned bowl",
        _rotated_ill_conditioned,
        (-2.0, 2.0, -2.0, 2.0),
        (-1.6, -0.4),
        (Minimum(0.0, 0.0, 0.0),),
        "linear",
        "0.5 u^2 + 10 v^2,  u = (x+y)/sqrt2, v = (x-y)/sqrt2",
        "The same bowl turned 45 degrees: per-coordinate methods (Adam, RMSprop) lose their edge.",
    ),
    Surface(
        "rosenbrock",
        "Rosenbrock",
        _rosenbrock,
        (-2.0, 2.0, -1.0, 3.0),
        (-1.5, 2.0),
        (Minimum(1.0, 1.0, 0.0),),
        "log",
        "(1 - x)^2 + 100 (y - x^2)^2",
        "A long curved valley: easy to find, slow to follow to the minimum at (1, 1).",
    ),
    Surface(
        "beale",
        "Beale",
        _beale,
        (-4.5, 4.5, -4.5, 4.5),
        (1.0, 1.5),
        (Minimum(3.0, 0.5, 0.0),),
        "log",
        "(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2",
        "Flat plateaus and sharp ridges: step sizes that suit one region fail in another.",
    ),
    Surface(
        "himmelblau",
        "Himmelblau",
        _himmelblau,
        (-5.0, 5.0, -5.0, 5.0),
        (-0.27, -0.9),
        (
            Minimum(3.0, 2.0, 0.0),
            Minimum(-2.805118086952745, 3.131312518250573, 0.0),
            Minimum(-3.779310253377747, -3.283185991286170, 0.0),
            Minimum(3.584428340330492, -1.848126526964404, 0.0),
        ),
        "log",
        "(x^2 + y - 11)^2 + (x + y^2 - 7)^2",
        "Four equal minima: where you start decides where you end (try the basin map).",
    ),
    Surface(
        "booth",
        "Booth",
        _booth,
        (-10.0, 10.0, -10.0, 10.0),
        (-8.0, -6.0),
        (Minimum(1.0, 3.0, 0.0),),
        "log",
        "(x + 2y - 7)^2 + (2x + y - 5)^2",
        "A tilted quadratic valley with one minimum at (1, 3).",
    ),
    Surface(
        "matyas",
        "Matyas",
        _matyas,
        (-10.0, 10.0, -10.0, 10.0),
        (8.0, -6.0),
        (Minimum(0.0, 0.0, 0.0),),
        "log",
        "0.26 (x^2 + y^2) - 0.48 x y",
        "A very flat diagonal valley: gradients vanish long before the minimum.",
    ),
    Surface(
        "rastrigin",
        "Rastrigin",
        _rastrigin,
        (-5.12, 5.12, -5.12, 5.12),
        (3.2, -2.6),
        (Minimum(0.0, 0.0, 0.0),),
        "linear",
        "20 + x^2 - 10 cos(2 pi x) + y^2 - 10 cos(2 pi y)",
        "A bowl covered in local minima: gradient descent stops in the nearest dimple.",
    ),
    Surface(
        "ackley",
        "Ackley",
        _ackley,
        (-5.0, 5.0, -5.0, 5.0),
        (3.4, -2.8),
        (Minimum(0.0, 0.0, 0.0),),
        "linear",
        "-20 exp(-0.2 sqrt(0.5 (x^2+y^2))) - exp(0.5 (cos 2 pi x + cos 2 pi y)) + e + 20",
        "A nearly flat egg-crate with a deep funnel in the middle.",
    ),
    Surface(
        "goldstein_price",
        "Goldstein-Price",
        _goldstein_price,
        (-2.0, 2.0, -2.0, 2.0),
        (-1.2, 1.4),
        (Minimum(0.0, -1.0, 3.0),),
        "log",
        "[1 + (x+y+1)^2 (19 - 14x + 3x^2 - 14y + 6xy + 3y^2)] [30 + (2x-3y)^2 (...)]",
        "Values span six orders of magnitude: only the log colour scale shows its shape.",
    ),
    Surface(
        "six_hump_camel",
        "Six-hump camel",
        _six_hump_camel,
        (-2.0, 2.0, -1.1, 1.1),
        (-1.6, -0.9),
        (
            Minimum(0.08984201368301331, -0.7126564032704135, -1.031628453489877),
            Minimum(-0.08984201368301331, 0.7126564032704135, -1.031628453489877),
        ),
        "linear",
        "(4 - 2.1 x^2 + x^4/3) x^2 + x y + (4 y^2 - 4) y^2",
        "Six valleys, two of them global: a small landscape with many ways to get stuck.",
    ),
    Surface(
        "saddle",
        "Saddle",
        _saddle,
        (-2.0, 2.0, -2.0, 2.0),
        (-1.8, 0.0),
        (),
        "linear",
        "x^2 - y^2",
        "Started on the ridge, plain gradient descent stalls at the saddle; noise escapes it.",
    ),
    Surface(
        "monkey_saddle",
        "Monkey saddle",
        _monkey_saddle,
        (-2.0, 2.0, -2.0, 2.0),
        (1.5, 0.05),
        (),
        "linear",
        "x^3 - 3 x y^2",
        "A flat saddle with three downhill valleys: the gradient vanishes to second order.",
    ),
    Surface(
        "styblinski_tang",
        "Styblinski-Tang",
        _styblinski_tang,
        (-5.0, 5.0, -5.0, 5.0),
        (0.3, 0.2),
        (
            Minimum(_ST_LO, _ST_LO, _st_value(_ST_LO, _ST_LO)),
            Minimum(_ST_LO, _ST_HI, _st_value(_ST_LO, _ST_HI), is_global=False),
            Minimum(_ST_HI, _ST_LO, _st_value(_ST_HI, _ST_LO), is_global=False),
            Minimum(_ST_HI, _ST_HI, _st_value(_ST_HI, _ST_HI), is_global=False),
        ),
        "linear",
        "0.5 (x^4 - 16 x^2 + 5 x + y^4 - 16 y^2 + 5 y)",
        "Four minima of different depths: the nearest one is usually not the best.",
    ),
)

CATALOGUE: dict[str, Surface] = {s.key: s for s in _SURFACES}


def surface_names() -> list[str]:
    """Catalogue keys in display order."""
    return list(CATALOGUE)


def get_surface(key: str) -> Surface:
    """Return the catalogue surface ``key``; raise ``ValueError`` naming the valid keys."""
    try:
        return CATALOGUE[key]
    except KeyError:
        raise ValueError(
            f"Unknown surface {key!r}; choose one of: {', '.join(CATALOGUE)}"
        ) from None


def nearest_minimum(surface: Surface, x: float, y: float) -> tuple[int, float]:
    """Index of and distance to the known minimum nearest to ``(x, y)``; ``(-1, inf)`` if none."""
    best, dist = -1, math.inf
    for i, m in enumerate(surface.minima):
        d = math.hypot(x - m.x, y - m.y)
        if d < dist:
            best, dist = i, d
    return best, dist


__all__ = [
    "CATALOGUE",
    "ColorScale",
    "Minimum",
    "Surface",
    "SurfaceFn",
    "get_surface",
    "nearest_minimum",
    "surface_names",
]
