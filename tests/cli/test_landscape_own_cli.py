"""losslab landscape on the user's own model (--model), re-rendering saved files (--load),
several processes (--workers, torchrun) and grids that resume after an interruption."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core.landscape import distributed as dist
from core.landscape import job as lj
from core.landscape.plane import Landscape
from core.train.experiment import load_experiment

ROOT = Path(__file__).resolve().parents[2]
MLP = ROOT / "core" / "train" / "examples" / "mlp_regression.py"
FAST = ["--grid", "5", "--eigenvalues", "0"]


def test_own_model_centre_is_the_models_loss_and_every_format_is_written(cli, tmp_path):
    outs = [tmp_path / f"own.{s}" for s in ("npz", "h5", "vtp", "png")]
    r = cli("landscape", "--model", MLP, *FAST, *sum((["--out", o] for o in outs), []))
    assert r.returncode == 0, r.stderr
    assert "mean of loss(model, batch)" in r.stdout and "no checkpoint" in r.stdout
    land = Landscape.load(outs[0])
    e = load_experiment(MLP)
    want = e.mean_loss(e.build_model().eval(), e.batches())
    assert land.meta["centre_loss"] == pytest.approx(want, rel=1e-6)
    assert land.loss[2, 2] == pytest.approx(want, rel=1e-6)  # the grid's middle point
    assert all(o.stat().st_size > 0 for o in outs)
    assert not dist.partial_path(outs[0]).exists()  # done: nothing left to resume


def test_own_model_with_a_checkpoint_in_another_format(cli, tmp_path):
    e = load_experiment(MLP)
    model = e.build_model()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}},
               tmp_path / "lightning.ckpt")  # fmt: skip
    out = tmp_path / "l.npz"
    r = cli("landscape", "--model", MLP, "--checkpoint", tmp_path / "lightning.ckpt", *FAST,
            "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr
    want = e.mean_loss(model.eval(), e.batches())
    assert Landscape.load(out).meta["centre_loss"] == pytest.approx(want, rel=1e-6)


def test_bad_own_models_and_arguments_are_messages(cli, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def model(:\n")
    r = cli("landscape", "--model", bad, *FAST, "--out", tmp_path / "x.npz")
    assert r.returncode == 2 and "bad.py, line 1" in r.stderr and "Traceback" not in r.stderr
    r = cli("landscape", "--model", MLP, "--bf16", *FAST, "--out", tmp_path / "x.npz")
    assert r.returncode == 2 and "bfloat16" in r.stderr
    r = cli("landscape", "--load", tmp_path / "x.npz", "--model", MLP, "--out", tmp_path / "y.png")
    assert r.returncode == 2 and "give it alone" in r.stderr
    r = cli("landscape", "--out", tmp_path / "y.png")
    assert r.returncode == 2 and "--model, or --load" in r.stderr
    r = cli("landscape", "--model", MLP, "--workers", "0", "--out", tmp_path / "y.npz")
    assert r.returncode == 2 and "--workers" in r.stderr
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob("y.*"))


def test_load_re_renders_without_computing(cli, tmp_path):
    src = tmp_path / "a.npz"
    assert cli("landscape", "--model", MLP, *FAST, "--out", src).returncode == 0
    h5 = tmp_path / "a.h5"
    r = cli("landscape", "--load", src, "--out", h5, "--out", tmp_path / "a.svg")
    assert r.returncode == 0, r.stderr
    r = cli("landscape", "--load", h5, "--out", tmp_path / "b.npz")
    assert r.returncode == 0, r.stderr
    a, b = Landscape.load(src), Landscape.load(tmp_path / "b.npz")
    np.testing.assert_allclose(a.loss, b.loss)
    (tmp_path / "junk.h5").write_bytes(b"nope")
    r = cli("landscape", "--load", tmp_path / "junk.h5", "--out", tmp_path / "c.png")
    assert r.returncode == 2 and "junk.h5" in r.stderr


def test_an_interrupted_grid_resumes_from_its_partial_file(cli, tmp_path):
    out = tmp_path / "r.npz"
    partial = dist.partial_path(out)
    subject = lj.load_model_subject(str(MLP))
    req = lj.Request(resolution=7, eigenvalues=0)
    calls = {"n": 0}

    def stop_after_a_while():
        calls["n"] += 1
        return calls["n"] > 1  # after the first round (one point: later rounds grow)

    for _ in lj.run(subject, req, should_stop=stop_after_a_while, partial=partial):
        pass
    kept, _ = dist.PartialGrid.load(partial, lj.fingerprint(
        subject, req, *_axes(7), *_plane(subject), 4), (7, 7))  # fmt: skip
    assert kept is not None and 0 < kept.count < 49
    r = cli("landscape", "--model", MLP, "--grid", "7", "--eigenvalues", "0", "--out", out)
    assert r.returncode == 0, r.stderr
    m = re.search(r"resuming from .*: (\d+) of 49 points done", r.stdout)
    assert m and int(m.group(1)) == kept.count
    fresh = tmp_path / "f.npz"
    assert cli("landscape", "--model", MLP, "--grid", "7", "--eigenvalues", "0",
               "--out", fresh).returncode == 0  # fmt: skip
    np.testing.assert_allclose(Landscape.load(out).loss, Landscape.load(fresh).loss, rtol=1e-6)
    assert not partial.exists()


def test_a_partial_file_of_other_inputs_is_not_mixed_in(cli, tmp_path):
    out = tmp_path / "o.npz"
    stale = dist.PartialGrid.empty("another", (5, 5), False)
    stale.loss[:] = 123.0
    stale.done[:] = True
    stale.save(dist.partial_path(out))
    r = cli("landscape", "--model", MLP, *FAST, "--out", out)
    assert r.returncode == 0 and "other inputs" in r.stdout and "starting afresh" in r.stdout
    assert (Landscape.load(out).loss < 100).all()


def _axes(n):
    a = np.linspace(-1, 1, n)
    return a, a.copy()


def _plane(subject):
    from core.landscape.directions import flat_parameters, random_directions

    c = flat_parameters(subject.model)
    return (c, *random_directions(subject.model, 0))


CLASSIFIER = """
import torch
from torch import nn


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))


