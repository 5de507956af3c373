"""Training benchmark: prints a table; not a test.

Each measurement runs in a fresh interpreter: in one process, glibc's allocator state (its
dynamic mmap threshold) carried over from earlier runs swung results by +-10%.

LeNet-5 images/s through core.train.training.train (events, grad norms, snapshots, validation)
against a bare 10-line PyTorch loop on the same data, batch size and optimizer. The bare loop
is timed over the training steps only; core.train.training's figure includes everything it does per
epoch, so the difference is the whole overhead. Interleaved repeats, medians.

Run: .venv/bin/python bench/train.py [--data-dir DIR] [--repeats N] [--batch-size N]
(default data: $LOSSLAB_DATA_DIR, e.g. ../shared/data/mnist; synthetic digits if unset)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from torch import nn

from core.optimizers import OptimizerSpec
from core.train import data
from core.train.models import LeNet5
from core.train.training import Started, Step, TrainConfig, train


def bare_loop(ds, batch_size: int, epochs: int, seed: int) -> float:
    torch.manual_seed(seed)
    model = LeNet5()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    n = len(ds.train_x)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(ds.train_x[idx]), ds.train_y[idx])
            loss.backward()
            opt.step()
    return epochs * n / (time.perf_counter() - t0)


def core_loop(cfg: TrainConfig, n: int) -> tuple[float, float]:
    """(images/s over the training steps only, images/s over the whole run)."""
    t0 = time.perf_counter()
    first = last = None
    for e in train(cfg):
        if isinstance(e, Started):
            first = time.perf_counter()  # data loaded, model built
        elif isinstance(e, Step):
            last = time.perf_counter()
    total = time.perf_counter() - t0
    # steps only: from Started to the last Step, less the time spent validating in between
    return cfg.epochs * n / (last - first), cfg.epochs * n / total


def measure_one(kind: str, data_dir: str | None, batch: int, epochs: int, seed: int) -> None:
    """Run one measurement in this (fresh) process and print it as JSON."""
    import json

    ds = data.load_mnist(data_dir) if data_dir else data.synthetic_digits(8000, 2000)
    n = len(ds.train_x)
    if kind == "bare":
        print(json.dumps({"steps": bare_loop(ds, batch, epochs, seed)}))
        return
    cfg = TrainConfig(
        task="lenet",
        epochs=epochs,
        batch_size=batch,
        seed=seed,
        dataset="mnist" if data_dir else "synthetic",
        data_dir=data_dir,
        optimizer=OptimizerSpec("momentum", {"lr": 0.01}),
    )
    steps, whole = core_loop(cfg, n)
    print(json.dumps({"steps": steps, "whole": whole}))


def run_isolated(kind: str, args, batch: int, seed: int) -> dict:
    """Each measurement in a fresh interpreter: no allocator or cache state carried over."""
    import json
    import subprocess

    cmd = [
        sys.executable,
        __file__,
        "--one",
        kind,
        "--batch-size",
        str(batch),
        "--epochs",
        str(args.epochs),
        "--seed",
        str(seed),
    ]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get(data.ENV_VAR))
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--one", choices=("bare", "core"), help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        measure_one(args.one, args.data_dir, args.batch_size[0], args.epochs, args.seed)
        return
    source = (
        data.load_mnist(args.data_dir).source if args.data_dir else "synthetic digits (not MNIST)"
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}; data: {source}"
    )
    print(
        f"LeNet-5, SGD(0.01, 0.9), {args.epochs} epoch(s); each run in a fresh process, "
        f"alternating which goes first; median of {args.repeats}"
    )
    print(
        f"{'batch':>6}{'bare loop':>11}{'core: steps':>13}{'overhead':>10}"
        f"{'core: whole run':>17}{'overhead':>10}   (images/s)"
    )
    for bs in args.batch_size:
        bare, steps, whole = [], [], []
        for r in range(args.repeats):
            order = ("bare", "core") if r % 2 == 0 else ("core", "bare")
            for kind in order:
                res = run_isolated(kind, args, bs, r)
                if kind == "bare":
                    bare.append(res["steps"])
                else:
                    steps.append(res["steps"])
                    whole.append(res["whole"])
        b, s_, w_ = (statistics.median(v) for v in (bare, steps, whole))
        print(f"{bs:>6}{b:>11,.0f}{s_:>13,.0f}{(b - s_) / b:>9.1%}{w_:>17,.0f}{(b - w_) / b:>9.1%}")


if __name__ == "__main__":
    main()
