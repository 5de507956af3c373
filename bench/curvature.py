"""Top Hessian eigenvalues: Lanczos (core.landscape.spectrum) against power iteration with
deflation (core.landscape.curvature.hessian_eigs), in Hessian-vector products and seconds;
prints a table, not a test.

On LeNet-5 (synthetic digits, ``--samples`` images, seeded weights after a few SGD steps, so
the spectrum is a trained model's shape) both find the top ``--k`` eigenvalues; their values
and the products each used are printed, with the time of one product.

Run: .venv/bin/python bench/curvature.py [--k 2] [--samples 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    import torch
    from torch import nn

    from core.hessian import hvp_of, power_iteration
    from core.landscape.curvature_job import task_terms
    from core.landscape.spectrum import top_eigenvalues
    from core.train.tasks import build_task

    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    setup = build_task("lenet", dataset="synthetic", limit=4 * args.samples)
    model = setup.model
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for i in range(0, len(setup.train_x), 64):  # one epoch: away from the initial weights
        opt.zero_grad()
        nn.functional.cross_entropy(model(setup.train_x[i : i + 64]),
                                    setup.train_y[i : i + 64]).backward()  # fmt: skip
        opt.step()
    model.eval()
    x, y = setup.val_x[: args.samples], setup.val_y[: args.samples]
    terms = task_terms(nn.CrossEntropyLoss(), x, y)
    params = [p for p in model.parameters() if p.requires_grad]
    count = [0]
    inner = hvp_of(params, lambda: terms(model))

    def hvp(v):
        count[0] += 1
        return inner(v)

    n = sum(p.numel() for p in params)
    v0 = torch.randn(n, generator=torch.Generator().manual_seed(0))
    hvp(v0)
    t = time.perf_counter()
    hvp(v0)
    per = time.perf_counter() - t
    print(f"LeNet-5, {n:,} parameters, {len(x)} images: one product {1000 * per:.0f} ms")

    count[0] = 0
    t = time.perf_counter()
    vals, _, _ = top_eigenvalues(hvp, v0, args.k, args.tol, max_steps=200)
    lanczos = (count[0], time.perf_counter() - t, vals)

    count[0] = 0
    t = time.perf_counter()
    found: list = []
    for _ in range(args.k):
        lam, vec, _ = power_iteration(hvp, v0, iters=500, tol=args.tol * 1e-2, found=found)
        found.append((lam, vec))
    power = (count[0], time.perf_counter() - t, [lam for lam, _ in found])

    print(f"{'method':<34}{'products':>9}{'seconds':>9}  eigenvalues")
    for name, (used, secs, values) in (
        (f"Lanczos (residual tol {args.tol:g})", lanczos),
        ("power iteration + deflation", power),
    ):
        print(f"{name:<34}{used:>9}{secs:>9.1f}  " + ", ".join(f"{v:.5g}" for v in values))


if __name__ == "__main__":
    main()
