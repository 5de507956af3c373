import numpy as np
import pytest
import torch

from core.optimizers import OptimizerSpec, build_optimizer
from core.race.race import DIVERGE_FACTOR, Race, RacerSpec
from core.race.surfaces import get_surface
from core.race.sweep import (
    SweepAxis,
    SweepError,
    SweepMap,
    SweepProgress,
    parse_axis,
    plan_sweep,
    sweep_map,
)


def run(surface, racer, x, y, grid, steps, **kw) -> SweepMap:
    items = list(sweep_map(surface, racer, x, y, grid=grid, steps=steps, **kw))
    assert all(isinstance(i, SweepProgress) for i in items[:-1])
    assert isinstance(items[-1], SweepMap)
    return items[-1]


def plain_loop(surface, spec: RacerSpec, steps: int, start=None):
    """A textbook torch.optim loop for one cell: final position, loss, diverged and converged."""
    p = torch.tensor(surface.start if start is None else start, dtype=torch.float64)
    p.requires_grad_()
    opt = build_optimizer(spec.optimizer, [p])
    gen = torch.Generator().manual_seed(spec.seed)
    xmin, xmax, ymin, ymax = surface.bounds
    centre = np.array([(xmin + xmax) / 2, (ymin + ymax) / 2])
    half = DIVERGE_FACTOR * np.array([(xmax - xmin) / 2, (ymax - ymin) / 2])
    minima = np.array([(m.x, m.y) for m in surface.minima])
    reached = -1
    for t in range(steps + 1):
        loss = surface(p[0], p[1])
        pos = p.detach().numpy()
        if not (np.isfinite(loss.item()) and (np.abs(pos - centre) <= half).all()):
            return None, None, t, reached
        if reached < 0 and len(minima) and (np.linalg.norm(minima - pos, axis=1) <= 1e-3).any():
            reached = t
        if t == steps:
            return pos.copy(), loss.item(), -1, reached
        opt.zero_grad()
        loss.backward()
        g = p.grad
        if spec.noise > 0:
            g.add_(torch.randn((1, 2), generator=gen, dtype=g.dtype)[0] * spec.noise)
        if spec.clip == "norm":
            g.mul_(torch.clamp(spec.clip_value / (torch.linalg.vector_norm(g) + 1e-6), max=1.0))
        elif spec.clip == "value":
            g.clamp_(-spec.clip_value, spec.clip_value)
        opt.step()


# (optimizer, fixed hyper, x axis, y axis, surface)
CASES = [
    ("momentum", {}, SweepAxis("lr", 1e-4, 3e-3, True), SweepAxis("momentum", 0.0, 0.99), "rb"),
    ("adam", {}, SweepAxis("lr", 1e-3, 0.5, True), SweepAxis("beta1", 0.0, 0.99), "rb"),
    ("rmsprop", {}, SweepAxis("alpha", 0.5, 0.999), SweepAxis("lr", 1e-4, 0.1, True), "rb"),
    ("adam", {}, SweepAxis("beta1", 0.5, 0.95), SweepAxis("beta2", 0.9, 0.9999), "rb"),
    ("sgd", {"lr": 1e-3}, SweepAxis("noise", 0.0, 50.0), SweepAxis("clip_value", 1, 100), "rb"),
    ("adamw", {}, SweepAxis("lr", 1e-3, 0.3, True), SweepAxis("weight_decay", 0.0, 0.5), "rb"),
    ("nadam", {}, SweepAxis("lr", 1e-3, 0.3, True), SweepAxis("eps", 1e-8, 1e-2, True), "rb"),
    ("rmsprop", {}, SweepAxis("alpha", 0.5, 0.999), SweepAxis("lr", 1e-3, 0.1, True), "ic"),
    ("adagrad", {}, SweepAxis("lr", 1e-2, 3.0, True), SweepAxis("lr_decay", 0.0, 0.1), "ic"),
]
SURFACES = {"rb": "rosenbrock", "ic": "ill_conditioned"}


GRID, STEPS = 6, 60  # 36 cells: every corner of the two ranges and cells between them
_REFERENCE: dict[str, tuple] = {}  # plain loops, shared by the two tests of a case


def reference(surface, spec: RacerSpec) -> tuple:
    """``plain_loop(surface, spec, STEPS)``, computed once per cell for both strategies."""
    key = f"{surface.name}|{spec!r}"
    if key not in _REFERENCE:
        _REFERENCE[key] = plain_loop(surface, spec, STEPS)
    return _REFERENCE[key]


