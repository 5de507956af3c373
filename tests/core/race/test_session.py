import json

import numpy as np
import pytest

from core.optimizers import OptimizerSpec
from core.race.basins import DIVERGED, BasinMap, BasinProgress, basin_map
from core.race.formula import formula_surface
from core.race.race import Race, RacerSpec
from core.race.session import (
    RaceSession,
    SessionError,
    SurfaceChoice,
    load_preset,
    load_session,
    preset_names,
    save_session,
)
from core.race.surfaces import get_surface


def test_session_round_trip(tmp_path):
    s = RaceSession(
        SurfaceChoice("formula", "x**2 + 3*y**2", (-2, 2, -1, 1)),
        (1.0, 0.5),
        (RacerSpec(OptimizerSpec("adam", {"lr": 0.1}), noise=0.2, seed=4),),
        3,
        40,
        "cap",
        "name",
    )
    path = tmp_path / "s.json"
    save_session(path, s)
    assert load_session(path) == s
    assert oct(path.stat().st_mode & 0o777) != "0o600"  # normal permissions, not mkstemp's


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not JSON"),
        ('{"format": "other"}', "not a LossLab race session"),
        (
            '{"format": "losslab-race-session-1", "surface": {"key": "moon"}, "racers": []}',
            "unknown surface 'moon'",
        ),
        (
            '{"format": "losslab-race-session-1", "surface": {"key": "beale"}, "racers": []}',
            "non-empty list of racers",
        ),
        (
            '{"format": "losslab-race-session-1", "surface": {"key": "formula", "formula": "x^2"},'
            ' "racers": [{"optimizer": {"name": "adam"}}]}',
            "formula: operator '^'",
        ),
        (
            '{"format": "losslab-race-session-1", "surface": {"key": "beale"},'
            ' "racers": [{"optimizer": {"name": "adam", "hyper": {"lr": -1}}}]}',
            "Invalid lr",
        ),
        (
            '{"format": "losslab-race-session-1", "surface": {"key": "beale"}, "speed": "fast",'
            ' "racers": [{"optimizer": {"name": "adam"}}]}',
            "speed must be",
        ),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),  # was a RecursionError
    ],
)
def test_bad_sessions_say_why(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SessionError) as info:
        load_session(path)
    assert message in str(info.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(SessionError, match="no such file"):
        load_session(tmp_path / "none.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SessionError):
        load_session(tmp_path / "bin.json")
    with pytest.raises(OSError, match="does not exist"):
        save_session(tmp_path / "no" / "dir" / "s.json", RaceSession())


def test_at_least_six_presets_with_captions():
    names = preset_names()
    assert len(names) >= 6
    for name in names:
        s = load_preset(name)
        assert s.caption and s.name and s.racers
    with pytest.raises(SessionError, match="unknown preset"):
        load_preset("nope")


def _run(name, steps=400):
    s = load_preset(name)
    surface = s.surface.build()
    race = Race(surface, s.racers, starts=s.start or surface.start)
    race.step(steps)
    return s, race


def test_preset_lr_too_high_teaches_its_caption():
    s, race = _run("lr_too_high", 300)
    diverged = [race.diverged_at[r, 0] >= 0 for r in range(race.n_racers)]
    assert diverged == [False, False, False, True]  # only lr 0.105 > 2/20 blows up
    assert (race.metrics(0).final_distance[:1] < 1e-2).all()


def test_preset_saddle_noise_escapes_only_with_noise():
    s, race = _run("saddle_noise", 300)
    assert race.positions[0, 0, 1] == 0.0 and race.positions[2, 0, 1] == 0.0  # stuck on ridge
    assert race.diverged_at[1, 0] > 0  # the noisy one ran off downhill


def test_preset_schedule_settles_lower_than_constant():
    s, race = _run("step_schedule", 400)
    tail = [np.mean(race.trajectory(r).loss[-50:]) for r in range(3)]
    assert tail[1] < tail[0] / 5 and tail[2] < tail[0]


def test_preset_rastrigin_momentum_and_noise_beat_plain_sgd():
    s, race = _run("rastrigin_local_minima", 600)
    final = race.losses[:, 0]
    assert final[1] < final[0] and final[3] < final[0]


def test_preset_himmelblau_racers_pick_different_minima():
    s, race = _run("himmelblau_basins", 400)
    picks = {int(race.metrics(r).nearest_minimum[0]) for r in range(race.n_racers)}
    assert len(picks) >= 2


def test_basin_map_of_himmelblau_finds_the_four_minima():
    s = get_surface("himmelblau")
    items = list(
        basin_map(
            s, RacerSpec(OptimizerSpec("adam", {"lr": 0.05})), resolution=32, steps=400, chunk=100
        )
    )
    assert [type(i) for i in items] == [BasinProgress] * 4 + [BasinMap]
    m = items[-1]
    assert m.labels.shape == (32, 32) and not m.found
    assert set(np.unique(m.labels)) >= {0, 1, 2, 3}
    # the start nearest each minimum ends in that minimum's basin (row = y, col = x)
    for i, mn in enumerate(s.minima):
        col = int(round((mn.x + 5) / 10 * 31))
        row = int(round((mn.y + 5) / 10 * 31))
        assert m.labels[row, col] == i


def test_basin_map_without_known_minima_clusters_end_points():
    s = formula_surface("(x**2 - 1)**2 + y**2", bounds=(-2, 2, -1, 1))
    m = list(basin_map(s, RacerSpec(OptimizerSpec("sgd", {"lr": 0.05})), resolution=24, steps=300))[
        -1
    ]
    assert m.found and len(m.minima) == 2
    np.testing.assert_allclose(sorted(m.minima[:, 0]), [-1, 1], atol=0.05)
    sgd = RacerSpec(OptimizerSpec("sgd", {"lr": 0.5}))
    wild = list(basin_map(get_surface("rosenbrock"), sgd, resolution=8, steps=20))[-1]
    assert (wild.labels == DIVERGED).any()


def test_session_json_is_plain():
    text = json.dumps(load_preset("momentum_overshoot").to_dict())
    assert "momentum" in text


def test_an_lbfgs_basin_map_can_be_cancelled_after_every_step():
    """L-BFGS steps each start on its own: progress (where a GUI may cancel) after every
    step, not every 25 (minutes at the GUI's size)."""
    items = list(
        basin_map(
            get_surface("himmelblau"),
            RacerSpec(OptimizerSpec("lbfgs", {"lr": 1.0})),
            resolution=3,
            steps=4,
        )
    )
    progress = [i.steps_done for i in items if isinstance(i, BasinProgress)]
    assert progress == [1, 2, 3, 4]