def batches():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 3, generator=g)
    y = (x[:, 0] > 0).long()
    return [(x[:20], y[:20]), (x[20:], y[20:])]
"""


@pytest.mark.slow
def test_two_workers_give_the_grid_of_one_process(capfd, tmp_path):
    """A real launch, as ``losslab landscape --workers 2`` makes it: torch's launcher in this
    process and 2 ranks, each a fresh interpreter, against the grid of one process, its loss
    and its accuracy. (capfd, not the cli fixture: the ranks write to this process's file
    descriptors.)"""
    from app.main import main

    model, one, two = tmp_path / "classifier.py", tmp_path / "one.npz", tmp_path / "two.npz"
    model.write_text(CLASSIFIER)
    args = ["landscape", "--model", str(model), *FAST[:2], "--eigenvalues", "1"]
    assert main([*args, "--out", str(one)]) == 0
    capfd.readouterr()
    code = main([*args, "--workers", "2", "--out", str(two)])
    out, err = capfd.readouterr()  # the ranks write to this process's stdout and stderr
    assert code == 0, err[-2000:]
    assert out.count("2 ranks share the grid") == 1  # rank 0 alone speaks
    assert out.count("Top Hessian eigenvalues") == 1  # single-process work, once
    a, b = Landscape.load(one), Landscape.load(two)
    assert np.isfinite(b.loss).all() and b.acc is not None and np.isfinite(b.acc).all()
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-5)
    np.testing.assert_allclose(b.acc, a.acc, rtol=1e-5)


DYING = """
import os

_calls = [0]
_loss = loss


def loss(model, batch):
    _calls[0] += 1
    if os.environ.get("RANK") == "1" and _calls[0] > 40:
        os._exit(17)  # rank 1 dies mid-grid
    return _loss(model, batch)
