"""Offscreen rendering of a race: the same SurfaceView the window shows, drawn at any size.

Used for exports from the window (so the visible view is never resized) and by the command
line, which needs no display (Qt's offscreen platform).
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.views.surface_view import SurfaceView
from core.race.race import Race


def draw_race(view: SurfaceView, race: Race, colours: list[str]) -> None:
    """Paths, heads and the start marker of ``race`` on ``view`` (already showing its surface)."""
    pos = race.history.get("pos")  # (T, R, K, 2)
    paths = [pos[:, r, 0] for r in range(race.n_racers)]
    heads = race.positions[:, 0]  # (R, 2)
    diverged = [bool(d) for d in (race.diverged_at[:, 0] >= 0)]
    enabled = [s.enabled for s in race.specs]
    view.update_race(paths, heads, diverged, enabled)


class OffscreenView:
    """A SurfaceView that is laid out and painted but never put on a screen."""

    def __init__(self, width: int, height: int, dark: bool = True) -> None:
        if QtWidgets.QApplication.instance() is None:
            raise RuntimeError("a QApplication must exist")
        self.view = SurfaceView()
        self.view.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen)
        self.view.set_theme(dark)
        self.view.resize(width, height)
        self.view.show()

    def show_race(
        self,
        race: Race,
        colours: list[str],
        basins: np.ndarray | None = None,
        scale: str | None = None,
    ) -> None:
        v = self.view
        if v.surface is not race.surface or (scale and scale != v.scale):
            v.set_surface(race.surface, scale)
        v.set_racers(colours, [s.label for s in race.specs])
        v.set_start(*race.starts[0])
        v.show_basins(basins)
        draw_race(v, race, colours)

    def image(self) -> QtGui.QImage:
        QtWidgets.QApplication.processEvents()
        return self.view.grab().toImage()

    def svg(self) -> bytes:
        """The view as SVG: lines and text as vectors, the heatmap as an embedded image."""
        from app.export import widget_svg

        return widget_svg(self.view, "LossLab race")

    def close(self) -> None:
        self.view.close()
        self.view.deleteLater()


def race_frames(
    surface,
    racers,
    start,
    colours: list[str],
    steps: int,
    frames: int,
    size: tuple[int, int],
    dark: bool,
    scale: str | None = None,
    progress=None,
) -> list[QtGui.QImage]:
    """The race replayed from its start: ``frames`` pictures evenly spread over ``steps`` (the
    frames of both the GIF and the MP4)."""
    from app import export

    replay = Race(surface, racers, starts=start)
    view = OffscreenView(*size, dark=dark)

    def step_and_grab(n: int) -> QtGui.QImage:
        replay.step(n)
        view.show_race(replay, colours, scale=scale)
        return view.image()

    try:
        return export.render_frames(step_and_grab, steps, frames, progress)
    finally:
        view.close()


HEATMAP_RAMP = 48  # colours of the heatmap's colour map reserved in a GIF's palette


def gif_of(frames: list[QtGui.QImage], colours: list[str]) -> bytes:
    """Race frames as a GIF that keeps the racers' colours exactly and the heatmap's colour
    map whole: median cut, which picks colours by pixel count, left the few dark pixels of
    the minima and of the colour bar's low end to greys (they looked posterised)."""
    import pyqtgraph as pg

    from app import export

    lut = pg.colormap.get("viridis").getLookupTable(nPts=HEATMAP_RAMP, alpha=False)  # (n, 3)
    ramp = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in np.asarray(lut, dtype=int)]
    return export.gif_bytes(frames, colours=256, keep=[*colours, *ramp])


def race_gif(surface, racers, start, colours: list[str], *args, **kwargs) -> bytes:
    """The race as an animated GIF (arguments as :func:`race_frames`)."""
    return gif_of(race_frames(surface, racers, start, colours, *args, **kwargs), colours)


def race_mp4(surface, racers, start, colours: list[str], *args, **kwargs) -> bytes:
    """The race as an H.264 MP4 (arguments as :func:`race_frames`; ``size`` should be even)."""
    from app import export

    return export.mp4_bytes(race_frames(surface, racers, start, colours, *args, **kwargs))


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` rounded down to even sides (H.264 in yuv420p needs them)."""
    w, h = size
    return max(2, w - w % 2), max(2, h - h % 2)
