"""Landscape benchmark: prints tables; not a test.

LeNet-5 is trained on the shared MNIST set (two epochs, the tutorial's SGD), then the loss on a
41x41 plane of filter-normalised random directions is computed over 1,000 evaluation images:

* naive: what loss-landscapes' ``random_plane`` and Li et al.'s scripts do: write each point's
  weights into the model and run a full forward pass;
* core.landscape fp32: the first layer by linearity, batched, strided pooling, row-shared adds;
* core.landscape bf16 preview: the same with the later layers in bfloat16.

Same process, same grid; the max relative difference is against the naive loop. The machine's
fp32 matmul peak is measured here too, for the GFLOP/s column.

Run: LOSSLAB_DATA_DIR=../shared/data/mnist .venv/bin/python bench/landscape.py [--grid 41]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def matmul_peak() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        best = max(best, 4 * 2 * 2048**3 / (time.perf_counter() - t0) / 1e9)
    return best


def lenet_flops(model, n_images: int, first_layer: bool) -> float:
    """Multiply-adds x 2 of one forward pass over ``n_images`` (convolutions and linears)."""
    macs = 0
    x = torch.zeros(1, 1, 28, 28)
    for m in [*model.features, *model.classifier]:
        y = m(x)
        if isinstance(m, torch.nn.Conv2d) and (first_layer or m is not model.features[1]):
            macs += y.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            macs += m.in_features * m.out_features
        x = y
    return 2.0 * macs * n_images


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=41)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()

    from core.landscape.directions import flat_parameters, random_directions, set_flat
    from core.landscape.evaluator import PlaneEvaluator
    from core.landscape.plane import axes, compute
    from core.train import data
    from core.train.losses import LossSpec, build_loss
    from core.train.tasks import build_task
    from core.train.training import Finished, TrainConfig, train

    found, text = data.mnist_status()
    if not found:
        print(f"{text}: set LOSSLAB_DATA_DIR", file=sys.stderr)
        return 2
    print(f"Data: {text}")
    t0 = time.perf_counter()
    ckpt = Path("/tmp") / f"losslab-bench-landscape-{int(t0)}.pt"
    cfg = TrainConfig(task="lenet", dataset="mnist", epochs=args.epochs, checkpoint=str(ckpt))
    fin = [e for e in train(cfg) if isinstance(e, Finished)][0]
    from core.train.checkpoints import load_checkpoint

    setup = build_task("lenet", dataset="mnist")
    model = setup.model.eval()
    model.load_state_dict(load_checkpoint(ckpt)["model"])
    ckpt.unlink(missing_ok=True)
    acc = fin.final["val_accuracy"]
    print(
        f"LeNet-5 trained {args.epochs} epochs ({time.perf_counter() - t0:.0f} s): "
        f"validation accuracy {100 * acc:.2f}%"
    )
    x, y = setup.val_x[: args.samples], setup.val_y[: args.samples]
    loss_fn = build_loss(LossSpec("cross_entropy"))
    centre = flat_parameters(model)
    d1, d2 = random_directions(model, seed=0)
    alphas = axes(1.0, args.grid)
    n_points = args.grid**2
    peak = matmul_peak()
    print(
        f"fp32 matmul peak (2048x2048, torch, {torch.get_num_threads()} threads): "
        f"{peak:.0f} GFLOP/s; torch's CPU capability: {torch.backends.cpu.get_cpu_capability()}"
    )
    print()

    # naive: weights into a model copy, one full forward over all images, per point
    m = copy.deepcopy(model)
    naive = np.empty((args.grid, args.grid))
    t0 = time.perf_counter()
    with torch.no_grad():
        for i, b in enumerate(alphas):
            for j, a in enumerate(alphas):
                set_flat(m, centre + float(a) * d1 + float(b) * d2)
                naive[i, j] = float(loss_fn(m(x), y))
    t_naive = time.perf_counter() - t0

    rows = [("naive per-point loop", t_naive, naive, lenet_flops(model, len(x), True))]
    for precision, compiled in (("fp32", False), ("fp32", True), ("bf16", False)):
        t0 = time.perf_counter()
        ev = PlaneEvaluator(model, loss_fn, x, y, centre, d1, d2, classes=10, precision=precision)
        name = f"core.landscape {precision}"
        if compiled:
            seconds = ev.compile()
            name += f" + torch.compile (compiling {seconds:.1f} s, not counted)"
            if not ev.compiled:
                name += f" FAILED: {ev.compile_error}"
            t0 = time.perf_counter()
        land = compute(ev, 1.0, args.grid)
        rows.append((name, time.perf_counter() - t0, land.loss, lenet_flops(model, len(x), False)))

    print(
        f"41x41 = {n_points:,} points" if args.grid == 41 else f"{n_points:,} points",
        f"x {len(x):,} images",
    )
    print()
    print(
        "| method | time | ms/point | speed-up | max relative difference | GFLOP/s "
        "| % of fp32 peak |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, t, grid, flops in rows:
        rel = float(np.max(np.abs(grid - naive) / np.abs(naive)))
        gflops = flops * n_points / t / 1e9
        print(
            f"| {name} | {t:.1f} s | {1000 * t / n_points:.2f} | {t_naive / t:.1f}x "
            f"| {rel:.1e} | {gflops:.0f} | {100 * gflops / peak:.0f}% |"
        )
    print()
    print("Goals: fp32 >= 8x with max relative difference <= 1e-5; bf16 preview >= 15x.")
    print("GFLOP/s counts the convolutions and linear layers each method actually runs (ours")
    print("skips the first convolution: 3 evaluations per grid instead of one per point).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