"""


@pytest.mark.slow
def test_a_dead_worker_is_named_and_the_gathered_points_are_kept(capfd, tmp_path):
    """Rank 1 dies mid-grid: rank 0 names it, keeps what was gathered in the partial file and
    exits with its own code. The launcher's SIGTERM, sent to rank 0 as soon as it sees rank 1
    gone, must not turn this into "interrupted": rank 0 waits for its next collective."""
    from app.main import main

    dying, out = tmp_path / "dying.py", tmp_path / "d.npz"
    dying.write_text(MLP.read_text() + DYING)
    code = main(["landscape", "--model", str(dying), "--grid", "9", "--eigenvalues", "0",
                 "--workers", "2", "--out", str(out)])  # fmt: skip
    err = capfd.readouterr().err  # the ranks write to this process's stderr
    assert code == 1, err[-3000:]
    assert "rank 1 stopped answering" in err and "Run the same command again" in err
    assert "Traceback" not in err and "Exception ignored" not in err
    partial = dist.partial_path(out)
    kept, _ = dist.PartialGrid.load(partial, _fingerprint_of(partial), (9, 9))
    assert kept is not None and 0 < kept.count < 81 and not out.exists()


@pytest.mark.slow
def test_a_stopped_launcher_stops_every_rank_after_its_round_and_keeps_the_points(capfd, tmp_path):
    """SIGTERM to the launcher (a `kill`, a job's time limit): it passes SIGTERM to the ranks,
    which end the round together; rank 0 says where the points are, the exit code is the
    signal's. (This process is the launcher: the signal comes once its ranks have written.)"""
    import os
    import signal
    import threading
    import time

    from app.main import main

    out = tmp_path / "big.npz"
    partial = dist.partial_path(out)

    def stop_once_written():
        deadline = time.monotonic() + 120
        while not partial.exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # polling for a file other processes write: no signal to wait on
        os.kill(os.getpid(), signal.SIGTERM)  # the launcher's handler takes it (see run())

    stopper = threading.Thread(target=stop_once_written)
    stopper.start()
    code = main(["landscape", "--model", str(MLP), "--grid", "301", "--eigenvalues", "0",
                 "--workers", "2", "--out", str(out)])  # fmt: skip
    stopper.join()
    err = capfd.readouterr().err
    assert code == 143, err[-3000:]
    assert f"stopped (SIGTERM); the points done are kept in {partial}" in err
    assert "stopped answering" not in err and "Traceback" not in err
    kept, _ = dist.PartialGrid.load(partial, _fingerprint_of(partial), (301, 301))
    assert kept is not None and 0 < kept.count < 301 * 301 and not out.exists()


def test_what_every_worker_would_refuse_is_said_once_before_any_starts(cli, tmp_path):
    """--workers N: a bad setting is found before the launcher starts N processes (each would
    import torch and load the model only to refuse it); no process is started here."""
    base = ["landscape", "--model", MLP, "--workers", "2", "--out", tmp_path / "x.npz"]
    bad = cli(*base, "--grid", "1")
    assert bad.returncode == 2 and bad.stderr.count("Invalid grid size") == 1
    bad = cli(*base, "--eigenvalues", "9")
    assert bad.returncode == 2 and "Invalid eigenvalues" in bad.stderr
    bad = cli(*base, "--directions", "endpoints")
    assert bad.returncode == 2 and "at least 2 runs" in bad.stderr
    bad = cli("landscape", "--load", tmp_path / "a.npz", "--workers", "2", "--out",
              tmp_path / "a.png")  # fmt: skip
    assert bad.returncode == 2 and "leave out --workers" in bad.stderr
    assert not list(tmp_path.iterdir())


def test_a_rank_other_than_0_refuses_silently_before_joining_the_others(cli, monkeypatch, tmp_path):
    """Under torchrun every rank finds the same bad setting: rank 0 says it, the others exit
    quietly, and none waits for a rendezvous first (none is running here)."""
    args = ["landscape", "--model", MLP, "--grid", "1", "--out", tmp_path / "x.npz"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with monkeypatch.context() as m:
        m.setattr(sys, "stdout", sys.stdout)  # main() sends rank 1's to os.devnull for good
        r = cli(*args)
        quiet = sys.stdout
    quiet.close()
    assert r.returncode == 2 and r.stderr == ""
    monkeypatch.setenv("RANK", "0")
    r = cli(*args)
    assert r.returncode == 2 and r.stderr.count("Invalid grid size") == 1


def test_the_launcher_stays_on_this_machine_and_checks_its_ranks_often(monkeypatch):
    from torch.distributed.run import config_from_args

    from app.workers_cli import launch_config

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # else the launcher's parser sets it, and warns

    config, cmd, cmd_args = config_from_args(launch_config(3, 29500, ["landscape", "--grid", "5"]))
    assert config.nproc_per_node == 3 and config.rdzv_backend == "static"
    assert config.rdzv_endpoint == "127.0.0.1:29500" and config.max_restarts == 0
    assert config.monitor_interval <= 0.1  # torch 2.2, 2.3: 5 s after the last rank ended
    assert cmd_args[-5:] == ["-m", "app", "landscape", "--grid", "5"]
    # words that abbreviate two of the launcher's options reach the ranks as they are
    argv = ["landscape", "--run", "a.json", "--log", "--out", "x.png"]
    assert config_from_args(launch_config(2, 29500, argv))[2][-len(argv) :] == argv


def test_the_launchers_warnings_are_quiet_during_a_launch_and_its_errors_are_not():
    """After Ctrl+C torch's launcher narrated the stop in three warnings above rank 0's own
    message (seen in a terminal: this process's pytest capture does not see its handler)."""
    import logging

    import torch.distributed.elastic.agent.server.api as agent
    import torch.distributed.elastic.multiprocessing.api as procs

    from app.workers_cli import _quiet_launcher

    before = {agent.logger: agent.logger.level, procs.logger: procs.logger.level}
    levels = _quiet_launcher()
    try:
        for logger in before:
            assert not logger.isEnabledFor(logging.WARNING), logger.name
            assert logger.isEnabledFor(logging.ERROR), logger.name
    finally:
        for logger, level in levels.items():
            logger.setLevel(level)
    assert {logger: logger.level for logger in before} == before


def test_a_failed_launch_exits_with_rank_0s_code():
    from app.workers_cli import failed_ranks_code

    assert failed_ranks_code({1: 17, 0: 1}, first=1) == 1  # rank 0 named the dead rank
    assert failed_ranks_code({0: 2, 1: 2}, first=1) == 2  # a bad setting every rank found
    assert failed_ranks_code({1: 17, 0: -15}, first=1) == 17  # rank 0 stopped as it ended
    assert failed_ranks_code({3: 1, 2: -9}, first=2) == 137  # rank 2 killed (SIGKILL)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_the_partial_file(tmp_path):
    """SIGINT (Ctrl+C) mid-grid: exit 130, a message saying where the points are, and the
    partial file the same command resumes from."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "big.npz"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "QT_QPA_PLATFORM")}
    cmd = [sys.executable, "-m", "app", "landscape", "--model", str(MLP), "--grid", "301",
           "--eigenvalues", "0", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)  # fmt: skip
    partial = dist.partial_path(out)
    deadline = time.monotonic() + 120
    while not partial.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)  # polling for a file another process writes: no signal to wait on
    assert partial.exists(), proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and str(partial) in err and "Traceback" not in err
    kept, _ = dist.PartialGrid.load(partial, _fingerprint_of(partial), (301, 301))
    assert kept is not None and kept.count > 0 and not out.exists()


def _fingerprint_of(path):
    import json

    with np.load(path) as z:
        return json.loads(bytes(z["head"]).decode())["fingerprint"]
