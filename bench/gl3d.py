"""3-D view benchmark: prints a table; not a test.

Orbits the camera around a 256x256 Rosenbrock terrain with 8 racers' paths (1,000 points each)
for a few seconds and counts the frames OpenGL really drew (paintGL calls). Needs an OpenGL
display: run it under Xvfb, where Mesa's llvmpipe renders in software (the slow case):

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python bench/gl3d.py

Without OpenGL it says why and exits 0 (there is nothing to measure).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--sizes",
        default="860x560,1200x800,1600x1000",
        help="GL area sizes (the first is the Race tab's 3-D view in the default 1440x900 window)",
    )
    args = ap.parse_args()
    import torch

    print(f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}")  # fmt: skip
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        del os.environ["QT_QPA_PLATFORM"]  # OpenGL needs a real (or Xvfb) display
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        print("No 3-D here: no display. Run under xvfb-run (see the docstring).")
        return 0
    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench"])
    from app.views.surface3d import Surface3DView, gl_problem

    problem = gl_problem()
    if problem:
        print(f"No 3-D here: {problem}. Run under xvfb-run (see the docstring).")
        return 0
    import numpy as np
    import torch

    from app.colors import PALETTE
    from app.views.surface_view import display_transform, display_values
    from core.optimizers import OptimizerSpec
    from core.race.race import Race, RacerSpec
    from core.race.surfaces import get_surface

    surface = get_surface("rosenbrock")
    opts = ["sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam", "adamw", "nadam"]
    lr = {"sgd": 1e-3, "momentum": 2e-4, "nesterov": 2e-4, "rmsprop": 1e-2, "adagrad": 0.1}
    specs = [RacerSpec(OptimizerSpec(o, {"lr": lr.get(o, 0.02)}), name=o) for o in opts]
    race = Race(surface, specs, np.array([[-1.5, 2.5]]))
    race.step(1000)
    pos = race.history.get("pos")
    paths = [pos[:, r, 0] for r in range(len(specs))]

    view = Surface3DView()
    view.show()
    xs, ys, z = surface.grid(256, dtype=torch.float64)
    z = z.numpy()
    shown, lo, hi = display_values(z, surface.scale)
    to_shown = display_transform(z, surface.scale)

    def height_of(points):
        with torch.no_grad():
            t = torch.as_tensor(points, dtype=torch.float64)
            return to_shown(surface.fn(t[:, 0], t[:, 1]).numpy())

    view.set_grid(xs.numpy(), ys.numpy(), shown, lo, hi, height_of)
    view.set_paths(paths, PALETTE[: len(paths)], race.positions[:, 0])
    frames = [0]
    renderer: list[str] = []
    original = view.view.paintGL

    def counted(*a, **k):
        frames[0] += 1
        if not renderer:  # the context is current here
            from OpenGL import GL

            renderer.append(
                " / ".join(GL.glGetString(n).decode() for n in (GL.GL_RENDERER, GL.GL_VERSION))
            )
        return original(*a, **k)

    view.view.paintGL = counted
    for _ in range(20):
        app.processEvents()
        time.sleep(0.01)
    print(f"OpenGL: {renderer[0] if renderer else 'unknown (nothing drawn yet)'}")
    print(
        f"Surface 256x256 ({view.surface.triangles:,} triangles in {len(view.surface.chunks)}"
        f" flushed chunks), 8 paths x {len(pos):,} points"
    )
    print()
    print("| GL area | frames/s (median) | runs |")
    print("|---|---|---|")
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        bar = view.height() - view.container.height()
        view.resize(w, h + bar)
        for _ in range(20):
            app.processEvents()
            time.sleep(0.01)
        results = []
        for _ in range(args.repeats):
            frames[0] = 0
            t0 = time.perf_counter()
            azimuth = 0.0
            while time.perf_counter() - t0 < args.seconds:
                azimuth += 2.0
                view.view.setCameraPosition(azimuth=azimuth)  # an orbit: every frame redraws
                view.view.update()
                app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents)
            results.append(frames[0] / (time.perf_counter() - t0))
        area = f"{view.container.width()}x{view.container.height()}"
        runs = ", ".join(f"{r:.1f}" for r in results)
        print(f"| {area} | {statistics.median(results):.1f} | {runs} |")
    print()
    print("Goal: >= 30 frames/s while orbiting.")
    view.release()
    view.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
