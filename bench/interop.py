"""Interop benchmark: prints tables; not a test.

1. A landscape written and read as loss-landscape's .h5, and written as ParaView's .vtp (ASCII
   XML), at the resolutions the Landscape tab offers: seconds and file sizes.
2. A race animation: the same frames encoded as GIF and as H.264 MP4, seconds and bytes.

Run: .venv/bin/python bench/interop.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from core.landscape import formats
from core.landscape.plane import Landscape


def landscape(resolution: int, params: int = 61_706) -> Landscape:
    """A LeNet-sized plane (61,706 parameters) with a 200-point projected path."""
    a = np.linspace(-1, 1, resolution)
    xm, ym = np.meshgrid(a, a)
    rng = np.random.default_rng(0)
    vec = [rng.normal(size=params).astype(np.float32) for _ in range(3)]
    path = np.column_stack([np.linspace(-0.9, 0, 200), np.linspace(0.8, 0, 200)])
    return Landscape(
        a,
        a.copy(),
        np.log1p(xm**2 + 3 * ym**2) + 0.05 * np.sin(9 * xm),
        np.clip(1 - xm**2, 0, 1),
        *vec,
        "random",
        extras={"path": path, "path_plane_loss": np.linspace(2, 0, 200)},
    )


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def bench_landscapes(folder: Path) -> None:
    print(f"{'grid':>9s}  {'h5 write':>9s}  {'h5 read':>8s}  {'h5 MB':>6s}  ", end="")
    print(f"{'vtp write':>9s}  {'vtp MB':>7s}")
    for r in (41, 101, 201, 401):
        land = landscape(r)
        h5, vtp = folder / f"l{r}.h5", folder / f"l{r}.vtp"
        _, w = timed(lambda land=land, h5=h5: formats.write_h5(land, h5))
        _, rd = timed(lambda h5=h5: formats.read_h5(h5))
        _, v = timed(lambda land=land, vtp=vtp: formats.write_vtp(land, vtp))
        print(
            f"{r:>4d}x{r:<4d}  {w:8.3f}s  {rd:7.3f}s  {h5.stat().st_size / 1e6:6.2f}  "
            f"{v:8.2f}s  {vtp.stat().st_size / 1e6:7.2f}"
        )


def bench_animation() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    from app import export
    from app.colors import PALETTE
    from app.race.render import race_frames
    from core.race.session import load_preset

    _app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench"])
    s = load_preset("momentum_overshoot")
    surface = s.surface.build()
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(s.racers))]
    print(f"\n{'size':>9s}  {'frames':>6s}  {'render':>7s}  {'GIF':>13s}  {'MP4':>13s}")
    for size in ((800, 600), (1600, 1200)):
        frames, render = timed(
            lambda size=size: race_frames(
                surface, s.racers, s.start or surface.start, colours, 300, 120, size, True
            )
        )
        gif, g = timed(lambda frames=frames: export.gif_bytes(frames, keep=colours))
        mp4, m = timed(lambda frames=frames: export.mp4_bytes(frames))
        print(
            f"{size[0]:>4d}x{size[1]:<4d}  {len(frames):6d}  {render:6.1f}s  "
            f"{len(gif) / 1e3:6.0f} kB {g:4.1f}s  {len(mp4) / 1e3:6.0f} kB {m:4.1f}s"
        )


if __name__ == "__main__":
    import torch

    print(f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        bench_landscapes(Path(tmp))
    bench_animation()
