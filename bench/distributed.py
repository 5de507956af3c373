"""Landscape grids over torch.distributed ranks: points/s and scaling; prints a table, not a test.

For the BN-ResNet example (core/train/examples/resnet_bn.py, the generic evaluator) and LeNet-5
(synthetic digits, 1,000 images, the fast evaluator, eager and compiled with torch.compile as
`losslab landscape` does for large grids), the same grid of filter-normalised random directions
is computed:

* 1 process, 1 thread;
* 1 process, 2 threads;
* 2 ranks (torchrun, gloo, rendezvous on 127.0.0.1), 1 thread each;
* 2 processes of 1 thread with no torch.distributed at all, each filling its half of the grid
  from the same moment: the most 2 cores of this machine give (its ceiling), against which
  the ranks' figure shows what sharing the grid costs.

Only the grid is timed (after loading, on rank 0, between two barriers). Scaling efficiency is
the speed-up over 1 process x 1 thread divided by the number of cores used. Grids: 9x9 for the
BN-ResNet (~0.1 s a point), 17x17 for LeNet (~25 ms a point): on a 9x9 LeNet grid (~1 s on two
ranks) the fixed costs of a run (the first gather, each rank's first points) showed as poor
scaling (1.63x where 17x17 gives 1.81x), and real grids are 51x51.

Run: .venv/bin/python bench/distributed.py [--grid N] [--repeats 3] [--models lenet]
[--eval-batch 500]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.landscape.evaluator import EVAL_BATCH  # noqa: E402


def child(model: str, grid: int, threads: int, eval_batch: int, half: str = "") -> None:
    import numpy as np
    import torch

    from core.landscape import distributed as dist
    from core.landscape.directions import flat_parameters, random_directions

    world = dist.World.from_env()
    dist.start(world)
    torch.set_num_threads(threads)
    if model == "resnet_bn":
        from core.landscape.generic import GenericEvaluator
        from core.train.experiment import load_experiment

        e = load_experiment(ROOT / "core" / "train" / "examples" / "resnet_bn.py")
        m = e.build_model().eval()
        c = flat_parameters(m)
        d1, d2 = random_directions(m, 0)
        ev = GenericEvaluator(m, e.batches(), e.loss, c, d1, d2, accuracy=True)
    else:
        from core.landscape.evaluator import PlaneEvaluator
        from core.train.losses import LossSpec, build_loss
        from core.train.tasks import build_task

        setup = build_task("lenet", dataset="synthetic")
        m = setup.model.eval()
        c = flat_parameters(m)
        d1, d2 = random_directions(m, 0)
        ev = PlaneEvaluator(
            m, build_loss(LossSpec("cross_entropy")), setup.val_x[:1000], setup.val_y[:1000],
            c, d1, d2, 10, batch=eval_batch,
        )  # fmt: skip
        if model == "lenet-compiled":  # what `losslab landscape` does for large grids
            ev.compile()
    axes = np.linspace(-1, 1, grid)
    target = dist.PartialGrid.empty("bench", (grid, grid), True) if world.main else None
    if world.distributed:
        torch.distributed.barrier()
    if half:  # "i/n@t": the i-th of n equal runs of the grid's points, started at time t
        i, rest = half.split("/")
        n, at = rest.split("@")
        flat = target.done.ravel()
        keep = np.array_split(np.arange(flat.size), int(n))[int(i)]
        flat[:] = True
        flat[keep] = False
        time.sleep(max(0.0, float(at) - time.time()))
    t0 = time.perf_counter()
    for _ in dist.fill(ev, axes, axes, target, world):
        pass
    if world.distributed:
        torch.distributed.barrier()
    seconds = time.perf_counter() - t0
    if world.main:
        print(json.dumps({"points_per_s": grid * grid / seconds, "seconds": seconds,
                          "ended": time.time()}))  # fmt: skip
    dist.stop(world)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alone(model: str, grid: int, n: int, eval_batch: int) -> float:
    """``n`` one-thread processes, no torch.distributed, each filling 1/n of the grid from one
    moment (after all have loaded): points/s of the whole grid until the last one ends."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    at = time.time() + 15  # every child has imported torch and built its model by then
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                model,
                "--grid",
                str(grid),
                "--threads",
                "1",
                "--eval-batch",
                str(eval_batch),
                "--half",
                f"{i}/{n}@{at}",
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for i in range(n)
    ]
    ends = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"a child failed ({p.returncode})")
        ends.append(json.loads([x for x in out.splitlines() if x.startswith("{")][-1])["ended"])
    if time.time() < at:
        raise SystemExit("a child ended before the start: raise the 15 s head start")
    return grid * grid / (max(ends) - at)


def measure(model: str, grid: int, ranks: int, threads: int, eval_batch: int) -> float:
    if threads == 0:  # the ceiling: ranks processes with no collectives
        return alone(model, grid, ranks, eval_batch)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    me = [__file__, "--child", model, "--grid", str(grid), "--threads", str(threads)]
    me += ["--eval-batch", str(eval_batch)]
    if ranks == 1:
        cmd = [sys.executable, *me]
    else:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
            "--nproc-per-node", str(ranks), "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"127.0.0.1:{free_port()}", *me,
        ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("{")][-1]
    return json.loads(line)["points_per_s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, help="points a side, for every model (default: 9 for "
                    "resnet_bn, 17 for LeNet)")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--half", default="", help=argparse.SUPPRESS)
    ap.add_argument(
        "--models",
        default="resnet_bn,lenet,lenet-compiled",
        help="comma-separated: resnet_bn, lenet (eager), lenet-compiled (torch.compile)",
    )
    ap.add_argument(
        "--eval-batch",
        type=int,
        default=EVAL_BATCH,
        help=f"LeNet's images per forward pass on the plane (default {EVAL_BATCH})",
    )
    args = ap.parse_args()
    if args.child:
        child(args.child, args.grid, args.threads, args.eval_batch, args.half)
        return 0
    import torch

    print(f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}")  # fmt: skip
    print(f"median of {args.repeats} interleaved runs")
    setups = [("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2),
              ("2 ranks x 1 thread", 2, 1),
              ("2 processes x 1 thread, no collectives (ceiling)", 2, 0)]  # fmt: skip
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(models) - {"resnet_bn", "lenet", "lenet-compiled"}
    if unknown:
        ap.error(f"unknown model(s): {', '.join(sorted(unknown))}")
    print(f"LeNet: {args.eval_batch} images per forward pass on the plane\n")
    print("| model | grid | setup | points/s | speed-up | scaling efficiency | of the ceiling |")
    print("|---|---|---|---|---|---|---|")
    for model in models:
        grid = args.grid or (9 if model == "resnet_bn" else 17)
        got: dict[str, list[float]] = {s[0]: [] for s in setups}
        for _ in range(args.repeats):
            for name, ranks, threads in setups:
                got[name].append(measure(model, grid, ranks, threads, args.eval_batch))
        base = statistics.median(got[setups[0][0]])
        ceiling = statistics.median(got[setups[-1][0]])
        for name, ranks, threads in setups:
            rate = statistics.median(got[name])
            cores = ranks * max(threads, 1)
            print(f"| {model} | {grid}x{grid} | {name} | {rate:.2f} | {rate / base:.2f}x | "
                  f"{rate / base / cores:.0%} | {rate / ceiling:.0%} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
