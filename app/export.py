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
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from core import fileio
from core.race.race import Race

GIF_GREYS = 8  # neutral entries reserved in a GIF's palette (text, outlines, the start marker)


class ExportError(Exception):
    pass


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    try:
        return fileio.atomic_write(path, data)
    except OSError as exc:
        raise ExportError(str(exc)) from None


def check_writable(path: str | os.PathLike) -> Path:
    """Raise ``ExportError`` unless a file can be written at ``path``: for checking every output
    before long work, so a render is never lost to a mistyped folder at the end."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise ExportError(f"cannot write {target}: it is a folder")
    if not folder.exists():
        raise ExportError(f"cannot write {target}: folder {folder} does not exist")
    if not folder.is_dir():
        raise ExportError(f"cannot write {target}: {folder} is not a folder")
    try:  # a real file, not os.access: root passes every access check, read-only mounts don't
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".probe")
    except OSError as exc:
        raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    return target


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
    the paths current Qt writes (pyqtgraph issue #3485). The generator gets the widget's DPI:
    at its default 72 DPI, pictures recorded at the screen's 96 (pyqtgraph's axes and colour
    bar ticks are QPictures) were replayed at 72/96 = 75% size, and fonts shrank to match.
    """
    from PySide6 import QtSvg

    QtWidgets.QApplication.processEvents()
    buf = QtCore.QBuffer()
    buf.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
    gen = QtSvg.QSvgGenerator()
    gen.setOutputDevice(buf)
    size = widget.size()
    gen.setResolution(round(widget.logicalDpiX()))
    gen.setSize(size)
    gen.setViewBox(QtCore.QRect(0, 0, size.width(), size.height()))
    gen.setTitle(title)
    items = _export_items(widget)
    for item in items:  # scatter symbols as vectors, not fragments of a pixmap atlas
        item.setExportMode(True, {"antialias": True})
    painter = QtGui.QPainter(gen)
    try:
        _render(widget, painter)
    finally:
        painter.end()
        for item in items:
            item.setExportMode(False)
    return flatten_strokes(bytes(buf.data()), _plot_areas(widget))


SVG_NS = "http://www.w3.org/2000/svg"
_LINES = {f"{{{SVG_NS}}}{tag}" for tag in ("path", "polyline")}
Area = tuple[tuple[float, ...], tuple[float, float, float, float]]  # data->pixel matrix, rect


def flatten_strokes(svg: bytes, areas: list[Area] = ()) -> bytes:
    """Lines in pixel coordinates, cut at the edges of their plot.

    Qt writes a plot's lines in data units inside a group scaled to pixels (x 160 and more),
    with ``vector-effect="non-scaling-stroke"`` to keep them thin. Browsers honour that;
    librsvg (GNOME's viewers, rsvg-convert) and other tools drew the strokes 160 times wider.
    Groups of lines alone get pixel coordinates and no scaling (text and images keep their
    transforms). SVG Tiny has no clipping, so a line that left its plot (a diverging racer)
    ran over the axes: lines in a plot's data units (``areas``) are cut at its rectangle.
    """
    import xml.etree.ElementTree as ET

    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")
    root = ET.fromstring(svg)
    for group in root.iter(f"{{{SVG_NS}}}g"):
        m = _svg_matrix(group.get("transform"))
        lines = list(group)
        if m is None or m[:4] == (1, 0, 0, 1) or not lines:
            continue  # no transform, or one that leaves stroke widths alone
        if not all(el.tag in _LINES and not len(el) for el in lines):
            continue
        mapped = [_commands(el, m) for el in lines]
        if any(cmds is None for cmds in mapped):
            continue  # a path command we don't know: keep the group as Qt wrote it
        rect = next((r for t, r in areas if np.allclose(t, m, rtol=1e-3, atol=0.05)), None)
        for el, cmds in zip(lines, mapped, strict=True):
            runs = _runs(cmds)
            if runs is not None and rect is not None:
                runs = [part for run in runs for part in _clip(run, rect)]
                cmds = [("L" if i else "M", [p]) for run in runs for i, p in enumerate(run)]
            if not cmds:
                group.remove(el)
                continue
            if el.tag.endswith("polyline") and runs is not None and len(runs) == 1:
                el.set("points", " ".join(_xy(runs[0])))
            else:
                el.tag = f"{{{SVG_NS}}}path"
                el.attrib.pop("points", None)
                el.set("d", " ".join(k + " ".join(_xy(p)) for k, p in cmds))
            el.attrib.pop("vector-effect", None)
        del group.attrib["transform"]
    for image in root.iter(f"{{{SVG_NS}}}image"):
        # a heatmap's cells stay cells: viewers smooth an enlarged image by default (a 5x5
        # landscape came out as a blurred gradient, where the PNG shows its grid)
        image.set("image-rendering", "optimizeSpeed")
        image.set("style", "image-rendering:pixelated")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _xy(points: list[tuple[float, float]]) -> list[str]:
    return [f"{x:.6g},{y:.6g}" for x, y in points]


