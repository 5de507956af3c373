"""3-D views on a real OpenGL context (Xvfb + Mesa). Collected only when LOSSLAB_GL_TESTS=1:
tests/app/test_gl_subprocess.py runs this file under xvfb-run in a separate process, so a
crash in a GL driver cannot take the main test run down with it."""

import numpy as np
import pytest


def _pixels(image) -> np.ndarray:
    """The image's bytes as 32-bit RGB (the same layout whatever it came as)."""
    image = image.convertToFormat(image.Format.Format_RGB32)
    return np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes()).copy()


def _spread(image) -> float:
    return float(_pixels(image).std())


def test_gl_is_available_under_xvfb(qapp):
    from app.views.surface3d import gl_problem

    assert gl_problem() is None


def test_race_in_3d_follows_the_race(race_ws, qtbot):
    r = race_ws
    r.load_preset("sgd_vs_adam_rosenbrock")
    r.c.step(50)
    assert r.set_3d(True)
    assert r.view3d_button.isChecked() and r.showing_3d
    v = r.view3d
    n = sum(s.enabled for s in r.c.specs)
    assert len(v.paths) == n
    assert v.paths[0].shape == (51, 3)  # start + 50 steps
    assert v.path_item.pos.shape == (n * 2 * 50, 3)  # all paths, as segments, in one item
    r.c.step(10)  # the heads move in step with the race
    assert v.paths[0].shape == (61, 3)
    image = v.image((640, 480))
    assert (image.width(), image.height()) == (640, 480)
    assert _spread(image) > 10  # a picture, not a blank
    # exaggeration raises the terrain; reset puts the camera back
    top = float(v.surface._z.max())
    v.exaggeration.setValue(200)
    assert float(v.surface._z.max()) == pytest.approx(2 * top, rel=1e-5)
    v.view.setCameraPosition(distance=20)
    v.reset_camera()
    assert v.view.opts["distance"] == pytest.approx(3.6)
    assert r.set_3d(False) and not r.showing_3d


def test_landscape_in_3d(lw, qtbot, tmp_path):
    from core.landscape.plane import Landscape

    a = np.linspace(-1, 1, 21)
    loss = 1 + np.add.outer(a**2, 2 * a**2)
    path = np.column_stack([np.linspace(-0.8, 0, 10), np.linspace(0.6, 0, 10)])
    land = Landscape(
        a,
        a,
        loss,
        None,
        np.zeros(3),
        np.ones(3),
        np.ones(3),
        "random",
        extras={
            "path": path,
            "path_off": np.zeros(10),
            "path_steps": np.arange(10),
            "path_loss": np.ones(10),
            "path_plane_loss": np.ones(10),
            "path_epochs": np.array([4, 9]),
        },
    )
    lw.show_landscape(land)
    assert lw.set_3d(True)
    qtbot.waitUntil(lambda: lw.view3d.view.isValid(), timeout=5000)  # GL initialised
    assert lw.view3d.paths[0].shape == (10, 3)
    assert _spread(lw.view3d.image((400, 300))) > 10
    assert lw.set_3d(False)


@pytest.fixture
def terrain(qtbot):
    """A 3-D view of Rosenbrock on a 256x256 grid, on screen; its GL released afterwards (also
    when the test fails: GL objects freed after the context crashed the process at exit)."""
    import torch

    from app.views.surface3d import Surface3DView
    from app.views.surface_view import display_values
    from core.race.surfaces import get_surface

    s = get_surface("rosenbrock")
    xs, ys, z = s.grid(256, dtype=torch.float64)
    shown, lo, hi = display_values(z.numpy(), s.scale)
    v = Surface3DView()
    qtbot.addWidget(v)
    v.resize(640, 520)
    v.show()
    v.set_grid(xs.numpy(), ys.numpy(), shown, lo, hi, lambda p: np.zeros(len(p)))
    qtbot.waitUntil(lambda: v.view.isValid(), timeout=5000)
    yield v
    v.release()


def test_terrain_is_drawn_whole_in_chunks(terrain):
    t = terrain.surface
    assert t.triangles == 2 * 255 * 255
    # the chunks follow each other and cover every triangle once, each at most a chunk's size
    ends = [first + count for first, count in t.chunks]
    assert [first for first, _ in t.chunks] == [0, *ends[:-1]]
    assert ends[-1] == 3 * t.triangles
    assert max(count for _, count in t.chunks) <= 3 * t.CHUNK_TRIANGLES


