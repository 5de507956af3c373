"""Race benchmark: prints tables; not a test.

1. race-steps/s for 8 racers x 1 start through core.race.race.Race, against a plain loop that steps
   each racer with its own forward/backward (what a user would write). Interleaved repeats,
   medians: this machine is noisy.
2. 65,536 start points (a 256x256 grid) x 500 Adam steps on Rosenbrock.
3. A race GIF: rendering its frames offscreen, then encoding them (the racers' colours kept).

Run: .venv/bin/python bench/race.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from core.optimizers import OptimizerSpec, build_optimizer
from core.race.race import Race, RacerSpec
from core.race.surfaces import get_surface

# A typical race: 8 racers of 6 torch.optim classes (SGD appears three times).
TYPICAL = [
    ("sgd", {"lr": 1e-3}),
    ("momentum", {"lr": 1e-4}),
    ("nesterov", {"lr": 1e-4}),
    ("rmsprop", {"lr": 1e-2}),
    ("adagrad", {"lr": 0.1}),
    ("adam", {"lr": 0.02}),
    ("adamw", {"lr": 0.02}),
    ("nadam", {"lr": 0.02}),
]
# The worst case for sharing: 8 racers, 8 different classes.
DISTINCT = [
    ("sgd", {"lr": 1e-3}),
    ("rmsprop", {"lr": 1e-2}),
    ("adagrad", {"lr": 0.1}),
    ("adam", {"lr": 0.02}),
    ("adamw", {"lr": 0.02}),
    ("nadam", {"lr": 0.02}),
    ("radam", {"lr": 0.02}),
    ("adamax", {"lr": 0.02}),
]
# A learning-rate sweep: 8 racers of one class.
SWEEP = [("momentum", {"lr": lr}) for lr in (1e-5, 3e-5, 1e-4, 2e-4, 3e-4, 5e-4, 7e-4, 1e-3)]
MIXES = {
    "typical (6 classes)": TYPICAL,
    "distinct (8 classes)": DISTINCT,
    "lr sweep (1 class)": SWEEP,
}
RACERS = TYPICAL


def plain_loop(surface, steps: int, racers) -> float:
    params, opts = [], []
    for key, hyper in racers:
        p = torch.tensor(surface.start, dtype=torch.float64, requires_grad=True)
        params.append(p)
        opts.append(build_optimizer(OptimizerSpec(key, hyper), [p]))
    t0 = time.perf_counter()
    for _ in range(steps):
        for p, opt in zip(params, opts, strict=True):
            opt.zero_grad()
            loss = surface(p[0], p[1])
            loss.backward()
            opt.step()
    return steps / (time.perf_counter() - t0)


def race_loop(surface, steps: int, history: str, racers) -> float:
    race = Race(surface, [RacerSpec(OptimizerSpec(k, h)) for k, h in racers], history=history)
    t0 = time.perf_counter()
    race.step(steps)
    return steps / (time.perf_counter() - t0)


def bench_racers(repeats: int, steps: int) -> None:
    print(
        f"\n8 racers x 1 start, {steps} steps; race-steps/s, median of {repeats} interleaved runs"
    )
    print(
        f"{'surface':<17}{'racers':<22}{'plain loop':>11}{'Race full':>11}{'Race path':>11}"
        f"{'full/plain':>11}{'path/plain':>11}"
    )
    for surface_key in ("rosenbrock", "goldstein_price", "ackley"):
        s = get_surface(surface_key)
        for mix, racers in MIXES.items():
            res: dict[str, list[float]] = {"plain": [], "full": [], "path": []}
            for _ in range(repeats):  # interleaved
                res["plain"].append(plain_loop(s, steps, racers))
                res["full"].append(race_loop(s, steps, "full", racers))
                res["path"].append(race_loop(s, steps, "path", racers))
            plain, full, path = (statistics.median(res[k]) for k in ("plain", "full", "path"))
            print(
                f"{surface_key:<17}{mix:<22}{plain:>11,.0f}{full:>11,.0f}{path:>11,.0f}"
                f"{full / plain:>10.1f}x{path / plain:>10.1f}x"
            )


def bench_grid(steps: int, side: int) -> None:
    s = get_surface("rosenbrock")
    xmin, xmax, ymin, ymax = s.bounds
    gx, gy = np.meshgrid(np.linspace(xmin, xmax, side), np.linspace(ymin, ymax, side))
    starts = np.stack([gx.ravel(), gy.ravel()], axis=1)  # (side*side, 2)
    print(f"\n{side * side:,} starts x {steps} Adam steps (lr 0.01) on Rosenbrock")
    print(f"{'dtype':<10}{'seconds':>10}{'point-steps/s':>16}{'converged':>11}")
    for dtype in (torch.float32, torch.float64):
        race = Race(
            s,
            [RacerSpec(OptimizerSpec("adam", {"lr": 0.01}))],
            starts=starts,
            dtype=dtype,
            history="none",
        )
        t0 = time.perf_counter()
        race.step(steps)
        dt = time.perf_counter() - t0
        d = race.metrics(0, eps=1e-2).final_distance
        print(
            f"{str(dtype).split('.')[-1]:<10}{dt:>10.2f}{side * side * steps / dt:>16,.0f}"
            f"{np.mean(d < 0.1):>10.0%}"
        )


def bench_gif(frames: int, repeats: int) -> None:
    """Rendering ``frames`` 800x600 pictures offscreen, then encoding them as a GIF."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6 import QtWidgets

    _app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])  # lives to the end
    from app import export
    from app.colors import PALETTE
    from app.race.render import OffscreenView
    from core.race.session import load_preset

    session = load_preset("momentum_overshoot")
    surface = session.surface.build()
    race = Race(surface, session.racers, starts=session.start or surface.start)
    colours = PALETTE[: race.n_racers]
    view = OffscreenView(800, 600)

    def grab(n: int):
        race.step(n)
        view.show_race(race, colours)
        return view.image()

    t0 = time.perf_counter()
    shots = export.render_frames(grab, 300, frames)
    render = time.perf_counter() - t0
    view.close()
    encode = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        data = export.gif_bytes(shots, keep=colours)
        encode.append(time.perf_counter() - t0)
    print(f"\nGIF of {len(shots)} frames, 800x600, {len(colours)} racer colours kept")
    print(f"{'render s':>10}{'encode s':>10}{'frames/s':>10}{'kB':>8}")
    enc = statistics.median(encode)
    print(f"{render:>10.2f}{enc:>10.2f}{len(shots) / (render + enc):>10.1f}{len(data) / 1e3:>8.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--frames", type=int, default=120, help="GIF frames (default 120)")
    args = ap.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}"
    )
    bench_racers(args.repeats, args.steps)
    bench_grid(500, args.side)
    bench_gif(args.frames, args.repeats)


if __name__ == "__main__":
    main()
