"""``losslab race``, in this process through the ``cli`` fixture (test_no_display.py runs it
in a fresh interpreter with no display)."""

import json
import os
import re
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from core.race.race import Race
from core.race.session import load_preset


def test_race_writes_every_format(cli, tmp_path):
    outs = [tmp_path / f"race.{ext}" for ext in ("png", "svg", "gif", "json", "csv")]
    args = ["race", "--preset", "momentum_overshoot", "--steps", "60"]
    args += ["--frames", "8", "--size", "480x360"]
    for o in outs:
        args += ["--out", o]
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert [line for line in r.stdout.splitlines() if line.startswith("wrote")] == [
        f"wrote {o}" for o in outs
    ]
    with Image.open(outs[0]) as im:
        assert im.size == (480, 360)
    assert ET.parse(outs[1]).getroot().tag.endswith("svg")
    with Image.open(outs[2]) as im:
        assert im.n_frames >= 6 and im.size == (480, 360)
    assert os.path.getsize(outs[2]) < 1_000_000
    doc = json.loads(outs[3].read_text())
    assert doc["steps"] == 60 and len(doc["racers"]) == 3
    assert doc["session"]["surface"]["key"] == "ill_conditioned"
    assert outs[4].read_text().startswith("racer,start,step,x,y,loss,lr")


def test_race_from_racers_and_a_formula(cli, tmp_path):
    r = cli(
        "race",
        "--formula",
        "x**2 + 3*sin(y)**2",
        "--bounds",
        "-2,2,-2,2",
        "--racer",
        "adam:lr=0.05",
        "--racer",
        "sgd:lr=1e-2,momentum=0.9,noise=0.1",
        "--start",
        "-1.5,1.5",
        "--steps",
        "40",
        "--out",
        tmp_path / "r.json",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["surface"] == "formula" and doc["racers"][0]["x"][0] == -1.5


def test_list_presets(cli):
    r = cli("race", "--list-presets")
    assert r.returncode == 0 and "lr_too_high" in r.stdout


def _summary(stdout: str) -> dict[str, str]:
    """Racer name -> its summary line (the lines between the header and the first 'wrote')."""
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("racer "))
    rows = [line for line in lines[head + 1 :] if not line.startswith("wrote")]
    return {re.split(r"\s{2,}", line)[0]: line for line in rows}