def test_the_screen_shows_what_the_export_shows(terrain, qtbot):
    """Seen from the side where the far slopes are drawn last, a window without a depth
    buffer showed them through the near ones (0.9% of the pixels differed from the export, an
    offscreen framebuffer with depth; 0.002% with one). The window must have a depth buffer
    and show the same picture."""
    v = terrain
    frames = []
    v.view.frameSwapped.connect(lambda: frames.append(1))
    v.view.setCameraPosition(elevation=12, azimuth=210)
    qtbot.waitUntil(lambda: len(frames) > 0, timeout=5000)  # drawn from there
    screen = v.view.grabFramebuffer()
    a = _pixels(screen).astype(int)
    b = _pixels(v.image((screen.width(), screen.height()))).astype(int)
    assert a.shape == b.shape
    different = np.mean(np.abs(a - b) > 40)
    assert different < 0.001, f"{different:.2%} of the screen differs from the export"
    assert v.view.format().depthBufferSize() >= 16


def test_release_frees_every_gl_item_without_a_full_collection(qtbot, monkeypatch):
    """release() frees the GL items while their context is current. The grid and the axes
    were in reference cycles, so it ran a full garbage collection (0.2-0.4 s with torch
    loaded) on every close; now each item goes as soon as it is dropped."""
    import gc
    import weakref

    from app.views.surface3d import Surface3DView

    v = Surface3DView()
    qtbot.addWidget(v)
    v.resize(320, 240)
    v.show()
    a = np.linspace(-1, 1, 16)
    v.set_grid(a, a, np.add.outer(a**2, a**2), 0.0, 2.0, lambda p: np.zeros(len(p)))
    v.set_paths([np.column_stack([a[:5], a[:5]])], ["#e6194b"], heads=np.zeros((1, 2)))
    v.set_minima(np.zeros((1, 2)))
    qtbot.waitUntil(lambda: v.view.isValid(), timeout=5000)
    items = [weakref.ref(item) for item in v.view.items]
    assert len(items) == 6  # grid, axes, heads, minima, terrain, paths
    collections = []
    monkeypatch.setattr(gc, "collect", lambda *a: collections.append(a) or 0)
    gc.disable()  # no automatic collection either: only what release() frees counts
    try:
        v.release()
        alive = [type(ref()).__name__ for ref in items if ref() is not None]
    finally:
        gc.enable()
    assert alive == [] and collections == []


def _deliver_everything_queued() -> None:
    from PySide6 import QtCore

    for _ in range(3):
        QtCore.QCoreApplication.sendPostedEvents()
        QtCore.QCoreApplication.processEvents()


def test_a_burst_of_updates_draws_one_frame(terrain, qtbot):
    """update() posts one redraw (no 5 ms platform delay) however often it is called."""
    v = terrain
    frames = []
    v.view.frameSwapped.connect(lambda: frames.append(1))
    v.view.update()
    qtbot.waitUntil(lambda: bool(frames) and not v.view.redraw_posted, timeout=5000)  # drawn
    _deliver_everything_queued()
    frames.clear()
    for azimuth in range(100):  # a burst of mouse moves, each asking for a frame
        v.view.setCameraPosition(azimuth=azimuth)
    assert v.view.redraw_posted
    qtbot.waitUntil(lambda: len(frames) > 0, timeout=5000)
    _deliver_everything_queued()  # a second frame, if one had been asked for, comes now
    assert len(frames) == 1 and not v.view.redraw_posted
    assert v.view.opts["azimuth"] == 99  # every move was applied before that frame


def test_the_basin_map_colours_the_3d_terrain(race_ws, qtbot, monkeypatch):
    """#12.12: with the basin map on, the terrain is coloured by basin (shaded by height);
    off, it goes back to the height colours. (A 48 x 48 map: the full one is the Race's
    own test, and took 2 s more here.)"""
    from app.race.basin_colours import BASIN_COLOURS

    r = race_ws
    monkeypatch.setattr(type(r), "BASIN_RESOLUTION", 48)
    monkeypatch.setattr(type(r), "BASIN_STEPS", 200)
    r.c.set_surface(r.c.choice.__class__("himmelblau"))
    assert r.set_3d(True)
    v = r.view3d
    by_height = v.surface._data[1].copy()  # (N, 4) bytes
    r.basin_button.setChecked(True)
    qtbot.waitUntil(lambda: r.basin_job is None, timeout=120_000)
    assert r.basin_rgba is not None
    coloured = v.surface._data[1]
    assert not np.array_equal(coloured, by_height)
    # every vertex's colour is a basin colour (or grey/black) scaled by a shade in [0.55, 1]
    basin = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in BASIN_COLOURS])
    rgb = coloured[:, :3].astype(float)
    top = basin[np.argmax(basin.sum(axis=1))]
    assert rgb.max() <= top.max() + 1
    hues = rgb / np.maximum(rgb.sum(axis=1, keepdims=True), 1)
    ref = basin / basin.sum(axis=1, keepdims=True)
    near = np.abs(hues[:, None, :] - ref[None, :, :]).sum(axis=-1).min(axis=1) < 0.03
    assert near.mean() > 0.5  # most of Himmelblau's plane drains into one of its 4 minima
    assert _spread(v.image((400, 300))) > 10
    r.basin_button.setChecked(False)
    assert np.array_equal(v.surface._data[1], by_height)
    assert r.set_3d(False)
