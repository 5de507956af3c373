"""Grids over torch.distributed ranks (2 ranks on gloo, rendezvous on 127.0.0.1) and grids that
resume from their partial file."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.landscape import distributed as dist

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(out, *extra, ranks=2):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
        "--nproc-per-node", str(ranks), "--rdzv-backend", "c10d",
        "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--max-restarts", "0",
        str(HERE / "dist_worker.py"), str(out), *extra,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)


@pytest.mark.slow
def test_two_ranks_give_the_grid_of_one_process(tmp_path):
    sys.path.insert(0, str(HERE))
    try:
        import dist_worker
    finally:
        sys.path.remove(str(HERE))
    alphas, betas = np.linspace(-1, 1, 9), np.linspace(-1, 1, 7)
    one = dist.PartialGrid.empty("fp", (7, 9), True)
    list(dist.fill(dist_worker.evaluator(), alphas, betas, one))
    out = tmp_path / "two.npz"
    res = _torchrun(out)
    assert res.returncode == 0, res.stderr[-3000:]
    two, _ = dist.PartialGrid.load(out, "fp", (7, 9))
    assert two.done.all()
    np.testing.assert_allclose(two.loss, one.loss, rtol=1e-5)
    np.testing.assert_allclose(two.acc, one.acc, rtol=1e-5)


@pytest.mark.slow
def test_a_dead_rank_is_named_and_the_gathered_points_are_kept(tmp_path):
    out = tmp_path / "dead.npz"
    res = _torchrun(out, "--fail-rank", "1")
    assert res.returncode != 0
    assert "rank 1" in res.stderr, res.stderr[-3000:]
    kept, _ = dist.PartialGrid.load(out, "fp", (7, 9))
    assert kept is not None and 0 < kept.count < 63


def test_a_partial_file_that_cannot_be_written_costs_the_resume_not_the_grid(tmp_path):
    alphas, betas = axes()
    grid = dist.PartialGrid.empty("fp", (5, 9), True)
    steps = list(dist.fill(Bowl(), alphas, betas, grid, save_to=tmp_path / "no" / "p.npz"))
    assert grid.done.all() and steps[-1].done == 45
    warnings = [s.warning for s in steps if s.warning]
    assert len(warnings) == 1 and "cannot keep a partial file" in warnings[0]