def test_summary_per_racer_matches_the_race(cli, tmp_path):
    """Final loss, distance, first converged step and divergence step, as core.race records
    them for the same race run directly."""
    r = cli("race", "--preset", "lr_too_high", "--steps", "100", "--out", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert "100 steps" in r.stdout and "within 0.001 of a known minimum" in r.stdout
    session = load_preset("lr_too_high")
    surface = session.surface.build()
    race = Race(surface, session.racers, starts=session.start or surface.start)
    race.step(100)
    rows = _summary(r.stdout)
    assert list(rows) == [s.label for s in session.racers]
    seen_converged = seen_diverged = False
    for i, spec in enumerate(session.racers):
        m = race.metrics(i)
        cells = re.split(r"\s{2,}", rows[spec.label].strip())
        assert float(cells[1]) == pytest.approx(float(m.final_loss[0]), rel=1e-3)
        assert float(cells[2]) == pytest.approx(float(m.final_distance[0]), rel=1e-3)
        reached, diverged = int(m.steps_to_converge[0]), int(m.diverged_at[0])
        assert cells[3] == (f"step {reached}" if reached >= 0 else "-")
        if diverged >= 0:
            assert cells[4].startswith(f"at step {diverged} (")
        else:
            assert cells[4] == "-"
        seen_converged |= reached >= 0
        seen_diverged |= diverged >= 0
    assert seen_converged and seen_diverged  # the preset shows both


def test_summary_tolerance_and_plural(cli, tmp_path):
    out = tmp_path / "r.json"
    r = cli("race", "--preset", "lr_too_high", "--steps", "1", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "1 step from" in r.stdout and "1 steps" not in r.stdout
    # a tolerance as wide as the plot: every racer has converged at step 0
    r = cli("race", "--preset", "lr_too_high", "--steps", "3", "--tol", "100", "--out", out)
    rows = _summary(r.stdout)
    assert rows and all(re.split(r"\s{2,}", row)[3] == "step 0" for row in rows.values())


def test_summary_without_known_minima(cli, tmp_path):
    r = cli("race", "--preset", "saddle_noise", "--steps", "5", "--out", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert "no known minimum" in r.stdout
    for row in _summary(r.stdout).values():
        assert re.split(r"\s{2,}", row.strip())[2:4] == ["-", "-"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--racer", "adam:lrr=1", "--out", "x.png"], "Unknown hyperparameter 'lrr'"),
        (["--racer", "adamm", "--out", "x.png"], "Unknown optimizer 'adamm'"),
        (["--preset", "nope", "--out", "x.png"], "unknown preset"),
        (["--preset", "lr_too_high", "--out", "x.bmp"], "unknown format"),
        (["--preset", "lr_too_high", "--size", "big", "--out", "x.png"], "size must look like"),
        (["--formula", "x +* y", "--racer", "adam", "--out", "x.png"], "syntax error"),
        (["--preset", "lr_too_high"], "--out is required"),
        (["--surface", "nope", "--out", "x.png"], "invalid choice: 'nope'"),
        (["--preset", "lr_too_high", "--steps", "0", "--out", "x.png"], "--steps must be"),
        (
            ["--preset", "lr_too_high", "--tol", "0", "--out", "x.png"],
            "--tol must be a positive distance",
        ),
        (
            ["--surface", "beale", "--racer", "adam", "--start", "100,100", "--out", "x.png"],
            "--start 100,100 is outside the Beale surface's bounds: "
            "x from -4.5 to 4.5, y from -4.5 to 4.5",
        ),
        (
            ["--preset", "lr_too_high", "--start", "-1,2,3", "--out", "x.png"],
            "--start needs two numbers: X,Y, got '-1,2,3'",
        ),
        (["--preset", "lr_too_high", "--start", "1,a", "--out", "x.png"], "--start needs two"),
        (
            ["--formula", "x*y", "--racer", "adam", "--bounds", "0,1,nan,1", "--out", "x.png"],
            "--bounds needs four numbers",
        ),
        (  # x**2 overflows at such a start: refused instead of a blank picture
            ["--formula", "x*y", "--racer", "adam", "--bounds=-1e300,1e300,0,1", "--out", "x.png"],
            "plot bounds must lie within -1e+06 .. 1e+06",
        ),
    ],
)
def test_bad_race_options(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = cli("race", *args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("missing/x.png", "folder {tmp}/missing does not exist"),
        ("a_folder.png", "it is a folder"),
        ("a_file/x.png", "{tmp}/a_file is not a folder"),
    ],
)
def test_every_output_path_is_checked_before_the_race(cli, tmp_path, bad, reason):
    (tmp_path / "a_folder.png").mkdir()
    (tmp_path / "a_file").write_text("")
    good = tmp_path / "first.json"
    r = cli("race", "--preset", "lr_too_high", "--out", good, "--out", tmp_path / bad)
    assert r.returncode == 2, r.stderr
    assert f"cannot write {tmp_path / bad}: " + reason.format(tmp=tmp_path) in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""  # no race run, no summary
    assert not good.exists()  # nothing written before the check failed


def test_race_writes_an_mp4(cli, tmp_path):
    """H.264 in yuv420p at --size made even, one video frame per --frames (as the GIF)."""
    import imageio_ffmpeg

    out = tmp_path / "race.mp4"
    r = cli(
        "race", "--preset", "lr_too_high", "--steps", "30", "--frames", "6", "--size", "321x241",
        "--out", out,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["size"] == (320, 240)
    assert sum(1 for _ in reader) == 6
    assert [p.name for p in tmp_path.iterdir()] == ["race.mp4"]  # no temporary file left


@pytest.mark.parametrize("bad", ["missing/race.mp4", "a_file/race.mp4"])
def test_an_unwritable_mp4_path_is_refused_before_the_race(cli, tmp_path, bad):
    (tmp_path / "a_file").write_text("")
    r = cli("race", "--preset", "lr_too_high", "--out", tmp_path / bad)
    assert r.returncode == 2 and f"cannot write {tmp_path / bad}: " in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]


def test_list_presets_names_a_damaged_preset_and_lists_the_rest(cli, tmp_path, monkeypatch):
    import shutil

    from core.race import session

    folder = tmp_path / "presets"
    shutil.copytree(session.PRESET_DIR, folder)
    (folder / "lr_too_high.json").write_text("{ not json")
    monkeypatch.setattr(session, "PRESET_DIR", folder)
    r = cli("race", "--list-presets")
    assert r.returncode == 1
    assert "lr_too_high.json is damaged" in r.stderr and "Traceback" not in r.stderr
    assert "momentum_overshoot" in r.stdout and "lr_too_high" not in r.stdout
    monkeypatch.setattr(session, "PRESET_DIR", tmp_path / "gone")
    r = cli("race", "--list-presets")
    assert r.returncode == 1 and "no presets found" in r.stderr


def test_a_damaged_session_is_refused_without_a_traceback(cli, tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)  # json's decoder recursed past the limit
    r = cli("race", "--session", deep, "--out", tmp_path / "x.json")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "deep.json is not a session: nested too deeply" in r.stderr
    assert not (tmp_path / "x.json").exists()


def test_out_help_names_the_sweep_formats(cli):
    r = cli("race", "--help")
    assert r.returncode == 0
    assert "with --sweep: .png .npz" in " ".join(r.stdout.split())