def _svg_matrix(transform: str | None) -> tuple[float, ...] | None:
    text = (transform or "").strip()
    if not (text.startswith("matrix(") and text.endswith(")")):
        return None
    try:
        values = tuple(float(v) for v in text[7:-1].replace(",", " ").split())
    except ValueError:
        return None
    return values if len(values) == 6 else None


def _commands(el, m: tuple[float, ...]) -> list[tuple[str, list]] | None:
    """A polyline's points or a path's absolute M/L/C/Z commands, mapped by the affine ``m``:
    [(letter, [(x, y), ...]), ...]; None for anything else."""
    import re

    a, b, c, d, e, f = m
    path = el.tag.endswith("path")
    text = el.get("d" if path else "points", "")
    cmds: list[tuple[str, list]] = [] if path else [("M", [])]
    nums: list[float] = []
    for token in re.findall(r"[A-Za-z]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", text):
        if token.isalpha():
            if token not in "MLCZ" or not path or nums:
                return None
            cmds.append((token, []))
            continue
        if not cmds:
            return None
        nums.append(float(token))
        if len(nums) == 2:
            x, y = nums
            cmds[-1][1].append((a * x + c * y + e, b * x + d * y + f))
            nums = []
    return None if nums else cmds


def _runs(cmds: list[tuple[str, list]]) -> list[list[tuple[float, float]]] | None:
    """The runs of points of M and L commands alone (what can be cut); None with curves."""
    if any(letter not in "ML" for letter, _ in cmds):
        return None
    runs: list[list[tuple[float, float]]] = []
    for letter, pts in cmds:
        if letter == "M" or not runs:
            runs.append([])
        runs[-1] += pts
    return [r for r in runs if r]


def _clip(points: list[tuple[float, float]], rect) -> list[list[tuple[float, float]]]:
    """The parts of a polyline inside ``rect`` (left, top, right, bottom): Liang-Barsky."""
    left, top, right, bottom = rect
    runs: list[list[tuple[float, float]]] = []
    joined = False  # the last segment ended inside: the next one goes on from it
    if len(points) == 1:
        (x, y) = points[0]
        return [points] if left <= x <= right and top <= y <= bottom else []
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        dx, dy, t0, t1 = x1 - x0, y1 - y0, 0.0, 1.0
        for p, q in ((-dx, x0 - left), (dx, right - x0), (-dy, y0 - top), (dy, bottom - y0)):
            if p == 0:
                t0, t1 = (t0, t1) if q >= 0 else (1.0, 0.0)
            elif p < 0:
                t0 = max(t0, q / p)
            else:
                t1 = min(t1, q / p)
        if t0 > t1:
            joined = False
            continue
        end = (x0 + t1 * dx, y0 + t1 * dy)
        if joined and t0 == 0.0:
            runs[-1].append(end)
        else:
            runs.append([(x0 + t0 * dx, y0 + t0 * dy), end])
        joined = t1 == 1.0
    return runs