def check_cells(case, strategy, impl):
    """The four corners and four random cells against plain loops; returns how many were
    rounding-sensitive."""
    key, hyper, x, y, surface = case
    clip = "norm" if "clip_value" in (x.name, y.name) else "none"
    racer = RacerSpec(OptimizerSpec(key, hyper), clip=clip, seed=3)
    s = get_surface(SURFACES[surface])
    result = run(s, racer, x, y, grid=GRID, steps=STEPS, strategy=strategy, impl=impl)
    rng = np.random.default_rng(0)
    last = GRID - 1
    checked = [(0, 0), (last, 0), (0, last), (last, last)]
    checked += [tuple(rng.integers(1, last, 2)) for _ in range(4)]
    sensitive = 0
    for ix, iy in checked:
        spec = result.racer_at(racer, ix, iy)
        pos, loss, div, reached = reference(s, spec)
        got = result.final[iy, ix]
        if div >= 0 or np.allclose(got, pos, rtol=1e-9, atol=1e-12):
            assert result.diverged_at[iy, ix] == div, (ix, iy)
            assert result.steps_to_converge[iy, ix] == reached, (ix, iy)
            if div < 0:
                np.testing.assert_allclose(result.final_loss[iy, ix], loss, rtol=1e-9, atol=1e-15)
            continue
        # Only allowed where the cell itself cannot be computed to 1e-9 in float64: a plain
        # loop started a few ulps away ends at least as far off. Both ways: one nudge alone
        # can round to the same trajectory (rmsprop, alpha 0.9, lr 0.0063: 4e-8 one way,
        # 1e-2 the other).
        assert strategy == "auto", (ix, iy)
        drift = max(
            np.abs(plain_loop(s, spec, STEPS, start=np.array(s.start) * f)[0] - pos).max()
            for f in (1 + 4e-16, 1 - 4e-16)
        )
        assert drift > 0.01 * np.abs(got - pos).max(), (ix, iy)
        sensitive += 1
    return sensitive


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[2].name}-{c[3].name}-{c[4]}")
def test_one_group_per_cell_equals_a_plain_torch_loop(case):
    check_cells(case, "cells", "single")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[2].name}-{c[3].name}-{c[4]}")
def test_grouped_fast_sweep_equals_a_plain_torch_loop(case):
    """Exact to 1e-9 except in cells whose own dynamics amplify a rounding difference."""
    assert check_cells(case, "auto", "single") <= 3


