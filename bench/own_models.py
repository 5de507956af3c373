"""Own-model landscapes: the generic plane evaluator against the naive per-point loop; prints a
table, not a test.

For each example experiment file (assets/examples), on a grid of filter-normalised random
directions over the file's evaluation batches:

* naive: what loss-landscapes and Li et al.'s scripts do: write the point's weights into the
  model, then a forward pass over every batch;
* generic: core.landscape.generic.GenericEvaluator (private eval-mode copy, batches
  materialised once), with the first layer by linearity where it is on the raw input;
* generic, plain: the same with that trick off (to show where it pays).

Each method runs in its own child process so that its peak memory (max RSS) is its own; the
methods alternate, and the table shows the median of the repeats.

Run: .venv/bin/python bench/own_models.py [--points 25] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXAMPLES = ["resnet_bn.py", "tutorial_cnn.py", "mlp_regression.py"]
METHODS = ["naive", "generic", "generic-plain"]


def measure(example: str, method: str, points: int) -> dict:
    import copy

    import numpy as np
    import torch

    from core.landscape.directions import flat_parameters, random_directions, set_flat
    from core.landscape.generic import GenericEvaluator
    from core.train.experiment import load_experiment

    torch.set_num_threads(2)
    e = load_experiment(ROOT / "assets" / "examples" / example)
    model = e.build_model().eval()
    batches = e.batches()
    centre = flat_parameters(model)
    d1, d2 = random_directions(model, seed=0)
    side = int(round(points**0.5))
    coords = [(a, b) for b in np.linspace(-1, 1, side) for a in np.linspace(-1, 1, side)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if method == "naive":

        def at(a, b):
            m = copy.deepcopy(model).eval()
            set_flat(m, centre + a * d1 + b * d2)
            with torch.no_grad():
                return sum(float(e.loss(m, bt)) for bt in batches) / len(batches)

        folded = False
    else:
        ev = GenericEvaluator(
            model, batches, e.loss, centre, d1, d2,
            linear_first="off" if method == "generic-plain" else "auto",
        )  # fmt: skip
        folded = ev.folded

        def at(a, b):
            return ev.at(a, b)[0]

    at(0.0, 0.0)  # warm-up
    t0 = time.perf_counter()
    values = [at(a, b) for a, b in coords]
    ms = (time.perf_counter() - t0) / len(coords) * 1000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "ms": ms,
        "rss_mb": peak / 1024,
        "extra_mb": (peak - before) / 1024,
        "folded": folded,
        "values": values,
        "params": int(centre.numel()),
        "samples": sum(
            len(b[0]) if isinstance(b, tuple) else len(next(iter(b.values()))) for b in batches
        ),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("EXAMPLE", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.points)))
        return 0
    import torch

    print(f"CPU capability: {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}")
    print(f"{args.points} grid points per run, median of {args.repeats} alternating runs\n")
    cols = ["example", "params", "samples", "method", "ms/point", "speed-up", "peak RSS MB"]
    print("| " + " | ".join([*cols, "max rel. diff"]) + " |")
    print("|---|---|---|---|---|---|---|---|")
    for example in EXAMPLES:
        runs: dict[str, list[dict]] = {m: [] for m in METHODS}
        for _ in range(args.repeats):
            for method in METHODS:
                cmd = [sys.executable, __file__, "--points", str(args.points)]
                out = subprocess.run(
                    [*cmd, "--child", example, method], capture_output=True, text=True, check=True
                )
                runs[method].append(json.loads(out.stdout))
        base = statistics.median(r["ms"] for r in runs["naive"])
        ref = runs["naive"][0]["values"]
        for method in METHODS:
            rs = runs[method]
            ms = statistics.median(r["ms"] for r in rs)
            diff = max(
                abs(v - w) / max(abs(w), 1e-12) for v, w in zip(rs[0]["values"], ref, strict=True)
            )
            label = method + (" (first layer folded)" if rs[0]["folded"] else "")
            print(
                f"| {example} | {rs[0]['params']:,} | {rs[0]['samples']:,} | {label} | {ms:.2f} | "
                f"{base / ms:.2f}x | {statistics.median(r['rss_mb'] for r in rs):.0f} "
                f"| {diff:.1e} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
