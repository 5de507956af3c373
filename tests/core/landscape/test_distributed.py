"""The distributed grid filler in one process, and grids that resume from their partial
file. Ranks (2 on gloo, rendezvous on 127.0.0.1, under torch's launcher) are tried through
``losslab landscape --workers`` in tests/cli/test_landscape_own_cli.py: the grid and the
accuracy of one process, and a rank that dies."""

import numpy as np
import pytest

from core.landscape import distributed as dist


class Bowl:
    """A cheap evaluator: loss = a^2 + 2 b^2, accuracy = a (to check both are placed right)."""

    classes = 1

    def __init__(self):
        self.calls = 0

    def row(self, alphas, b):
        self.calls += len(alphas)
        return [(a * a + 2 * b * b, a) for a in alphas]


def axes():
    return np.linspace(-1, 1, 9), np.linspace(-2, 2, 5)


def test_one_process_fills_the_grid_in_place():
    alphas, betas = axes()
    grid = dist.PartialGrid.empty("fp", (5, 9), True)
    steps = list(dist.fill(Bowl(), alphas, betas, grid))
    assert steps[-1].done == steps[-1].total == 45
    want = alphas[None, :] ** 2 + 2 * betas[:, None] ** 2
    assert np.allclose(grid.loss, want) and np.allclose(
        grid.acc, alphas[None, :] + 0 * betas[:, None]
    )
    assert grid.done.all()


def test_an_interrupted_grid_resumes_where_it_stopped_and_only_with_the_same_inputs(tmp_path):
    alphas, betas = axes()
    path = tmp_path / "land.npz.partial.npz"
    fp = dist.fingerprint(grid=alphas, samples=100, model="abc")
    grid = dist.PartialGrid.empty(fp, (5, 9), True)
    rounds = {"n": 0}

    def stop_soon():
        rounds["n"] += 1
        return rounds["n"] > 1  # after one round (of one point: the first round is small)

    list(dist.fill(Bowl(), alphas, betas, grid, save_to=path, should_stop=stop_soon))
    partial, why = dist.PartialGrid.load(path, fp, (5, 9))
    assert why == "" and 0 < partial.count < 45
    kept = partial.count
    bowl = Bowl()
    steps = list(dist.fill(bowl, alphas, betas, partial, save_to=path))
    assert steps[-1].resumed == kept and bowl.calls == 45 - kept  # nothing computed twice
    assert np.allclose(partial.loss, alphas[None, :] ** 2 + 2 * betas[:, None] ** 2)
    other = dist.fingerprint(grid=alphas, samples=200, model="abc")
    none, why = dist.PartialGrid.load(path, other, (5, 9))
    assert none is None and "other inputs" in why
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    none, why = dist.PartialGrid.load(tmp_path / "bad.npz", fp, (5, 9))
    assert none is None and "damaged" in why


def test_fingerprints_see_every_input():
    base = dict(d1=np.arange(4.0), samples=10, precision="fp32", checkpoint="x")
    fp = dist.fingerprint(**base)
    assert fp == dist.fingerprint(**dict(base))
    for key, value in [("d1", np.arange(4.0) + 1e-9), ("samples", 11), ("precision", "bf16")]:
        assert dist.fingerprint(**(base | {key: value})) != fp, key


def test_a_partial_file_that_cannot_be_written_costs_the_resume_not_the_grid(tmp_path):
    alphas, betas = axes()
    grid = dist.PartialGrid.empty("fp", (5, 9), True)
    steps = list(dist.fill(Bowl(), alphas, betas, grid, save_to=tmp_path / "no" / "p.npz"))
    assert grid.done.all() and steps[-1].done == 45
    warnings = [s.warning for s in steps if s.warning]
    assert len(warnings) == 1 and "cannot keep a partial file" in warnings[0]


def test_each_round_gives_the_ranks_half_a_second_each_and_the_last_one_ends_together():
    """The plan for a round: one point each while a rank's speed is unknown; then about
    ROUND_SECONDS of work at each rank's own speed (a rank slowed by other work takes fewer
    points); when fewer points remain than that, all of them, in proportion to the speeds, so
    that no rank waits for another at the end; never more points than remain."""
    from core.landscape.distributed import ROUND_SECONDS, plan_round

    nan = float("nan")
    assert plan_round(np.array([nan, nan, nan]), 100).tolist() == [1, 1, 1]
    assert plan_round(np.array([nan, nan, nan]), 2).tolist() == [1, 1, 0]
    assert plan_round(np.array([40.0, 20.0]), 1000).tolist() == [
        int(40 * ROUND_SECONDS),
        int(20 * ROUND_SECONDS),
    ]
    assert plan_round(np.array([40.0, 20.0]), 9).tolist() == [6, 3]  # both end after 0.15 s
    rng = np.random.default_rng(0)
    for _ in range(500):
        size = int(rng.integers(1, 9))
        rates = rng.uniform(0.5, 200, size)
        remaining = int(rng.integers(0, 300))
        counts = plan_round(rates, remaining)
        assert counts.dtype.kind == "i" and len(counts) == size and (counts >= 0).all()
        assert counts.sum() <= remaining
        if remaining >= size:
            assert (counts >= 1).all()  # nobody idles while there is work for all
        full = np.clip(np.floor(rates * ROUND_SECONDS), 1, 4096)
        if full.sum() <= remaining:
            assert counts.tolist() == full.tolist()
        else:  # the last round: every point, shared as the speeds are (to a point)
            assert counts.sum() == remaining
            share = rates / rates.sum() * remaining
            if (share >= 1).all():
                assert np.all(np.abs(counts - share) < 1), (rates, remaining, counts)


def test_the_readmes_torchrun_commands_reach_losslab_whole():
    """torchrun takes any option that abbreviates one of its own (``--run`` is its
    ``--run-path``, ``--log`` its ``--log-dir``): the README's commands put ``--`` after
    ``-m app``, so every argument after it reaches ``losslab landscape``."""
    import shlex
    from pathlib import Path

    from torch.distributed.run import get_args_parser

    from app.main import build_parser

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    lines = readme.replace("\\\n", " ").splitlines()
    commands = [shlex.split(line) for line in lines if line.startswith("torchrun ")]
    assert len(commands) >= 2
    for argv in commands:
        # with --run added: a command of several runs (see "Several runs on one plane")
        launch = get_args_parser().parse_args([*argv[1:], "--run", "a.json"])
        assert launch.module and launch.training_script == "app"
        args = build_parser().parse_args(launch.training_script_args)
        assert args.command == "landscape" and args.out == ["land.npz"], argv
    with pytest.raises(SystemExit):  # why: without "--", torchrun takes --run for its own
        get_args_parser().parse_args(["-m", "app", "landscape", "--run", "a.json"])
