"""``losslab curvature``: the JSON and the density picture, the cost shown first, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "core" / "train" / "examples" / "mlp_regression.py"
CHEAP = ("--trace-samples", "4", "--density-runs", "1", "--density-steps", "10",
         "--samples", "32", "--max-steps", "8")  # fmt: skip


@pytest.mark.slow
def test_everything_from_a_checkpoint(cli, trained_run, tmp_path):
    out, png = tmp_path / "curv.json", tmp_path / "density.png"
    r = cli("curvature", "--checkpoint", trained_run.checkpoint, "--top", "2", "--trace",
            "--density", "--per-layer", *CHEAP, "--out", out, "--out", png)  # fmt: skip
    assert r.returncode == 0, r.stderr
    # the cost comes before the work, with the products and the time per product
    assert "61,706 parameters; at most" in r.stdout
    assert "Hessian-vector products, up to about" in r.stdout and "one took" in r.stdout
    data = json.loads(out.read_text())
    assert len(data["top_eigenvalues"]) == 2
    assert data["top_eigenvalues"][0] >= data["top_eigenvalues"][1]
    assert set(data["trace"]) >= {"value", "error"} and data["trace"]["error"] > 0
    assert len(data["density"]["grid"]) == len(data["density"]["values"]) == 1000
    names = [layer["name"] for layer in data["per_layer"]]
    assert names == ["features.1", "features.4", "classifier.1", "classifier.3", "classifier.5"]
    assert sum(layer["parameters"] for layer in data["per_layer"]) == 61_706
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_record_alone_uses_its_checkpoint(cli, trained_run, tmp_path):
    out = tmp_path / "c.json"
    r = cli("curvature", "--run", trained_run.record, "--top", "1", "--samples", "16",
            "--max-steps", "5", "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Run 'tiny'" in r.stdout
    assert len(json.loads(out.read_text())["top_eigenvalues"]) == 1


def test_an_experiment_file(cli, tmp_path):
    out = tmp_path / "c.json"
    r = cli("curvature", "--model", EXAMPLE, "--top", "2", "--max-steps", "10", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "Your model" in r.stdout and "4 batches" in r.stdout
    assert json.loads(out.read_text())["parameters"] == 4417


def test_an_experiment_whose_loss_has_no_second_derivative(cli, tmp_path):
    f = tmp_path / "exp.py"
    f.write_text(
        "import torch\nfrom torch import nn\n"
        "def model():\n    return nn.Linear(3, 2)\n"
        "def batches():\n    return [(torch.randn(4, 3), torch.randn(4, 2))]\n"
        "def loss(model, batch):\n    return torch.cdist(model(batch[0]), batch[1]).mean()\n"
    )
    out = tmp_path / "c.json"
    r = cli("curvature", "--model", f, "--out", out)
    assert r.returncode == 1
    assert "cannot be differentiated twice" in r.stderr and "cdist" in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--checkpoint", "nowhere.pt", "--out", "{tmp}/c.json"], "nowhere.pt"),
        (["--checkpoint", "{ck}", "--out", "{tmp}/missing/c.json"], "does not exist"),
        (["--checkpoint", "{ck}", "--out", "{tmp}/c.txt"], "unknown format '.txt'"),
        (["--checkpoint", "{ck}", "--out", "{tmp}/d.png"], "add --density"),
        (["--checkpoint", "{ck}", "--out", "{tmp}/a.json", "--out", "{tmp}/b.json"], "two .json"),
        (["--checkpoint", "{ck}", "--top", "0", "--out", "{tmp}/c.json"], "nothing to compute"),
        (["--checkpoint", "{ck}", "--out", "{tmp}"], "unknown format"),
        (["--out", "{tmp}/c.json"], "give --checkpoint, --run or --model"),
    ],
)
def test_bad_input_is_refused_before_any_work(cli, trained_run, tmp_path, args, message):
    args = [a.format(tmp=tmp_path, ck=trained_run.checkpoint) for a in args]
    r = cli("curvature", *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert "Hessian-vector products" not in r.stdout  # nothing was computed


def test_an_unwritable_folder_is_refused_first(cli, trained_run, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        probe = folder / "probe"
        try:
            probe.write_text("")  # root writes anywhere: nothing to test then
            pytest.skip("this user can write to a read-only folder")
        except OSError:
            pass
        r = cli("curvature", "--checkpoint", trained_run.checkpoint, "--out", folder / "c.json")
    finally:
        folder.chmod(0o700)
    assert r.returncode == 2 and "cannot write" in r.stderr


def test_ctrl_c_exits_130_and_writes_nothing(cli, trained_run, tmp_path, monkeypatch):
    from core.landscape import curvature_job as cj

    real = cj.analyse_problem

    def interrupted(problem, request):
        for e in real(problem, request):
            yield e
            if isinstance(e, cj.Planned):
                raise KeyboardInterrupt  # the user read the cost and pressed Ctrl+C

    monkeypatch.setattr(cj, "analyse_problem", interrupted)
    out = tmp_path / "c.json"
    r = cli("curvature", "--checkpoint", trained_run.checkpoint, "--trace", "--samples", "16",
            "--max-steps", "5", "--out", out)  # fmt: skip
    assert r.returncode == 130
    assert "at most" in r.stdout  # the cost was shown before
    assert "interrupted" in r.stderr
    assert not out.exists()


@pytest.mark.slow
def test_a_real_ctrl_c_after_the_estimate_exits_130(trained_run, tmp_path):
    """In a fresh process: the cost line comes first, then SIGINT stops the long part."""
    import os
    import signal
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY",)}
    out = tmp_path / "c.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "curvature", "--checkpoint", str(trained_run.checkpoint),
         "--top", "0", "--trace", "--trace-samples", "100000", "--samples", "16",
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        for line in proc.stdout:
            if "Ctrl+C stops" in line:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()