def _plot_areas(widget: QtWidgets.QWidget) -> list[Area]:
    """Each pyqtgraph plot's data-to-pixel matrix and rectangle in ``widget``'s pixels."""
    import pyqtgraph as pg

    out = []
    for view in _views(widget):
        o = view.viewport().mapTo(widget, QtCore.QPoint(0, 0))
        to_widget = view.viewportTransform() * QtGui.QTransform.fromTranslate(o.x(), o.y())
        for item in view.scene().items():
            if isinstance(item, pg.ViewBox) and item.isVisible():
                t = item.childGroup.sceneTransform() * to_widget
                r = to_widget.mapRect(item.sceneBoundingRect())
                matrix = (t.m11(), t.m12(), t.m21(), t.m22(), t.dx(), t.dy())
                out.append((matrix, (r.left(), r.top(), r.right(), r.bottom())))
    return out


def _views(widget: QtWidgets.QWidget) -> list[QtWidgets.QGraphicsView]:
    views = widget.findChildren(QtWidgets.QGraphicsView)
    if isinstance(widget, QtWidgets.QGraphicsView):
        views.insert(0, widget)
    return [v for v in views if v.scene() is not None]


def _export_items(widget: QtWidgets.QWidget) -> list:
    """The pyqtgraph items drawn by ``widget`` and its children.

    QSvgGenerator ignores the source rectangle of a pixmap fragment, so a scatter plot's
    symbols, drawn from pyqtgraph's symbol atlas, came out as the whole atlas squeezed into
    each symbol. In pyqtgraph's export mode they are painted as paths.
    """
    scenes = {id(v.scene()): v.scene() for v in _views(widget)}
    return [
        item
        for scene in scenes.values()
        for item in scene.items()
        if hasattr(item, "setExportMode")
    ]


