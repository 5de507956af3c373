"""losslab landscape on the user's own model (--model), re-rendering saved files (--load),
several processes (--workers, torchrun) and grids that resume after an interruption."""

import re
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


@pytest.mark.slow
def test_two_workers_give_the_grid_of_one_process(losslab, tmp_path):
    one, two = tmp_path / "one.npz", tmp_path / "two.npz"
    args = ["landscape", "--model", MLP, "--grid", "7", "--eigenvalues", "1"]
    a = losslab(*args, "--out", one)
    b = losslab(*args, "--workers", "2", "--out", two)
    assert a.returncode == 0 and b.returncode == 0, b.stderr[-2000:]
    assert b.stdout.count("2 ranks share the grid") == 1  # rank 0 alone speaks
    assert b.stdout.count("Top Hessian eigenvalues") == 1  # single-process work, once
    np.testing.assert_allclose(Landscape.load(two).loss, Landscape.load(one).loss, rtol=1e-5)
    bad = losslab("landscape", "--model", MLP, "--workers", "2", "--grid", "1", "--out",
                  tmp_path / "x.npz")  # fmt: skip
    assert bad.returncode != 0 and bad.stderr.count("Invalid resolution") == 1


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
