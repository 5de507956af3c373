"""app/export.py: SVGs whose axes line up with the plot, GIFs that keep the racers' colours,
MP4s with the GIF's frames."""

import io
import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import GifImagePlugin, Image

from app import export
from app.colors import PALETTE
from core.race.surfaces import get_surface

# --- SVG ---------------------------------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"


def _matrix(transform: str | None) -> np.ndarray:
    m = np.eye(3)
    if not transform:
        return m
    found = re.fullmatch(r"\s*matrix\(([^)]*)\)\s*", transform)
    assert found, f"unexpected transform {transform!r}"
    a, b, c, d, e, f = (float(v) for v in found.group(1).split(","))
    m[:2] = [[a, c, e], [b, d, f]]
    return m


def _walk(node, m=None):
    """(element, its accumulated transform) for every element of the SVG."""
    m = (np.eye(3) if m is None else m) @ _matrix(node.get("transform"))
    yield node, m
    for child in node:
        yield from _walk(child, m)


def _layout(svg: bytes):
    """The largest embedded image (the heatmap) as (x0, y0, x1, y1) in viewBox pixels, and
    every number drawn as text: (value, x, y, font size, transform)."""
    root = ET.fromstring(svg)
    images, labels = [], []
    for el, m in _walk(root):
        if el.tag == SVG + "image":
            x, y = float(el.get("x")), float(el.get("y"))
            w, h = float(el.get("width")), float(el.get("height"))
            (x0, y0), (x1, y1) = ((m @ [px, py, 1])[:2] for px, py in ((x, y), (x + w, y + h)))
            x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)  # y may flip
            images.append(((x1 - x0) * (y1 - y0), (x0, y0, x1, y1)))
        elif el.tag == SVG + "text":
            text = "".join(el.itertext()).strip().replace("\u2212", "-")
            if re.fullmatch(r"-?\d+(\.\d+)?", text):
                x, y = (m @ [float(el.get("x")), float(el.get("y")), 1])[:2]
                labels.append((float(text), x, y, float(el.get("font-size")), m, text))
    return max(images)[1], labels


def _check_axes(svg: bytes, xrange: tuple, yrange: tuple) -> None:
    """Each tick label sits under (x axis) or beside (y axis) its value on the heatmap."""
    (ix0, iy0, ix1, iy1), labels = _layout(svg)
    for *_, m, text in labels:  # drawn at full size: the 72/96 DPI mix-up scaled them by 0.75
        assert abs(np.linalg.det(m[:2, :2])) == pytest.approx(1.0), (text, m)
    ys = [lab for lab in labels if lab[1] < ix0 - 2]  # left of the image
    xs = [lab for lab in labels if lab[2] > iy1 and ix0 - 2 <= lab[1] < ix1]  # below it
    assert len(xs) >= 3 and len(ys) >= 3
    (x0, x1), (y0, y1) = xrange, yrange
    for value, x, _, size, _, text in xs:
        want = ix0 + (value - x0) / (x1 - x0) * (ix1 - ix0)
        assert ix0 - size <= x <= ix1, text
        assert x - 1 <= want <= x + size * len(text), (text, x, want)  # under the label
    for value, _, y, size, _, text in ys:
        want = iy1 - (value - y0) / (y1 - y0) * (iy1 - iy0)
        assert iy0 - size <= y - size / 2 <= iy1, text
        assert y - size * 1.2 <= want <= y + size * 0.3, (text, y, want)  # beside the label


def _check_strokes_in_pixels(svg: bytes) -> None:
    """No line drawn in data units under a scaled group: viewers without non-scaling-stroke
    (librsvg, so GNOME's viewers and rsvg-convert) drew those 100+ times too wide."""
    lines = 0
    for el, m in _walk(ET.fromstring(svg)):
        if el.tag in (SVG + "polyline", SVG + "path"):
            lines += 1
            assert np.allclose(m[:2, :2], np.eye(2)), (el.attrib, m)
    assert lines > 20