def gif_bytes(
    frames: list[QtGui.QImage], fps: float = 20.0, colours: int = 96, keep: Iterable[str] = ()
) -> bytes:
    """An animated GIF with one palette shared by every frame (small files, no flicker).

    ``keep``: colours (the racers') that must come through exactly. Median cut picks colours
    by how many pixels use them, so thin lines lost theirs (blue came out teal, red olive):
    they are reserved in the palette, and pixels of exactly those colours are mapped to them.
    """
    from PIL import Image

    if not frames:
        raise ExportError("no frames to animate")
    # At least 16 entries stay for the heatmap, however many racers there are. A ramp of
    # greys keeps white text and markers white (median cut had turned them yellow).
    greys = [(v, v, v) for v in np.linspace(0, 255, GIF_GREYS).round().astype(int).tolist()]
    wanted = [_rgb(c) for c in keep] + greys
    reserved = list(dict.fromkeys(wanted))[: max(0, colours - 16)]
    pil = [_pil_rgb(f) for f in frames]
    # The palette comes from a strip of several frames, so it covers the whole race.
    picks = pil[:: max(1, len(pil) // 6)] + [pil[-1]]
    w, h = pil[0].size
    strip = Image.new("RGB", (w, h * len(picks)))
    for i, im in enumerate(picks):
        strip.paste(im, (0, h * i))
    n = colours - len(reserved)
    found = strip.quantize(colors=n, method=Image.Quantize.MEDIANCUT).getpalette()[: 3 * n]
    entries = [v for rgb in reserved for v in rgb] + found
    palette = Image.new("P", (1, 1))
    palette.putpalette(entries)
    quantized = [_quantize(im, palette, reserved) for im in pil]
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


def mp4_bytes(frames: list[QtGui.QImage], fps: float = 20.0) -> bytes:
    """An H.264 MP4 (yuv420p: every player and slide program shows it) of ``frames``, at the
    GIF's frame rate, through the ffmpeg that imageio-ffmpeg's wheel ships (works offline).

    yuv420p halves the colour resolution, so both sides must be even: an odd size loses its
    last row or column. ffmpeg writes to a file of its own in a temporary folder that is
    always removed; the caller writes the bytes atomically like every other export.
    """
    if not frames:
        raise ExportError("no frames to encode")
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ExportError(
            "MP4 needs the imageio-ffmpeg package: pip install -c constraints.txt imageio-ffmpeg"
        ) from None
    rgb = [_rgb_array(f) for f in frames]
    h, w = (rgb[0].shape[0] // 2) * 2, (rgb[0].shape[1] // 2) * 2
    if h < 2 or w < 2 or any(a.shape != rgb[0].shape for a in rgb):
        raise ExportError("MP4 frames must all have the same size, at least 2x2 pixels")
    with tempfile.TemporaryDirectory(prefix="losslab-mp4-") as folder:
        out = os.path.join(folder, "race.mp4")
        try:
            writer = imageio_ffmpeg.write_frames(
                out,
                (w, h),
                fps=fps,
                codec="libx264",
                pix_fmt_out="yuv420p",
                quality=6.5,  # x264's crf 17: thin racer lines stay sharp (its default 25 blurs)
                macro_block_size=2,  # even sizes are all yuv420p needs: no rescaling
                # faststart: plays while it downloads; veryfast: half medium's time, and no
                # larger for these flat pictures (bench/interop.py)
                output_params=["-movflags", "+faststart", "-preset", "veryfast"],
                ffmpeg_log_level="error",
            )
            writer.send(None)  # start ffmpeg
            for a in rgb:
                writer.send(np.ascontiguousarray(a[:h, :w]))
            writer.close()  # waits for ffmpeg to finish the file
            with open(out, "rb") as f:
                data = f.read()
        except (OSError, RuntimeError) as exc:
            raise ExportError(f"could not encode the MP4: {exc}") from None
    if data[4:8] != b"ftyp":  # imageio-ffmpeg does not check ffmpeg's exit code
        raise ExportError("could not encode the MP4: ffmpeg wrote no video")
    return data


def _rgb_array(image: QtGui.QImage) -> np.ndarray:
    """``image`` as an (H, W, 3) uint8 array."""
    rgb = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h, stride = rgb.width(), rgb.height(), rgb.bytesPerLine()
    return (
        np.frombuffer(bytes(rgb.constBits()), np.uint8)
        .reshape(h, stride)[:, : 3 * w]
        .reshape(h, w, 3)
    )


def _rgb(colour: str) -> tuple[int, int, int]:
    c = QtGui.QColor(colour)
    if not c.isValid():
        raise ExportError(f"not a colour: {colour!r}")
    return c.red(), c.green(), c.blue()


def _pil_rgb(image: QtGui.QImage):
    """``image`` as a PIL RGB image, by its bytes (a PNG round trip took most of the time)."""
    from PIL import Image

    rgb = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    data = bytes(rgb.constBits())
    size = (rgb.width(), rgb.height())
    return Image.frombuffer("RGB", size, data, "raw", "RGB", rgb.bytesPerLine(), 1)


def _quantize(image, palette, reserved: list[tuple[int, int, int]]):
    """``image`` on ``palette``: every colour to its nearest palette entry, exactly (Pillow's
    own lookup works on coarse colour boxes: dark viridis purples went to the reserved greys
    and the heatmap looked posterised), and reserved colours to their own entries."""
    from PIL import Image

    entries = np.array(palette.getpalette()[: 3 * 256], dtype=np.int32).reshape(-1, 3)  # (P, 3)
    rgb = np.asarray(image, dtype=np.int32)  # (H, W, 3)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]  # (H, W)
    colours, inverse = np.unique(packed, return_inverse=True)  # (U,), (H*W,)
    unique_rgb = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1)
    nearest = np.empty(len(colours), dtype=np.uint8)
    for start in range(0, len(colours), 4096):  # (U, P) distances in slices: bounded memory
        part = unique_rgb[start : start + 4096, None, :] - entries[None, :, :]  # (u, P, 3)
        nearest[start : start + 4096] = np.argmin((part * part).sum(axis=2), axis=1)
    for i, (r, g, b) in enumerate(reserved):
        nearest[colours == ((r << 16) | (g << 8) | b)] = i
    out = Image.new("P", image.size)
    out.putpalette(palette.getpalette())
    out.frombytes(nearest[inverse.reshape(-1)].tobytes())
    return out


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
