"""Writing pictures, animations and curves: atomically, with readable errors.

Every writer renders or serialises first, then writes to a temporary file beside the target
and renames it, so a failure never leaves a half-written file. Errors are ``ExportError``
with a message that names the path and the reason.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from core import fileio
from core.race.race import Race


class ExportError(Exception):
    pass


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    try:
        return fileio.atomic_write(path, data)
    except OSError as exc:
        raise ExportError(str(exc)) from None


def qimage_png(image: QtGui.QImage) -> bytes:
    buf = QtCore.QBuffer()
    buf.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buf, "PNG"):
        raise ExportError("could not encode the picture as PNG")
    return bytes(buf.data())


def write_png(path, image: QtGui.QImage) -> Path:
    return atomic_write(path, qimage_png(image))


def _render(widget: QtWidgets.QWidget, painter: QtGui.QPainter) -> None:
    if isinstance(widget, QtWidgets.QGraphicsView):
        widget.render(painter)  # the scene, as shown
    else:
        widget.render(painter, QtCore.QPoint())  # the widget and its children


def parse_size(text: str) -> tuple[int, int]:
    """'1600x1200' -> (1600, 1200); ValueError with the allowed range otherwise."""
    try:
        w, h = (int(v) for v in text.lower().replace(" ", "").split("x"))
    except ValueError:
        raise ValueError(f"size must look like 1600x1200, got {text!r}") from None
    if not (64 <= w <= 8000 and 64 <= h <= 8000):
        raise ValueError(f"size {w}x{h} out of range (64 .. 8000 each way)")
    return w, h


def ask_png_size(parent: QtWidgets.QWidget, default: str = "1600x1200"):
    """Ask for a picture size; ``(w, h)``, or None when cancelled or invalid (after saying so)."""
    text, ok = QtWidgets.QInputDialog.getText(
        parent, "PNG size", "Width x height in pixels:", text=default
    )
    if not ok:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        QtWidgets.QMessageBox.warning(parent, "Export", str(exc))
        return None


def widget_png(widget: QtWidgets.QWidget, scale: float = 2.0) -> QtGui.QImage:
    """``widget`` rendered at ``scale`` times its size (sharp on high-DPI screens and print)."""
    size = widget.size() * scale
    image = QtGui.QImage(size, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(widget.palette().color(QtGui.QPalette.ColorRole.Window))
    painter = QtGui.QPainter(image)
    try:
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        painter.scale(scale, scale)
        _render(widget, painter)
    finally:
        painter.end()
    return image


def widget_svg(widget: QtWidgets.QWidget, title: str) -> bytes:
    """``widget`` as SVG: lines and text as vectors, images embedded.

    Qt's own QSvgGenerator, not pyqtgraph's SVGExporter, whose rewriting of path data fails on
    the paths current Qt writes (pyqtgraph issue #3485).
    """
    from PySide6 import QtSvg

    QtWidgets.QApplication.processEvents()
    buf = QtCore.QBuffer()
    buf.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    gen = QtSvg.QSvgGenerator()
    gen.setOutputDevice(buf)
    size = widget.size()
    gen.setSize(size)
    gen.setViewBox(QtCore.QRect(0, 0, size.width(), size.height()))
    gen.setTitle(title)
    painter = QtGui.QPainter(gen)
    try:
        _render(widget, painter)
    finally:
        painter.end()
    return bytes(buf.data())


def gif_bytes(frames: list[QtGui.QImage], fps: float = 20.0, colours: int = 96) -> bytes:
    """An animated GIF with one palette shared by every frame (small files, no flicker)."""
    from PIL import Image

    if not frames:
        raise ExportError("no frames to animate")
    pil = [Image.open(io.BytesIO(qimage_png(f))).convert("RGB") for f in frames]
    # The palette comes from a strip of several frames, so it covers the whole race.
    picks = pil[:: max(1, len(pil) // 6)] + [pil[-1]]
    w, h = pil[0].size
    strip = Image.new("RGB", (w, h * len(picks)))
    for i, im in enumerate(picks):
        strip.paste(im, (0, h * i))
    palette = strip.quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    quantized = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in pil]
    out = io.BytesIO()
    quantized[0].save(
        out,
        format="GIF",
        save_all=True,
        append_images=quantized[1:],
        duration=int(1000 / fps),
        loop=0,
        optimize=False,
        disposal=1,
    )
    return out.getvalue()


def trajectories_rows(race: Race) -> Iterable[list]:
    names = [s.label for s in race.specs]
    h = race.history
    steps, pos, loss = h.recorded_steps(), h.get("pos"), h.get("loss")
    lr = h.get("lr") if "lr" in h.fields else None
    for r, name in enumerate(names):
        for k in range(race.n_starts):
            for t in range(len(steps)):
                yield [
                    name,
                    k,
                    int(steps[t]),
                    float(pos[t, r, k, 0]),
                    float(pos[t, r, k, 1]),
                    float(loss[t, r, k]),
                    float(lr[t, r]) if lr is not None else "",
                ]


def csv_bytes(race: Race) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["racer", "start", "step", "x", "y", "loss", "lr"])
    w.writerows(trajectories_rows(race))
    return out.getvalue().encode()


def json_bytes(race: Race, session: dict | None = None) -> bytes:
    def clean(a):
        return [None if not np.isfinite(v) else float(v) for v in np.ravel(a)]

    racers = []
    for r, spec in enumerate(race.specs):
        t = race.trajectory(r)
        m = race.metrics(r)
        racers.append(
            {
                "name": spec.label,
                "spec": spec.to_dict(),
                "steps": t.steps.tolist(),
                "x": clean(t.pos[:, 0]),
                "y": clean(t.pos[:, 1]),
                "loss": clean(t.loss),
                "lr": clean(t.lr) if t.lr is not None else None,
                "diverged_at": t.diverged_at,
                "diverge_reason": t.diverge_reason,
                "final_loss": clean(m.final_loss)[0],
                "final_distance": clean(m.final_distance)[0],
                "steps_to_converge": int(m.steps_to_converge[0]),
            }
        )
    doc = {
        "format": "losslab-race-trajectories-1",
        "surface": race.surface.key,
        "surface_name": race.surface.name,
        "steps": race.step_count,
        "racers": racers,
        "session": session,
    }
    return json.dumps(doc, indent=1).encode()


def render_frames(
    step_and_grab: Callable[[int], QtGui.QImage],
    total: int,
    frames: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[QtGui.QImage]:
    """Grab ``frames`` pictures evenly spread over ``total`` steps."""
    frames = max(2, min(frames, total + 1))
    marks = np.unique(np.linspace(0, total, frames).round().astype(int))
    out, done = [], 0
    for i, mark in enumerate(marks):
        out.append(step_and_grab(int(mark - done)))
        done = int(mark)
        if progress:
            progress(i + 1, len(marks))
    return out