def test_flatten_strokes_maps_points_and_paths():
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg"><g transform="matrix(2,0,0,-3,10,20)">'
        b'<polyline vector-effect="non-scaling-stroke" points="0,0 1,1 " />'
        b'<path vector-effect="non-scaling-stroke" d="M0,0 L1,0 C1,1 2,1 2,2 Z" /></g>'
        b'<g transform="matrix(2,0,0,2,0,0)"><text x="1" y="1">1</text>'
        b'<polyline points="0,0 1,1" /></g></svg>'
    )
    root = ET.fromstring(export.flatten_strokes(svg))
    first, second = root.findall(SVG + "g")
    assert "transform" not in first.attrib
    line, path = first
    assert line.get("points") == "10,20 12,17"
    assert path.get("d") == "M10,20 L12,20 C12,17 14,17 14,14 Z"
    assert "vector-effect" not in line.attrib
    assert second.get("transform") == "matrix(2,0,0,2,0,0)"  # text keeps its transform
    assert second[1].get("points") == "0,0 1,1"


def test_flatten_strokes_cuts_lines_at_their_plot():
    """A line in a plot's data units stops at the plot's edge (SVG Tiny has no clipping)."""
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg"><g transform="matrix(10,0,0,-10,50,50)">'
        b'<polyline points="0,0 2,0 9,0 9,1 0,1" />'  # out on the right, back in at y=1
        b'<polyline points="8,8 9,9" />'  # wholly outside: dropped
        b'<path d="M0,0 L1,1 M-1,-1 L-2,-2" /></g></svg>'
    )
    plot = ((10, 0, 0, -10, 50, 50), (0, 0, 100, 100))  # data -> pixels, rect in pixels
    group = ET.fromstring(export.flatten_strokes(svg, [plot])).find(SVG + "g")
    cut, path = list(group)
    assert cut.get("d") == "M50,50 L70,50 L100,50 M100,40 L50,40"
    assert path.get("d") == "M50,50 L60,40 M40,60 L30,70"


def test_race_svg_axes_line_up_with_the_surface(cli, tmp_path):
    out = tmp_path / "race.svg"
    args = ("race", "--preset", "lr_too_high", "--steps", 80, "--size", "800x600")
    r = cli(*args, "--out", out)
    assert r.returncode == 0, r.stderr
    svg = out.read_bytes()
    assert b"matrix(0.75" not in svg
    xmin, xmax, ymin, ymax = get_surface("ill_conditioned").bounds
    _check_axes(svg, (xmin, xmax), (ymin, ymax))
    _check_strokes_in_pixels(svg)
    # the diverging racer's zig-zag leaves the plot: its lines stop at the plot's edge
    (ix0, iy0, ix1, iy1), _ = _layout(svg)
    racer_lines = 0
    for group, m in _walk(ET.fromstring(svg)):
        if group.get("stroke") != "#e6194b" or group.tag != SVG + "g":
            continue
        for el in group:
            text = el.get("points") or el.get("d") or ""
            for x, y in re.findall(r"(-?[\d.e+-]+),(-?[\d.e+-]+)", text):
                px, py = (m @ [float(x), float(y), 1])[:2]
                assert ix0 - 2 <= px <= ix1 + 2 and iy0 - 2 <= py <= iy1 + 2, (px, py)
                racer_lines += 1
    assert racer_lines > 50
    # the racers' heads are vector symbols, not pieces of a pixmap atlas
    images = ET.fromstring(svg).iter(SVG + "image")
    assert len(list(images)) <= 2  # the heatmap and the colour bar's gradient


def test_landscape_svg_axes_line_up(qtbot):
    from app.landscape.view import LandscapeView

    view = LandscapeView()
    qtbot.addWidget(view)
    view.resize(640, 480)
    view.show()
    a, b = np.linspace(-1, 1, 21), np.linspace(-0.5, 1.5, 21)  # asymmetric: y is not x
    view.set_plane(a, b)
    view.set_grid(a[None, :] ** 2 + 3 * b[:, None] ** 2)
    da, db = a[1] - a[0], b[1] - b[0]
    svg = export.widget_svg(view, "t")
    _check_axes(svg, (a[0] - da / 2, a[-1] + da / 2), (b[0] - db / 2, b[-1] + db / 2))
    _check_strokes_in_pixels(svg)
    images = list(ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}image"))
    assert images and all("pixelated" in im.get("style", "") for im in images)  # cells, not blur