def test_grouping_matches_one_group_per_cell_and_the_race():
    s = get_surface("ill_conditioned")
    racer = RacerSpec(OptimizerSpec("momentum", {}))
    x, y = SweepAxis("lr", 0.01, 0.3, True), SweepAxis("momentum", 0.0, 0.95)
    fast = run(s, racer, x, y, grid=6, steps=80)
    slow = run(s, racer, x, y, grid=6, steps=80, strategy="cells", impl="single")
    assert "folded" in fast.grouped and "36" in slow.grouped
    np.testing.assert_allclose(fast.final, slow.final, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(fast.diverged_at, slow.diverged_at)
    race = Race(s, [fast.racer_at(racer, 4, 2)], history="none")
    race.step(80)
    np.testing.assert_allclose(fast.final[2, 4], race.positions[0, 0], rtol=1e-9, atol=1e-12)


def test_result_layout_is_iy_ix_and_reports_divergence_and_convergence():
    s = get_surface("ill_conditioned")  # curvature 20 along y: plain SGD needs lr < 0.1
    racer = RacerSpec(OptimizerSpec("momentum", {}))
    x, y = SweepAxis("lr", 0.01, 0.2), SweepAxis("momentum", 0.0, 0.5)
    result = run(s, racer, x, y, grid=5, steps=300)
    assert result.x.shape == result.y.shape == (5,)
    np.testing.assert_allclose(result.x, [0.01, 0.0575, 0.105, 0.1525, 0.2])
    # lr = 0.2 at momentum 0 is past 2 / 20: it diverges; with momentum 0.5 the limit is 0.15
    assert result.diverged[0, 4] and result.diverged_at[0, 4] > 0
    assert result.diverged[4, 4] and not result.diverged[4, 2]
    assert not result.diverged[:, 0].any()
    conv = result.steps_to_converge
    assert (conv[:, 0] == -1).all()  # lr = 0.01 is too slow to arrive within 300 steps
    assert (conv[1:, 1:3] > 0).all()
    assert conv[1, 2] < conv[1, 1]  # a bigger stable step converges sooner
    assert (conv[result.diverged] == -1).all()
    assert np.isfinite(result.final_loss).all()


@pytest.mark.parametrize(
    ("racer", "axis", "message"),
    [
        (RacerSpec(OptimizerSpec("sgd", {})), "momentum=0:0.9", None),
        (RacerSpec(OptimizerSpec("sgd", {})), "beta1=0:0.9", "has no hyperparameter 'beta1'"),
        (RacerSpec(OptimizerSpec("adam", {})), "beta1=0.5:1.5", "beta1"),
        (RacerSpec(OptimizerSpec("adam", {})), "lr=0:0.1:log", "log axis needs LOW > 0"),
        (RacerSpec(OptimizerSpec("adam", {})), "lr=0.1:0.01", "is not below"),
        (RacerSpec(OptimizerSpec("adam", {})), "clip_value=1:2", "clip is none"),
        (RacerSpec(OptimizerSpec("adam", {})), "amsgrad=0:1", "not a real number"),
        (RacerSpec(OptimizerSpec("lbfgs", {})), "lr=0.1:1", "not element-wise"),
        (RacerSpec(OptimizerSpec("nesterov", {})), "momentum=0:0.9", "Nesterov"),
    ],
)
def test_bad_sweeps_name_the_problem(racer, axis, message):
    other = SweepAxis("eps", 1e-8, 1e-6, True) if racer.optimizer.name != "sgd" else None
    other = other or SweepAxis("lr", 1e-3, 1e-2, True)
    if racer.optimizer.name in ("lbfgs", "nesterov"):
        other = SweepAxis("noise", 0, 1)
    if message is None:
        plan_sweep(racer, parse_axis(axis), other, 4)
        return
    with pytest.raises(SweepError, match=message):
        plan_sweep(racer, parse_axis(axis), other, 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [("lr", "NAME=LOW:HIGH"), ("lr=1:2:cubic", "lin or log"), ("lr=a:2", "numbers")],
)
def test_parse_axis_rejects_bad_text(text, message):
    with pytest.raises(SweepError, match=message):
        parse_axis(text)


def test_parse_axis_reads_log_and_lin():
    assert parse_axis("lr=1e-4:1:log") == SweepAxis("lr", 1e-4, 1.0, True)
    assert parse_axis(" momentum = 0 : 0.99 ") == SweepAxis("momentum", 0.0, 0.99, False)


def test_too_large_grids_are_refused_before_starting(monkeypatch):
    import core.race.sweep as sweep

    racer = RacerSpec(OptimizerSpec("adam", {}))
    x, y = SweepAxis("lr", 1e-3, 1, True), SweepAxis("beta1", 0, 0.9)
    monkeypatch.setattr(sweep, "available_bytes", lambda: 64 * 2**20)
    with pytest.raises(SweepError, match="GB of memory"):
        plan_sweep(racer, x, y, 1024)
    with pytest.raises(SweepError, match="grid"):
        plan_sweep(racer, x, y, 5000)
    monkeypatch.setattr(sweep, "available_bytes", lambda: 64 * 2**30)
    with pytest.raises(SweepError, match="param group per cell"):
        plan_sweep(racer, SweepAxis("beta2", 0.9, 0.99), y, 256)


def test_sessions_carry_a_sweep_and_refuse_a_bad_one():
    from core.race.session import RaceSession, SessionError, load_preset

    for name in ("momentum_sweep_bowl", "adam_sweep_rosenbrock"):
        session = load_preset(name)
        assert len(session.sweep) == 2
        again = RaceSession.from_dict(session.to_dict())
        assert again.sweep == session.sweep
    d = load_preset("adam_sweep_rosenbrock").to_dict()
    d["sweep"] = ["lr=1e-3:1:log", "momentum=0:0.9"]  # Adam has no momentum
    with pytest.raises(SessionError, match="no hyperparameter 'momentum'"):
        RaceSession.from_dict(d)
    d["sweep"] = ["lr=1e-3:1:log"]
    with pytest.raises(SessionError, match="two axes"):
        RaceSession.from_dict(d)
