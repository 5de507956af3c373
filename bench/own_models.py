"""Own-model landscapes: the generic plane evaluator against the naive per-point loop; prints a
table, not a test.

For each example experiment file (core/train/examples), on points of a plane of filter-normalised
random directions over the file's evaluation batches:

* naive: what loss-landscapes and Li et al.'s scripts do: write the point's weights into a
  copy of the model, then a forward pass over every batch;
* generic: core.landscape.generic.GenericEvaluator (private eval-mode copy, batches
  materialised once), with the first layer by linearity where it is on the raw input;
* generic, plain: the same with that trick off (to show where it pays).

The three run interleaved in one process per example (separate processes differed by up to
2x from run to run here), after a warm-up; the table shows the median over the rounds. Memory:
the process's peak RSS, and what the first-layer trick keeps (three outputs per batch).

Run: .venv/bin/python bench/own_models.py [--points 9] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXAMPLES = ["resnet_bn.py", "tutorial_cnn.py", "mlp_regression.py"]


def run(example: str, n_points: int, rounds: int) -> None:
    """One example's rows of the table."""
    import numpy as np
    import torch

    from core.landscape.directions import flat_parameters, random_directions, set_flat
    from core.landscape.generic import GenericEvaluator
    from core.train.experiment import load_experiment

    e = load_experiment(ROOT / "core" / "train" / "examples" / example)
    model = e.build_model().eval()
    batches = e.batches()
    centre = flat_parameters(model)
    d1, d2 = random_directions(model, seed=0)

    def naive(a, b):
        m = copy.deepcopy(model).eval()
        set_flat(m, centre + a * d1 + b * d2)
        with torch.no_grad():
            return sum(float(e.loss(m, bt)) for bt in batches) / len(batches)

    folded = GenericEvaluator(model, batches, e.loss, centre, d1, d2)
    plain = GenericEvaluator(model, batches, e.loss, centre, d1, d2, linear_first="off")
    methods = {
        "naive": naive,
        "generic" + (" (first layer folded)" if folded.folded else ""): lambda a, b: folded.at(
            a, b
        )[0],
        "generic, plain": lambda a, b: plain.at(a, b)[0],
    }
    kept = {
        name: (
            sum(z.numel() * z.element_size() for zs in folded.combined.z for z in zs) / 2**20
            if "folded" in name
            else 0.0
        )
        for name in methods
    }
    points = [(a, 0.3) for a in np.linspace(-1, 1, n_points)]
    values = {name: [fn(a, b) for a, b in points] for name, fn in methods.items()}  # warm
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            for a, b in points:
                fn(a, b)
            times[name].append((time.perf_counter() - t0) / len(points) * 1000)
    base = statistics.median(times["naive"])
    ref = values["naive"]
    for name in methods:
        ms = statistics.median(times[name])
        diff = max(abs(v - w) / max(abs(w), 1e-12) for v, w in zip(values[name], ref, strict=True))
        print(f"| {example} | {centre.numel():,} | {len(batches)} | {name} | {ms:.2f} | "
              f"{base / ms:.2f}x | {kept[name]:.1f} | {diff:.1e} |")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=9, help="points per method per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    import torch

    print(f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}"
          f", {torch.get_num_threads()} threads")  # fmt: skip
    print(f"{args.points} points per method per round, {args.rounds} interleaved rounds\n")
    cols = ["example", "params", "batches", "method", "ms/point", "speed-up", "kept MB"]
    print("| " + " | ".join([*cols, "max rel. diff"]) + " |")
    print("|" + "---|" * (len(cols) + 1))
    for example in EXAMPLES:
        run(example, args.points, args.rounds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the process: {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