# --- GIF ---------------------------------------------------------------------------------------


def _gif_palettes(data: bytes) -> list[set]:
    """The colour table each frame is drawn with (its own, else the global one)."""

    def table(pos: int, flags: int):
        n = 3 * 2 ** ((flags & 7) + 1)
        raw = data[pos : pos + n]
        return {tuple(raw[i : i + 3]) for i in range(0, n, 3)}, pos + n

    def skip_blocks(pos: int) -> int:
        while data[pos]:
            pos += data[pos] + 1
        return pos + 1

    assert data[:6] in (b"GIF87a", b"GIF89a")
    flags, pos, out = data[10], 13, []
    glob, pos = table(pos, flags) if flags & 0x80 else (set(), pos)
    while data[pos] != 0x3B:
        if data[pos] == 0x21:  # an extension: label, then sub-blocks
            pos = skip_blocks(pos + 2)
        elif data[pos] == 0x2C:  # an image: descriptor, its own table or not, LZW data
            flags, pos = data[pos + 9], pos + 10
            local, pos = table(pos, flags) if flags & 0x80 else (glob, pos)
            out.append(local)
            pos = skip_blocks(pos + 1)
        else:
            raise AssertionError(f"unexpected GIF block {data[pos]:#x} at {pos}")
    return out


def _hex(c: str) -> tuple:
    return tuple(int(c[i : i + 2], 16) for i in (1, 3, 5))


def test_gif_keeps_the_racers_colours_exactly(monkeypatch, qapp):
    """Median cut alone turned thin blue, red and purple lines teal, olive and grey."""
    from app.race.render import race_gif
    from core.race.session import load_preset

    s = load_preset("momentum_overshoot")
    surface = s.surface.build()
    colours = [PALETTE[2], PALETTE[0], PALETTE[4]]  # blue, red, purple: the ones that changed
    data = race_gif(
        surface, s.racers, s.start or surface.start, colours, 40, 6, (480, 360), dark=True
    )
    palettes = _gif_palettes(data)
    assert len(palettes) == 6
    for pal in palettes:
        assert {_hex(c) for c in colours} <= pal
    monkeypatch.setattr(
        GifImagePlugin,
        "LOADING_STRATEGY",
        GifImagePlugin.LoadingStrategy.RGB_AFTER_DIFFERENT_PALETTE_ONLY,
    )
    with Image.open(io.BytesIO(data)) as im:
        im.seek(im.n_frames - 1)
        last = np.asarray(im.convert("RGB")).reshape(-1, 3)
    pixels = {tuple(p) for p in np.unique(last, axis=0)}
    for c in colours:
        assert _hex(c) in pixels, c
    assert (255, 255, 255) in pixels  # the start marker and the labels stay white


def test_gif_reserved_colours_survive_any_palette_size(qapp):
    from PySide6 import QtGui

    image = QtGui.QImage(200, 100, QtGui.QImage.Format.Format_RGB32)
    painter = QtGui.QPainter(image)
    ramp = QtGui.QLinearGradient(0, 0, 200, 100)  # hundreds of colours for median cut to pick
    ramp.setColorAt(0, QtGui.QColor("#440154"))
    ramp.setColorAt(1, QtGui.QColor("#fde725"))
    painter.fillRect(image.rect(), ramp)
    for i, c in enumerate(PALETTE):  # one thin line each: too few pixels for median cut
        painter.setPen(QtGui.QPen(QtGui.QColor(c), 1))
        painter.drawLine(0, 5 + 9 * i, 199, 5 + 9 * i)
    painter.end()
    data = export.gif_bytes([image, image], colours=32, keep=PALETTE)
    with Image.open(io.BytesIO(data)) as im:
        pixels = {tuple(p) for p in np.asarray(im.convert("RGB")).reshape(-1, 3)}
    assert {_hex(c) for c in PALETTE} <= pixels
    with pytest.raises(export.ExportError, match="not a colour"):
        export.gif_bytes([image], keep=["#nothex"])


# --- MP4 ---------------------------------------------------------------------------------------


