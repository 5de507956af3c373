"""Training benchmark: prints a table; not a test.

LeNet-5 images/s through core.training.train (events, grad norms, snapshots, validation)
against a bare 10-line PyTorch loop on the same data, batch size and optimizer. The bare loop
is timed over the training steps only; core.training's figure includes everything it does per
epoch, so the difference is the whole overhead. Interleaved repeats, medians.

Run: .venv/bin/python bench/train.py [--data-dir DIR] [--repeats N] [--batch-size N]
(default data: $LOSSLAB_DATA_DIR, e.g. ../shared/data/mnist; synthetic digits if unset)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from core import data
from core.models import LeNet5
from core.optimizers import OptimizerSpec
from core.training import Started, Step, TrainConfig, train


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get(data.ENV_VAR))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, nargs="+", default=[32, 128])
    args = ap.parse_args()
    if args.data_dir:
        ds = data.load_mnist(args.data_dir)
        dataset = "mnist"
    else:
        ds = data.synthetic_digits(8000, 2000)
        dataset = "synthetic"
    n = len(ds.train_x)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; data: {ds.source}")
    print(
        f"LeNet-5, SGD(0.01, 0.9), {args.epochs} epoch(s) of {n:,} images; "
        f"median of {args.repeats} interleaved runs"
    )
    print(
        f"{'batch':>6}{'bare loop':>11}{'core: steps':>13}{'overhead':>10}"
        f"{'core: whole run':>17}{'overhead':>10}   (images/s)"
    )
    for bs in args.batch_size:
        cfg = TrainConfig(
            task="lenet",
            epochs=args.epochs,
            batch_size=bs,
            dataset=dataset,
            data_dir=args.data_dir,
            optimizer=OptimizerSpec("momentum", {"lr": 0.01}),
        )
        bare, steps, whole = [], [], []
        for r in range(args.repeats):
            # ABBA: whichever runs first after the other pays for its allocator/cache state
            for first in (True, False) if r % 2 == 0 else (False, True):
                if first:
                    bare.append(bare_loop(ds, bs, args.epochs, r))
                else:
                    s_only, w = core_loop(cfg, n)
                    steps.append(s_only)
                    whole.append(w)
        b, s_, w_ = (statistics.median(v) for v in (bare, steps, whole))
        print(f"{bs:>6}{b:>11,.0f}{s_:>13,.0f}{(b - s_) / b:>9.1%}{w_:>17,.0f}{(b - w_) / b:>9.1%}")


if __name__ == "__main__":
    main()
