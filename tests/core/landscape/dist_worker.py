"""Run by torchrun in tests/core/landscape/test_distributed.py: one rank of a small grid.

Usage: dist_worker.py OUT.npz [--fail-rank R --fail-round K]
"""

import signal
import sys

import numpy as np
import torch
from torch import nn

from core.landscape import distributed as dist
from core.landscape.directions import flat_parameters, random_directions
from core.landscape.generic import GenericEvaluator


class Failing:
    """An evaluator whose rank dies after some points (to test a rank's failure)."""

    def __init__(self, inner, die_after: int) -> None:
        self.inner, self.left, self.classes = inner, die_after, inner.classes

    def row(self, alphas, b):
        self.left -= len(alphas)
        if self.left < 0:
            sys.exit(17)
        return self.inner.row(alphas, b)


def evaluator():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2)).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 3, generator=g)
    y = (x[:, 0] > 0).long()
    batches = [(x[:20], y[:20]), (x[20:], y[20:])]
    c = flat_parameters(model)
    d1, d2 = random_directions(model, 2)
    return GenericEvaluator(
        model,
        batches,
        lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]),
        c,
        d1,
        d2,
        accuracy=True,
    )


def main() -> int:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # the launcher's stop: save first
    out = sys.argv[1]
    fail_rank = (
        int(sys.argv[sys.argv.index("--fail-rank") + 1]) if "--fail-rank" in sys.argv else -1
    )
    world = dist.World.from_env()
    dist.start(world)
    ev = evaluator()
    if world.rank == fail_rank:
        ev = Failing(ev, die_after=6)
    alphas = np.linspace(-1, 1, 9)
    betas = np.linspace(-1, 1, 7)
    grid = dist.PartialGrid.empty("fp", (7, 9), True) if world.main else None
    try:
        for _ in dist.fill(ev, alphas, betas, grid, world, save_to=out if world.main else None):
            pass
    except dist.RankFailed as exc:
        if world.main:
            print(f"losslab: {exc}", file=sys.stderr, flush=True)
        return 3
    finally:
        if world.main:
            np.save(out + ".rounds.npy", np.array([grid.count]))
    dist.stop(world)
    return 0


if __name__ == "__main__":
    sys.exit(main())