def _mp4_frames(path) -> tuple[dict, list[np.ndarray]]:
    """The MP4's stream facts and its frames as (H, W, 3) arrays, decoded by ffmpeg."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return meta, [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]


def test_mp4_has_the_gifs_frames_in_h264(qapp, tmp_path):
    """race_frames renders for both the GIF and the MP4: every frame, in order, and an odd
    size made even (yuv420p needs it)."""
    from app.race.render import even_size, race_frames
    from core.race.session import load_preset

    s = load_preset("momentum_overshoot")
    surface = s.surface.build()
    start = s.start or surface.start
    frames = race_frames(surface, s.racers, start, PALETTE[:3], 40, 7, even_size((321, 241)), True)
    export.atomic_write(tmp_path / "r.mp4", export.mp4_bytes(frames))
    meta, decoded = _mp4_frames(tmp_path / "r.mp4")
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["size"] == (320, 240) and meta["fps"] == 20.0
    assert len(decoded) == len(frames) == 7
    for mine, source in zip(decoded, frames, strict=True):  # lossy, but the same pictures
        assert np.abs(mine.astype(float) - export._rgb_array(source)).mean() < 6
    moved = np.abs(decoded[0].astype(float) - decoded[-1]).mean()
    assert moved > 1  # the racers moved: not one frame repeated


def test_mp4_crops_an_odd_frame_to_even(qapp, tmp_path):
    from PySide6 import QtGui

    image = QtGui.QImage(65, 33, QtGui.QImage.Format.Format_RGB32)
    image.fill(QtGui.QColor("#336699"))
    (tmp_path / "o.mp4").write_bytes(export.mp4_bytes([image] * 3))
    meta, decoded = _mp4_frames(tmp_path / "o.mp4")
    assert meta["size"] == (64, 32) and len(decoded) == 3
    assert np.abs(decoded[1][16, 32].astype(int) - (0x33, 0x66, 0x99)).max() <= 4
    with pytest.raises(export.ExportError, match="no frames"):
        export.mp4_bytes([])


def test_a_failed_mp4_leaves_the_old_file_and_nothing_else(qapp, tmp_path, monkeypatch):
    """ffmpeg dies half-way: its partial file goes with its temporary folder; the target keeps
    its old content, and the message says what happened."""
    import imageio_ffmpeg
    from PySide6 import QtGui

    used = []

    def dying_writer(path, *args, **kwargs):
        used.append(path)
        with open(path, "wb") as f:
            f.write(b"\0\0\0\x18ftypisom half")
        yield
        raise OSError("[Errno 32] Broken pipe")

    monkeypatch.setattr(imageio_ffmpeg, "write_frames", dying_writer)
    target = tmp_path / "race.mp4"
    target.write_bytes(b"the old video")
    image = QtGui.QImage(64, 48, QtGui.QImage.Format.Format_RGB32)
    with pytest.raises(export.ExportError, match="could not encode the MP4: .*Broken pipe"):
        export.atomic_write(target, export.mp4_bytes([image, image]))
    assert target.read_bytes() == b"the old video"
    assert [p.name for p in tmp_path.iterdir()] == ["race.mp4"]
    assert used and not os.path.exists(os.path.dirname(used[0]))  # ffmpeg's folder is gone


def test_race_mp4_export_in_the_window(main_window, tmp_path, monkeypatch):
    """File > Export > Race as MP4: listed, writes an even-sized H.264 file; an unwritable
    path is refused before any frame is rendered, with a message and nothing written."""
    from PySide6 import QtWidgets

    from app.race import exports as rx

    ws = main_window.race
    ws.c.step(30)
    entry = next(e for e in ws.exports() if e.label == "Race as &MP4...")
    assert entry.filter == "MP4 video (*.mp4)" and entry.default == "race.mp4"
    rx.mp4(ws, str(tmp_path / "r.mp4"), frames=5, size=(333, 251))
    meta, decoded = _mp4_frames(tmp_path / "r.mp4")
    assert meta["size"] == (332, 250) and len(decoded) == 5
    seen = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "warning", lambda *a, **k: seen.append(a[2]))
    rendered = []
    monkeypatch.setattr(rx, "race_frames", lambda *a, **k: rendered.append(1))
    assert not main_window.run_export(entry, str(tmp_path / "no" / "r.mp4"))
    assert seen and "does not exist" in seen[-1] and not rendered
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.mp4", "s.ini"]
