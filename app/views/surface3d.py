"""A 3-D view of a surface with paths riding on it (pyqtgraph.opengl), and when it can't be had.

OpenGL is not available everywhere: Qt's offscreen platform has none (creating a GL widget
there crashes the process), nor do some remote desktops. :func:`gl_problem` says why 3-D is
unavailable *before* any GL widget exists, so callers fall back to the 2-D view with a message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

NO_GL_ENV = "LOSSLAB_NO_GL"  # set to force the 2-D fallback (a GL that misbehaves)
_problem: list[str | None] = []  # cached answer of gl_problem()


def share_gl_contexts() -> None:
    """Make every GL widget share one set of GL resources. pyqtgraph caches its shader
    programs per process: without sharing, a second 3-D view (Race and Landscape both have
    one) used programs of the first one's context ("invalid value"). Must run before the
    QApplication exists."""
    QtCore.QCoreApplication.setAttribute(QtCore.Qt.ApplicationAttribute.AA_ShareOpenGLContexts)


def gl_problem() -> str | None:
    """Why a 3-D view cannot be shown here, or None when it can."""
    if _problem:
        return _problem[0]
    if QtGui.QGuiApplication.instance() is None:
        return "no QApplication yet"  # not cached: ask again once there is one
    _problem.append(_find_problem())
    return _problem[0]


def _find_problem() -> str | None:
    if os.environ.get(NO_GL_ENV):
        return f"3-D is switched off (${NO_GL_ENV} is set)"
    platform = QtGui.QGuiApplication.platformName()
    if platform in ("offscreen", "minimal", "vnc"):
        return f"Qt's {platform!r} platform has no OpenGL"
    try:
        import OpenGL.GL  # noqa: F401  (PyOpenGL, which pyqtgraph.opengl draws with)
    except Exception as exc:  # ImportError, or a broken libGL
        return f"PyOpenGL cannot be loaded ({exc})"
    from PySide6 import QtOpenGL  # noqa: F401

    ctx = QtGui.QOpenGLContext()
    if not ctx.create():
        return "no OpenGL context could be created (no GL driver for this display)"
    surface = QtGui.QOffscreenSurface()
    surface.setFormat(ctx.format())
    surface.create()
    ok = ctx.makeCurrent(surface)
    if ok:
        ctx.doneCurrent()
    return None if ok else "an OpenGL context was created but cannot be made current"


_KEPT: list = []  # released GL containers, kept until exit (see Surface3DView.release)


def _gl_window():
    """pyqtgraph's GL view (camera, mouse, items) on a QOpenGLWindow."""
    from pyqtgraph.opengl.GLViewWidget import GLViewMixin
    from PySide6 import QtOpenGL

    class GLViewWindow(GLViewMixin, QtOpenGL.QOpenGLWindow):
        redraw_posted = False  # a class default: pyqtgraph's __init__ already calls update()

        def __init__(self) -> None:
            super().__init__(QtOpenGL.QOpenGLWindow.UpdateBehavior.NoPartialUpdate)
            # a window, unlike pyqtgraph's QOpenGLWidget (whose framebuffer always has one),
            # gets a depth buffer only when asked: without it the terrain's far slopes were
            # painted over its near ones on screen (exports, rendered offscreen, were right)
            fmt = QtGui.QSurfaceFormat.defaultFormat()
            fmt.setDepthBufferSize(24)
            self.setFormat(fmt)

        def update(self) -> None:
            """Redraw as soon as the events already queued (the mouse's) are handled. Qt's
            update() asks the platform for a frame, which on X11 arrives 5 ms after the
            request: at ~30 ms a frame in software GL that idle gap cost a sixth of the frame
            rate while orbiting. The posted event is coalesced, so a burst of mouse moves
            still draws one frame."""
            if not self.isExposed():
                super().update()  # drawn when it is shown
            elif not self.redraw_posted:
                self.redraw_posted = True
                QtCore.QCoreApplication.postEvent(
                    self,
                    QtCore.QEvent(QtCore.QEvent.Type.UpdateRequest),
                    QtCore.Qt.EventPriority.LowEventPriority.value,
                )

        def event(self, ev: QtCore.QEvent) -> bool:
            if ev.type() == QtCore.QEvent.Type.UpdateRequest:
                self.redraw_posted = False
                if not self.isExposed():  # hidden since the redraw was posted
                    return True
            return super().event(ev)

    return GLViewWindow()


