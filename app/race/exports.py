"""The Race workspace's exports: the surface view as PNG or SVG, the window, an animated GIF
or an MP4, and the trajectories as CSV or JSON. Each writer raises ``app.export.ExportError``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6 import QtWidgets

from app import export
from app.race.render import OffscreenView, even_size, gif_of, race_frames
from app.workspace import Export

if TYPE_CHECKING:
    from app.race.workspace import RaceWorkspace


def race_exports(ws: RaceWorkspace) -> list[Export]:
    return [
        Export(
            "Surface view as &PNG...",
            "PNG (*.png)",
            "race.png",
            lambda p, size=(1600, 1200): surface_png(ws, p, size),
            ask_size=True,
        ),
        Export("Surface view as &SVG...", "SVG (*.svg)", "race.svg", lambda p: surface_svg(ws, p)),
        Export("&Window as PNG...", "PNG (*.png)", "window.png", lambda p: window_png(ws, p)),
        Export("Race as animated &GIF...", "GIF (*.gif)", "race.gif", lambda p: gif(ws, p)),
        Export("Race as &MP4...", "MP4 video (*.mp4)", "race.mp4", lambda p: mp4(ws, p)),
        Export("Trajectories as &CSV...", "CSV (*.csv)", "race.csv", lambda p: csv(ws, p)),
        Export("Trajectories as &JSON...", "JSON (*.json)", "race.json", lambda p: json(ws, p)),
    ]


def _offscreen(ws: RaceWorkspace, size: tuple[int, int]) -> OffscreenView:
    view = OffscreenView(*size, dark=ws.dark)
    view.show_race(ws.c.race, ws.c.colours(), ws.basin_rgba, ws.view.scale)
    return view


def surface_png(ws: RaceWorkspace, path: str, size: tuple[int, int] = (1600, 1200)) -> None:
    export.check_writable(path)  # before rendering: a large picture takes a while
    view = _offscreen(ws, size)
    try:
        export.write_png(path, view.image())
    finally:
        view.close()


def surface_svg(ws: RaceWorkspace, path: str) -> None:
    view = _offscreen(ws, (1200, 900))
    try:
        export.atomic_write(path, view.svg())
    finally:
        view.close()


def window_png(ws: RaceWorkspace, path: str) -> None:
    export.write_png(path, ws.window().grab().toImage())


def gif(ws: RaceWorkspace, path: str, frames: int = 120, size=(800, 600)) -> None:
    # before rendering: the frames take seconds, and a bad folder was said only after them
    export.check_writable(path)
    export.atomic_write(path, gif_of(_frames(ws, frames, size), ws.c.colours()))


def mp4(ws: RaceWorkspace, path: str, frames: int = 120, size=(1280, 960)) -> None:
    """The GIF's frames as H.264: sharper and smaller for slides (and larger by default)."""
    export.check_writable(path)  # before rendering: a bad folder is said at once
    export.atomic_write(path, export.mp4_bytes(_frames(ws, frames, even_size(size))))


def _frames(ws: RaceWorkspace, frames: int, size: tuple[int, int]) -> list:
    """The race replayed from its start, with a progress dialog while the frames render."""
    c = ws.c
    total = c.race.step_count or min(300, c.max_steps)
    progress = QtWidgets.QProgressDialog("Rendering frames...", "", 0, frames, ws)
    progress.setCancelButton(None)
    progress.setMinimumDuration(300)
    try:
        return race_frames(
            c.surface,
            c.specs,
            c.start,
            c.colours(),
            total,
            frames,
            size,
            ws.dark,
            ws.view.scale,
            lambda i, n: progress.setValue(i),
        )
    finally:
        progress.close()


def csv(ws: RaceWorkspace, path: str) -> None:
    export.atomic_write(path, export.csv_bytes(ws.c.race))


def json(ws: RaceWorkspace, path: str) -> None:
    export.atomic_write(path, export.json_bytes(ws.c.race, ws.c.session().to_dict()))
