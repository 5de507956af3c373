"""Sharpness tracking's cost: prints a table; not a test.

LeNet-5 with the task's defaults (SGD + momentum, batch 32) trains one epoch with
``track_sharpness`` N and once without, interleaved in one process, R times. The table gives
the share of the tracked run's training time that the tracker itself reports (the time inside
its measurements over the time since the first step) and the overhead measured from outside
(1 - untracked time / tracked time), with the products per measurement. Goal: <= 25% at the
default N (core.train.sharpness.DEFAULT_EVERY).

Run: LOSSLAB_DATA_DIR=../shared/data/mnist .venv/bin/python bench/sharpness.py [--every N ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def one_run(every: int, limit: int | None, batch: int) -> dict:
    from core.train.sharpness import Sharpness
    from core.train.training import Finished, Step, TrainConfig, train

    config = TrainConfig(
        task="lenet",
        epochs=1,
        dataset="mnist",
        limit=limit,
        batch_size=batch,
        track_sharpness=every,
    )
    t_first = None
    products, measured, summary = [], 0, {}
    for e in train(config):
        if isinstance(e, Step) and t_first is None:
            t_first = time.perf_counter()
        elif isinstance(e, Sharpness):
            products.append(e.products)
            measured += e.seconds
        elif isinstance(e, Finished):
            seconds = time.perf_counter() - t_first
            summary = e.final.get("sharpness", {})
    return {
        "seconds": seconds,
        "share": summary.get("share", 0.0),
        "products": products,
        "measured": measured,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, nargs="+", help="N values (default: the default N)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--limit", type=int, help="training images (default: all)")
    args = ap.parse_args()
    import torch

    from core.train.data import mnist_status
    from core.train.sharpness import DEFAULT_EVERY

    found, text = mnist_status()
    if not found:
        print(f"{text}: set LOSSLAB_DATA_DIR", file=sys.stderr)
        return 2
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} cores; load average {load:.2f}"
    )
    print(f"Data: {text}. LeNet-5, batch {args.batch}, SGD + momentum (lr 0.01, β 0.9), 1 epoch")
    print()
    print(
        "| N | tracked s | untracked s | overhead (outside) | share (tracker) "
        "| products / measurement |"
    )
    print("|---|---|---|---|---|---|")
    one_run(0, 2000, args.batch)  # warm-up: data loading, allocator, first-call costs
    for every in args.every or [DEFAULT_EVERY]:
        tracked, plain, shares, products = [], [], [], []
        for _ in range(args.repeats):
            r = one_run(every, args.limit, args.batch)
            tracked.append(r["seconds"])
            shares.append(r["share"])
            products += r["products"]
            plain.append(one_run(0, args.limit, args.batch)["seconds"])
        t, p = statistics.median(tracked), statistics.median(plain)
        print(
            f"| {every} | {t:.2f} | {p:.2f} | {1 - p / t:.0%} | {statistics.median(shares):.0%} "
            f"| {statistics.mean(products):.1f} (first {products[0]}) |"
        )
    if hasattr(os, "getloadavg"):
        print(f"\nLoad average at the end: {os.getloadavg()[0]:.2f} (other work skews every row)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