def _terrain_item():
    """A height field's triangles, drawn in row chunks with a flush after each one."""
    from OpenGL import GL
    from pyqtgraph.opengl import shaders
    from pyqtgraph.opengl.GLGraphicsItem import GLGraphicsItem
    from PySide6 import QtOpenGL

    class TerrainItem(GLGraphicsItem):
        """Mesa's software renderer (llvmpipe) sets up and bins every triangle on the calling
        thread and rasterises only when the frame is flushed, on its worker threads. One draw
        call for a 256x256 terrain (130,050 triangles) therefore ran the two one after the
        other, and the oversized frame slowed the set-up itself: the terrain alone drew at
        17.5 frames/s in an 860x600 view. Flushing every ~8,000 triangles lets the rasteriser
        work on one chunk while the next is set up: 34 frames/s. A hardware driver is
        unaffected either way (bench/gl3d.py measures the whole view)."""

        CHUNK_TRIANGLES = 8192

        def __init__(self) -> None:
            super().__init__()
            self.setGLOptions("opaque")
            self._z = np.zeros((0, 0), dtype=np.float32)  # heights [ix, iy], scene units
            self._data: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
            self._uploaded = False
            self._buffers: list = []
            self.chunks: list[tuple[int, int]] = []  # (first index, index count) per draw

        @property
        def triangles(self) -> int:
            return 0 if self._data is None else len(self._data[2]) // 3

        def set_data(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, rgba: np.ndarray) -> None:
            """Heights ``z[ix, iy]`` over the axes ``x``, ``y``; colours ``rgba`` as bytes,
            ``(nx*ny, 4)`` in the same order."""
            nx, ny = z.shape
            gx, gy = np.meshgrid(x, y, indexing="ij")
            pos = np.stack([gx, gy, z], axis=-1).reshape(-1, 3).astype(np.float32)
            if self._data is None or self._z.shape != z.shape:
                ids = np.arange(nx * ny, dtype=np.uint32).reshape(nx, ny)
                a, b, c, d = ids[:-1, :-1], ids[1:, :-1], ids[:-1, 1:], ids[1:, 1:]
                index = np.stack([a, b, c, c, b, d], axis=-1).reshape(-1)  # row ix by row
                per_row = 6 * (ny - 1)
                rows = max(1, self.CHUNK_TRIANGLES * 3 // per_row)
                self.chunks = [
                    (r * per_row, min(rows, nx - 1 - r) * per_row) for r in range(0, nx - 1, rows)
                ]
            else:
                index = self._data[2]
            self._z = np.ascontiguousarray(z, dtype=np.float32)
            self._data = (pos, np.ascontiguousarray(rgba, dtype=np.uint8), index)
            self._uploaded = False
            self.update()

        def _upload(self) -> None:
            if not self._buffers:
                kinds = [QtOpenGL.QOpenGLBuffer.Type.VertexBuffer] * 2
                kinds.append(QtOpenGL.QOpenGLBuffer.Type.IndexBuffer)
                self._buffers = [QtOpenGL.QOpenGLBuffer(k) for k in kinds]
            for buf, arr in zip(self._buffers, self._data, strict=True):
                if not buf.isCreated():
                    buf.create()
                buf.bind()
                if buf.size() == arr.nbytes:
                    buf.write(0, arr, arr.nbytes)
                else:
                    buf.allocate(arr, arr.nbytes)
                buf.release()
            self._uploaded = True

        def paint(self) -> None:
            if self._data is None or not self.chunks:
                return
            self.setupGLState()
            if not self._uploaded:
                self._upload()
            shader = shaders.getShaderProgram(None)  # position and colour, no lighting
            program = shader.program()
            position, colour, index = self._buffers
            locs = [
                GL.glGetAttribLocation(program, "a_position"),
                GL.glGetAttribLocation(program, "a_color"),
            ]
            position.bind()
            GL.glVertexAttribPointer(locs[0], 3, GL.GL_FLOAT, False, 0, None)
            colour.bind()
            GL.glVertexAttribPointer(locs[1], 4, GL.GL_UNSIGNED_BYTE, True, 0, None)
            colour.release()
            for loc in locs:
                GL.glEnableVertexAttribArray(loc)
            mvp = np.array(self.mvpMatrix().data(), dtype=np.float32)
            with shader:
                GL.glUniformMatrix4fv(GL.glGetUniformLocation(program, "u_mvp"), 1, False, mvp)
                index.bind()
                last = len(self.chunks) - 1
                chunks = self.chunks
                view = self.view()
                if view is not None and view.cameraPosition().x() > 0:
                    chunks = chunks[::-1]  # nearest rows first: hidden pixels fail the depth test
                for i, (first, count) in enumerate(chunks):
                    offset = GL.GLvoidp(4 * first) if first else None
                    GL.glDrawElements(GL.GL_TRIANGLES, count, GL.GL_UNSIGNED_INT, offset)
                    if i < last:
                        GL.glFlush()  # hand this chunk to the rasteriser now
                index.release()
            for loc in locs:
                GL.glDisableVertexAttribArray(loc)

    return TerrainItem()


def _colour_map_rgba(shown: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """viridis RGBA floats in [0, 1] for the display values (as the heatmap colours them)."""
    cmap = pg.colormap.get("viridis")
    t = np.clip((np.nan_to_num(shown, nan=hi) - lo) / (hi - lo), 0, 1)
    return cmap.map(t.ravel(), mode="float").reshape(*shown.shape, 4)


def _overlay_rgba(overlay: np.ndarray, shape: tuple[int, int], t: np.ndarray) -> np.ndarray:
    """``overlay`` ``[iy, ix]`` resampled (nearest) onto a grid of ``shape`` ``(ny, nx)`` over
    the same bounds, shaded by the heights ``t`` in [0, 1] (``[ix, iy]``); RGBA floats
    ``(nx*ny, 4)`` in the terrain's order."""
    ny, nx = shape
    oy, ox = overlay.shape[:2]
    iy = np.rint(np.linspace(0, oy - 1, ny)).astype(int)
    ix = np.rint(np.linspace(0, ox - 1, nx)).astype(int)
    rgb = overlay[iy][:, ix, :3].astype(np.float32) / 255  # (ny, nx, 3)
    shade = 0.55 + 0.45 * np.clip(t.T, 0, 1)[..., None]  # (ny, nx, 1): valleys darker
    out = np.concatenate([rgb * shade, np.ones((ny, nx, 1), np.float32)], axis=-1)
    return out.transpose(1, 0, 2).reshape(-1, 4)  # [ix, iy] flat


class Surface3DView(QtWidgets.QWidget):
    """Terrain of a 2-D function with paths on it; orbit, zoom and pan with the mouse."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        import pyqtgraph.opengl as gl

        self.gl = gl
        self.view = _gl_window()
        self.view.setBackgroundColor("#1e1f22")
        # a QOpenGLWindow in a container, not pyqtgraph's QOpenGLWidget: the widget renders
        # into a framebuffer that Qt then composites, which in software GL (Mesa llvmpipe)
        # cost a third of the frame rate (21 vs 35 frames/s at 1200x800)
        self.container = QtWidgets.QWidget.createWindowContainer(self.view, self)
        self.container.setMinimumSize(200, 150)
        self.grid = gl.GLGridItem()
        self.grid.setSize(2, 2)
        self.grid.setSpacing(0.25, 0.25)
        self.view.addItem(self.grid)
        self.axes = gl.GLAxisItem()
        self.axes.setSize(1.1, 1.1, 0.6)
        self.view.addItem(self.axes)
        self.surface = None
        self.paths: list[np.ndarray] = []  # what is drawn of each path, (T, 3) scene points
        self.path_item = None
        self.heads = gl.GLScatterPlotItem(pos=np.zeros((0, 3)), size=12, pxMode=True)
        self.heads.setGLOptions("translucent")
        self.view.addItem(self.heads)
        self.minima = gl.GLScatterPlotItem(
            pos=np.zeros((0, 3)), size=14, color=(1, 1, 1, 1), pxMode=True
        )
        self.view.addItem(self.minima)
        self.exaggeration = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.exaggeration.setRange(5, 300)  # percent of the default height
        self.exaggeration.setValue(100)
        self.exaggeration.setToolTip("Vertical exaggeration")
        self.exaggeration.valueChanged.connect(lambda _: self._restyle())
        reset = QtWidgets.QPushButton("Reset camera")
        reset.clicked.connect(self.reset_camera)
        self.export_btn = QtWidgets.QPushButton("Export PNG...")
        self.export_btn.clicked.connect(self._export_dialog)
        self.note = QtWidgets.QLabel("")
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(QtWidgets.QLabel("Height"))
        bar.addWidget(self.exaggeration, 1)
        bar.addWidget(reset)
        bar.addWidget(self.export_btn)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.container, 1)
        lay.addLayout(bar)
        lay.addWidget(self.note)
        self._xs = self._ys = self._shown = None
        self._lo, self._hi = 0.0, 1.0
        self._paths: list[np.ndarray] = []
        self._colours: list[str] = []
        self._heads: np.ndarray | None = None
        self._minima: np.ndarray | None = None
        self._overlay: np.ndarray | None = None  # (N, N, 4) uint8 colours [iy, ix], or None
        self.height_of: Callable[[np.ndarray], np.ndarray] | None = None
        self.released = False  # after release() the view draws nothing more
        self.reset_camera()

    # --- coordinates: the data's bounds map to [-1, 1]^2, display values to [0, H] -----------

    def _to_scene(self, xy: np.ndarray, values: np.ndarray, lift: float = 0.0) -> np.ndarray:
        x0, x1, y0, y1 = self._bounds
        h = self.exaggeration.value() / 100 * 0.8
        z = (np.clip(values, self._lo, self._hi) - self._lo) / (self._hi - self._lo) * h + lift
        return np.column_stack(
            [2 * (xy[:, 0] - x0) / (x1 - x0) - 1, 2 * (xy[:, 1] - y0) / (y1 - y0) - 1, z]
        ).astype(np.float32)

    def set_grid(
        self,
        xs: np.ndarray,
        ys: np.ndarray,
        shown: np.ndarray,
        lo: float,
        hi: float,
        height_of: Callable[[np.ndarray], np.ndarray],
    ) -> None:
        """The terrain: display values ``shown[iy, ix]`` (linear or log10, as the heatmap), the
        colour levels, and ``height_of(points (N, 2)) -> display values`` for the paths."""
        self._xs, self._ys = np.asarray(xs, float), np.asarray(ys, float)
        self._shown = np.asarray(shown, float)
        self._lo, self._hi = float(lo), float(hi) if hi > lo else float(lo) + 1
        self._bounds = (self._xs[0], self._xs[-1], self._ys[0], self._ys[-1])
        self.height_of = height_of
        self._restyle()

    def set_paths(self, paths: list[np.ndarray], colours: list[str], heads=None) -> None:
        """Paths ``(T, 2)`` in data coordinates, drawn slightly above the terrain."""
        self._paths, self._colours = paths, colours
        self._heads = None if heads is None else np.asarray(heads, float).reshape(-1, 2)
        self._draw_paths()

    def set_overlay(self, rgba: np.ndarray | None) -> None:
        """Colour the terrain by ``rgba`` (``(N, M, 4)`` bytes, row = y, over the same bounds
        as the grid: a basin map) instead of by height; None goes back to the height colours.
        The heights still shade it, darker low, so the relief stays readable."""
        self._overlay = None if rgba is None else np.asarray(rgba, dtype=np.uint8)
        self._restyle()

    def set_minima(self, points: np.ndarray | None) -> None:
        self._minima = None if points is None else np.asarray(points, float).reshape(-1, 2)
        self._draw_minima()

    def _restyle(self) -> None:
        if self._shown is None or self.released:
            return
        xn = 2 * (self._xs - self._xs[0]) / (self._xs[-1] - self._xs[0]) - 1
        yn = 2 * (self._ys - self._ys[0]) / (self._ys[-1] - self._ys[0]) - 1
        h = self.exaggeration.value() / 100 * 0.8
        shown = np.nan_to_num(self._shown, nan=self._hi)
        z = (np.clip(shown, self._lo, self._hi) - self._lo) / (self._hi - self._lo) * h
        # heights z[ix, iy] and colours flat, (Nx*Ny, 4), in that order, as bytes (a quarter
        # of the vertex data of floats)
        if self._overlay is None:
            rgba = _colour_map_rgba(self._shown.T, self._lo, self._hi).reshape(-1, 4)
        else:
            rgba = _overlay_rgba(self._overlay, self._shown.shape, z.T / max(h, 1e-9))
        colours = (rgba * 255 + 0.5).astype(np.uint8)
        if self.surface is None:
            self.surface = _terrain_item()
            self.view.addItem(self.surface)
        self.surface.set_data(xn, yn, z.T, colours)
        self._draw_paths()
        self._draw_minima()

    def _heights(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(self.height_of(xy), dtype=float) if self.height_of else np.zeros(len(xy))

    def _draw_paths(self) -> None:
        if self._shown is None or self.released:
            return
        if self.path_item is None:
            # every path in one item of line segments: one draw call, not one per racer
            self.path_item = self.gl.GLLinePlotItem(
                pos=np.zeros((2, 3)), width=3.0, antialias=False, mode="lines"
            )
            self.path_item.setGLOptions("opaque")
            self.view.addItem(self.path_item)
        lift = 0.03
        self.paths = []  # each path in scene coordinates (T, 3)
        segments, colours = [], []
        for path, colour in zip(self._paths, self._colours, strict=True):
            ok = path[np.isfinite(path).all(axis=1)]
            if len(ok) < 2:
                continue
            pos = self._to_scene(ok, self._heights(ok), lift)
            self.paths.append(pos)
            seg = np.empty((2 * (len(pos) - 1), 3), dtype=np.float32)
            seg[0::2], seg[1::2] = pos[:-1], pos[1:]
            segments.append(seg)
            colours.append(np.broadcast_to(pg.mkColor(colour).getRgbF(), (len(seg), 4)))
        if segments:
            self.path_item.setData(
                pos=np.concatenate(segments), color=np.concatenate(colours).astype(np.float32)
            )
            self.path_item.setVisible(True)
        else:
            self.path_item.setVisible(False)
        if self._heads is not None and len(self._heads):
            ok = np.isfinite(self._heads).all(axis=1)
            cols = np.array([pg.mkColor(c).getRgbF() for c in self._colours])[: len(ok)][ok]
            pts = self._heads[ok]
            self.heads.setData(pos=self._to_scene(pts, self._heights(pts), 2 * lift), color=cols)
        else:
            self.heads.setData(pos=np.zeros((0, 3)))

    def _draw_minima(self) -> None:
        if self.released:
            return
        if self._minima is None or self._shown is None or not len(self._minima):
            self.minima.setData(pos=np.zeros((0, 3)))
            return
        self.minima.setData(pos=self._to_scene(self._minima, self._heights(self._minima), 0.03))

    def release(self) -> None:
        """Free the GL resources now, while the context exists. pyqtgraph's items hold GL
        buffers; freed after Qt has deleted the window and its context (a widget tree being
        torn down), they crashed the process at exit."""
        import gc
        import weakref

        if self.released:
            return
        self.released = True
        if self.view.isValid():
            self.view.makeCurrent()
        items = [weakref.ref(item) for item in self.view.items]
        # the grid and the axes each hold a line plot that points back at them: a cycle only
        # a full collection (0.2-0.4 s with torch loaded) frees; cut, they go when dropped
        self.grid.lineplot.setParentItem(None)
        self.axes.lineplot.setParentItem(None)
        self.view.clear()
        self.surface = self.path_item = None
        self.paths = []
        self.grid = self.axes = self.heads = self.minima = None
        if any(ref() is not None for ref in items):  # still held in some cycle: collect it now
            gc.collect()
        if self.view.isValid():
            self.view.doneCurrent()
        # Qt deleting the container with this widget (deleteLater) and Python then deleting
        # the window's wrapper crashed the process at exit; a released container is taken
        # out of the tree and kept until the process ends, which exits cleanly.
        self.container.hide()
        self.container.setParent(None)
        _KEPT.append(self.container)

    def reset_camera(self) -> None:
        self.view.setCameraPosition(distance=3.6, elevation=35, azimuth=-60)
        self.view.opts["center"] = pg.Vector(0, 0, 0.25)
        self.view.update()

    def image(self, size: tuple[int, int]) -> QtGui.QImage:
        """The view rendered at ``size`` (pixels), independent of the window's size."""
        from app.export import ExportError

        deadline = time.monotonic() + 2.0  # a window just shown is exposed a moment later
        while not self.view.isValid() and self.isVisible() and time.monotonic() < deadline:
            QtWidgets.QApplication.processEvents()
            time.sleep(0.01)
        if not self.view.isValid():
            raise ExportError("the 3-D view must be on screen (OpenGL initialised) to export")
        w, h = size
        bgra = np.ascontiguousarray(self.view.renderToArray((w, h)))  # (h, w, 4) BGRA
        return QtGui.QImage(bgra.data, w, h, 4 * w, QtGui.QImage.Format.Format_ARGB32).copy()

    def _export_dialog(self) -> None:
        from app import export

        size = export.ask_png_size(self)
        if size is None:
            return
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export", "3d.png", "PNG (*.png)")
        if path:
            try:
                export.write_png(path if path.endswith(".png") else path + ".png", self.image(size))
            except (OSError, export.ExportError) as exc:
                QtWidgets.QMessageBox.warning(self, "Export failed", str(exc))


__all__ = ["NO_GL_ENV", "Surface3DView", "gl_problem", "share_gl_contexts"]
