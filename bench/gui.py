"""GUI benchmark: prints tables; not a test.

1. Animation: frames per second of the Race workspace with 8 racers on a 512x512 surface
   (heatmap, 14 contour levels, growing paths, loss curves, figures), one race step per
   frame, rendered offscreen, driven by the app's own timer; frames are counted as real
   paint events of the surface view.
2. Startup: wall time from launching `python -m app` to the first painted window, median of
   several cold starts.

Run: .venv/bin/python bench/gui.py [--seconds S] [--starts N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

RACERS = ["sgd", "momentum", "nesterov", "rmsprop", "adagrad", "adam", "adamw", "nadam"]
LR = {
    "sgd": 1e-3,
    "momentum": 2e-4,
    "nesterov": 2e-4,
    "rmsprop": 1e-2,
    "adagrad": 0.1,
    "adam": 0.02,
    "adamw": 0.02,
    "nadam": 0.02,
}


class PaintCounter:
    """Counts real paint events of a widget (what the user sees), via an event filter."""

    def __init__(self, widget) -> None:
        from PySide6 import QtCore

        class Filter(QtCore.QObject):
            count = 0

            def eventFilter(self, obj, event):  # noqa: N802 (Qt's name)
                if event.type() == QtCore.QEvent.Type.Paint:
                    Filter.count += 1
                return False

        self.filter = Filter()
        widget.installEventFilter(self.filter)

    @property
    def count(self) -> int:
        return type(self.filter).count


def bench_fps(seconds: float, size: tuple[int, int]) -> None:
    from PySide6 import QtCore, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    from app.collect import collect_between_events

    collect_between_events(app)  # garbage collected as the app collects it (app.main)
    from app.main_window import MainWindow
    from core.optimizers import OptimizerSpec
    from core.race.race import RacerSpec
    from core.race.session import RaceSession, SurfaceChoice

    settings = QtCore.QSettings("/dev/null", QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings=settings, restore=False)
    w.resize(*size)
    w.show()
    racers = tuple(RacerSpec(OptimizerSpec(k, {"lr": LR[k]}), name=k) for k in RACERS)
    c = w.race.c
    c.apply_session(RaceSession(SurfaceChoice("rosenbrock"), None, racers, 1))
    assert w.race.view.image.image.shape == (512, 512)
    for _ in range(20):
        app.processEvents()
    paints = PaintCounter(w.race.view.viewport())
    c.max_steps = 10**6
    c.timer.setInterval(0)  # as fast as it goes: the app itself runs at 16 ms a frame
    start_steps, start_paints = c.race.step_count, paints.count
    t0, cpu0 = time.perf_counter(), time.process_time()
    c.play()
    while time.perf_counter() - t0 < seconds:
        app.processEvents()
    c.pause()
    dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    steps, frames = c.race.step_count - start_steps, paints.count - start_paints
    print(
        f"\nRace workspace {size[0]}x{size[1]}, 8 racers, 512x512 surface, 1 step per frame, "
        f"driven by the app's QTimer at 0 ms for {seconds:g} s"
    )
    # On a shared VM the wall clock includes time stolen by neighbours; CPU time per frame
    # says what the app itself costs (the frame rate it could sustain on this core).
    print(f"{'steps/s':>9}{'repaints/s (wall)':>19}{'CPU ms/frame':>14}{'fps by CPU':>12}")
    print(
        f"{steps / dt:>9.1f}{frames / dt:>19.1f}{1000 * cpu / frames:>14.2f}{frames / cpu:>12.1f}"
    )
    w.close()


def bench_startup(starts: int) -> None:
    env = {**os.environ, "LOSSLAB_REPORT_STARTUP": "1", "QT_QPA_PLATFORM": "offscreen"}
    painted, ready = [], []
    for _ in range(starts):
        t0 = time.time()
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "app",
                "--quit-after",
                "100",
                "--preset",
                "sgd_vs_adam_rosenbrock",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        marks = dict(line.split() for line in out.stdout.splitlines() if "-at " in line)
        painted.append(float(marks["painted-at"]) - t0)
        ready.append(float(marks["ready-at"]) - t0)
    print(f"\nStartup of python -m app (offscreen), median of {starts} cold starts")
    print(f"{'event':<44}{'median s':>10}{'min s':>8}{'max s':>8}")
    for label, v in (
        ("window painted (loading PyTorch)", painted),
        ("Race workspace ready (torch, optimizers)", ready),
    ):
        print(f"{label:<44}{statistics.median(v):>10.2f}{min(v):>8.2f}{max(v):>8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--starts", type=int, default=5)
    args = ap.parse_args()
    import torch

    print(f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}")  # fmt: skip
    for size in ((1440, 900), (1920, 1200)):
        bench_fps(args.seconds, size)
    bench_startup(args.starts)


if __name__ == "__main__":
    main()
