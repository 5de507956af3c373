"""The landscape as 3-D terrain: the plane's heights, the checkpoint and the projected path."""

from __future__ import annotations

import numpy as np

from app.landscape.view import PATH_COLOUR


def show_terrain(view3d, view, path) -> None:
    """Draw ``view``'s grid (a LandscapeView) on ``view3d`` (a Surface3DView), with ``path``
    (a PathResult, or None) where it lies over the grid."""
    if view.loss is None or not np.isfinite(view.loss).any():
        return
    from app.views.surface_view import display_transform, display_values

    shown, lo, hi = display_values(view.loss, view.scale)
    to_shown = display_transform(np.where(np.isfinite(view.loss), view.loss, np.nan), view.scale)
    xs, ys, loss = view.alphas, view.betas, view.loss

    def height_of(points: np.ndarray) -> np.ndarray:
        return to_shown(_bilinear(xs, ys, loss, points))

    view3d.set_grid(xs, ys, shown, lo, hi, height_of)
    view3d.set_minima(np.zeros((1, 2)))  # the checkpoint, the plane's centre
    if view.runs.paths:  # several runs: each in its colour
        from app.landscape.multiview import colour_of

        coords = [_inside(p.coords, xs, ys) for p in view.runs.paths]
        colours = [colour_of(p, k) for k, p in enumerate(view.runs.paths)]
        view3d.set_paths(coords, colours)
    elif path is not None:
        view3d.set_paths([_inside(path.coords, xs, ys)], [PATH_COLOUR])
    else:
        view3d.set_paths([], [])


class TerrainPanel:
    """Mixed into LandscapeWorkspace: the 3-D view beside the 2-D one (``view3d``, made when
    first asked for, in ``view_stack``), following ``view``'s grid and ``path``."""

    def _log_toggled(self, on: bool) -> None:
        self.view.set_scale("log" if on else "linear")
        self._update_3d()

    def set_3d(self, on: bool) -> bool:
        """The landscape as terrain; False (and a message) where OpenGL is missing."""
        self.view3d_box.blockSignals(True)
        self.view3d_box.setChecked(on)
        self.view3d_box.blockSignals(False)
        if not on:
            self.view_stack.setCurrentWidget(self.view)
            return True
        from app.views.surface3d import Surface3DView, gl_problem

        problem = gl_problem()
        if problem:
            self.view3d_box.blockSignals(True)
            self.view3d_box.setChecked(False)
            self.view3d_box.blockSignals(False)
            self.message.emit(f"3-D view unavailable: {problem}. Showing the 2-D view.")
            return False
        if self.view3d is None:
            self.view3d = Surface3DView()
            self.view_stack.addWidget(self.view3d)
        self.view_stack.setCurrentWidget(self.view3d)
        self._update_3d()
        return True

    def _update_3d(self) -> None:
        if self.view3d is None or self.view_stack.currentWidget() is not self.view3d:
            return
        show_terrain(self.view3d, self.view, self.path)


def _inside(coords: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The points of a path over the grid (a grid need not be centred on 0)."""
    ok = (xs[0] <= coords[:, 0]) & (coords[:, 0] <= xs[-1])
    ok &= (ys[0] <= coords[:, 1]) & (coords[:, 1] <= ys[-1])
    return coords[ok]


def _bilinear(xs: np.ndarray, ys: np.ndarray, grid: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """``grid[iy, ix]`` interpolated at points ``(N, 2)`` (clamped to the grid)."""
    x = np.clip(pts[:, 0], xs[0], xs[-1])
    y = np.clip(pts[:, 1], ys[0], ys[-1])
    i = np.clip(np.searchsorted(xs, x) - 1, 0, len(xs) - 2)
    j = np.clip(np.searchsorted(ys, y) - 1, 0, len(ys) - 2)
    tx = (x - xs[i]) / (xs[i + 1] - xs[i])
    ty = (y - ys[j]) / (ys[j + 1] - ys[j])
    g = np.nan_to_num(grid, nan=np.nanmax(grid))
    return (
        g[j, i] * (1 - tx) * (1 - ty)
        + g[j, i + 1] * tx * (1 - ty)
        + g[j + 1, i] * (1 - tx) * ty
        + g[j + 1, i + 1] * tx * ty
    )


__all__ = ["TerrainPanel", "show_terrain"]
