"""Sweep benchmark: prints a table; not a test.

64x64 cells x 500 steps on Rosenbrock (the goal: < 5 s), for the ways a sweep can batch cells
whose hyperparameters all differ while using the real torch.optim classes:

- grouped: cells sharing every optimizer hyperparameter share a param group, lr folded into the
  positions (64 groups of 64 cells); with torch's foreach, single-tensor or fused kernels
  (fused SGD/Adam hand each tiny group to OpenMP threads: on a loaded 2-core box that costs
  up to ~10 ms per group per step; single-tensor was the steadiest, so it is the default);
- one group per cell (4096 groups): exact rounding, the reference. Too slow to run 500 steps, so
  it runs ``--cell-steps`` steps and the table extrapolates (marked "*").

Variants run interleaved, ``--repeats`` times, medians: the machine is shared and noisy.

Run: .venv/bin/python bench/sweep.py [--repeats N] [--grid N] [--steps N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from core.optimizers import OptimizerSpec
from core.race.race import RacerSpec
from core.race.surfaces import get_surface
from core.race.sweep import SweepAxis, SweepMap, sweep_map

MAPS = {
    "Adam (lr, beta1)": (
        "adam",
        SweepAxis("lr", 1e-3, 1.0, True),
        SweepAxis("beta1", 0.0, 0.99),
    ),
    "momentum (lr, momentum)": (
        "momentum",
        SweepAxis("lr", 1e-5, 3e-3, True),
        SweepAxis("momentum", 0.0, 0.99),
    ),
}
VARIANTS = [  # (label, strategy, impl, full run)
    ("grouped, single-tensor (default)", "auto", "single", True),
    ("grouped, foreach", "auto", "foreach", True),
    ("grouped, fused", "auto", "fused", True),
    ("one group per cell, foreach", "cells", "foreach", False),
    ("one group per cell, single", "cells", "single", False),
]
# One fused group per cell is left out: ~13 ms per group per step here under load (OpenMP),
# i.e. ~50 s per step for 4096 cells; /tmp measurements unloaded gave ~45 us per group.


def time_sweep(key, x, y, grid, steps, strategy, impl) -> tuple[float, str]:
    surface = get_surface("rosenbrock")
    racer = RacerSpec(OptimizerSpec(key, {}))
    items = sweep_map(
        surface, racer, x, y, grid=grid, steps=steps + 1, strategy=strategy, impl=impl, chunk=1
    )
    next(items)  # the set-up and the first step: the plan and torch's per-group state
    t0 = time.perf_counter()
    result = None
    for item in items:
        result = item
    elapsed = time.perf_counter() - t0
    assert isinstance(result, SweepMap)
    return elapsed, result.grouped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--grid", type=int, default=64)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--cell-steps", type=int, default=10)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, ")
    print(f"{torch.get_num_threads()} threads; {args.grid}x{args.grid} cells x {args.steps} steps")
    times: dict[tuple[str, str], list[float]] = {}
    layout: dict[tuple[str, str], str] = {}
    for _ in range(args.repeats):  # interleaved, so load changes hit every variant alike
        for name, (key, x, y) in MAPS.items():
            for label, strategy, impl, full in VARIANTS:
                steps = args.steps if full else args.cell_steps
                t, grouped = time_sweep(key, x, y, args.grid, steps, strategy, impl)
                times.setdefault((name, label), []).append(t * args.steps / steps)
                layout[(name, label)] = grouped
    print(f"\n{'map':26s} {'variant':34s} {'layout':28s} {'seconds':>9s}")
    for (name, label), ts in times.items():
        full = next(v[3] for v in VARIANTS if v[0] == label)
        mark = "" if full else "*"
        print(
            f"{name:26s} {label:34s} {layout[(name, label)]:28s} {statistics.median(ts):8.2f}{mark}"
        )
    print(f"\n* extrapolated from {args.cell_steps} steps (per-step cost is flat)")
    print("Times are steps only: the set-up and the first step are left out.")


if __name__ == "__main__":
    main()
