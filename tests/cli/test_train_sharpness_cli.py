"""`losslab train --track-sharpness N`: the series in the run record, the summary line with the
limit that applies (or why none does), and bad values refused."""

import json


def test_the_series_goes_into_the_record_and_the_summary_names_the_limit(cli, tmp_path):
    out = tmp_path / "run.json"
    r = cli("train", "linreg", "--epochs", "20", "--track-sharpness", "5", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "Sharpness at step 5: 11.09" in r.stdout
    assert "Sharpness: 4 measurements every 5 steps; last 11.09" in r.stdout
    assert "stability limit 2/lr = 200" in r.stdout and "of the training time" in r.stdout
    s = json.loads(out.read_text())["finished"]["final"]["sharpness"]
    assert s["steps"] == [5, 10, 15, 20] and s["limit"] == "2/lr" and s["limits"][0] == 200
    assert json.loads(out.read_text())["config"]["track_sharpness"] == 5


def test_momentum_draws_its_own_limit_and_adam_none(cli):
    r = cli(
        "train", "linreg", "--epochs", "4", "--track-sharpness", "2", "--optimizer", "momentum",
        "--lr", "0.01", "--momentum", "0.9", "--quiet",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "2(1+β)/lr (β = 0.9) = 380" in r.stdout
    r = cli(
        "train", "linreg", "--epochs", "4", "--track-sharpness", "2", "--optimizer", "adam",
        "--quiet",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "stability limit" not in r.stdout and "preconditioned sharpness" in r.stdout


def test_a_bad_n_is_refused_with_the_reason(cli):
    r = cli("train", "linreg", "--track-sharpness", "-2")
    assert r.returncode == 2 and "track_sharpness" in r.stderr and "-2" in r.stderr
    r = cli("train", "linreg", "--track-sharpness", "two")
    assert r.returncode == 2 and "--track-sharpness" in r.stderr


def test_without_the_option_nothing_is_measured(cli, tmp_path):
    out = tmp_path / "run.json"
    r = cli("train", "linreg", "--epochs", "3", "--out", out)
    assert r.returncode == 0 and "Sharpness" not in r.stdout
    assert "sharpness" not in json.loads(out.read_text())["finished"]["final"]
