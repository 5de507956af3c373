"""The Race on the 3-D terrain: the surface as heights (scaled like the heatmap) and the paths."""

from __future__ import annotations

import numpy as np

from core.race.race import Race
from core.race.surfaces import Surface


def show_surface_3d(view3d, surface: Surface, scale: str, overlay: np.ndarray | None) -> None:
    """``surface`` on the 3-D view ``view3d`` (linear or log heights as the heatmap's colours),
    coloured by ``overlay`` (a basin map's RGBA) when given, its known minima marked."""
    import torch

    from app.views.surface_view import display_transform, display_values

    xs, ys, z = surface.grid(256, dtype=torch.float64)
    z = z.numpy()
    shown, lo, hi = display_values(z, scale)
    to_shown = display_transform(np.where(np.isfinite(z), z, np.nan), scale)

    def height_of(points: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            t = torch.as_tensor(points, dtype=torch.float64)
            return to_shown(surface.fn(t[:, 0], t[:, 1]).numpy())

    view3d.set_grid(xs.numpy(), ys.numpy(), shown, lo, hi, height_of)
    view3d.set_overlay(overlay)
    view3d.set_minima(np.array([(m.x, m.y) for m in surface.minima]).reshape(-1, 2))


def draw_race_3d(view3d, race: Race, colours: list[str]) -> None:
    """The enabled racers' paths and heads on the 3-D view."""
    pos = race.history.get("pos")  # (T, R, K, 2)
    on = [r for r, s in enumerate(race.specs) if s.enabled]
    view3d.set_paths([pos[:, r, 0] for r in on], [colours[r] for r in on], race.positions[on, 0])
