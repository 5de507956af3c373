import json
import os
import subprocess
import sys

import pytest
import torch

from core.train.runs import RunRecord


def losslab(*args, cwd=None, timeout=300):
    env = {**os.environ, "QT_QPA_PLATFORM": "none"}  # proves no display is needed
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
    )


def test_train_sine_writes_a_run_record(tmp_path):
    out = losslab("train", "sine", "--epochs", "400", "--out", str(tmp_path / "run.json"))
    assert out.returncode == 0, out.stderr
    assert "y = " in out.stdout and "Finished (completed) after 400 epochs" in out.stdout
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["format"] == "losslab-run-1"
    assert len(data["steps"]["loss"]) == 400
    assert data["config"]["optimizer"]["name"] == "rmsprop"
    assert data["finished"]["final"]["polynomial"].startswith("y = ")
    assert (tmp_path / "run.trajectory.npz").exists()
    assert RunRecord.load(tmp_path / "run.json").snapshots.shape[1] == 4


def test_train_numpy_form_and_overrides(tmp_path):
    out = losslab(
        "train",
        "sine",
        "--form",
        "numpy",
        "--optimizer",
        "sgd",
        "--lr",
        "1e-6",
        "--reduction",
        "sum",
        "--epochs",
        "50",
    )
    assert out.returncode == 0, out.stderr
    assert "(numpy form)" in out.stdout


def test_train_lenet_tutorial_lines_checkpoint_and_resume(tmp_path):
    ckpt = tmp_path / "best.pt"
    out = losslab(
        "train",
        "lenet",
        "--dataset",
        "synthetic",
        "--limit",
        "640",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--log-every",
        "10",
        "--checkpoint",
        str(ckpt),
    )
    assert out.returncode == 0, out.stderr
    assert "synthetic" in out.stdout and "NOT MNIST" in out.stdout
    assert "Train Epoch: 1 [320/640 (50%)]\tLoss: " in out.stdout
    assert "val accuracy" in out.stdout
    payload = torch.load(ckpt, weights_only=True)
    assert payload["epoch"] == 1
    again = losslab(
        "train",
        "lenet",
        "--dataset",
        "synthetic",
        "--limit",
        "640",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--resume",
        str(ckpt),
    )
    assert again.returncode == 0, again.stderr
    assert "Epoch 2:" in again.stdout and "Epoch 1:" not in again.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "sine", "--loss", "cross_entropy"], "classification loss"),
        (["train", "sine", "--lr", "-1"], "Invalid lr"),
        (["train", "sine", "--hyper", "beta9=1"], "Unknown hyperparameter 'beta9'"),
        (["train", "sine", "--hyper", "nonsense"], "NAME=VALUE"),
        (["train", "sine", "--sched", "gamma=0.5"], "--sched needs --scheduler"),
        (["train", "sine", "--epochs", "zero"], "invalid int value"),
        (["train", "resnet"], "invalid choice"),
    ],
)
def test_bad_options_give_argparse_messages(args, message):
    out = losslab(*args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_missing_mnist_says_what_to_do(tmp_path):
    out = losslab("train", "lenet", "--data-dir", str(tmp_path))
    assert out.returncode == 1
    assert "no MNIST files" in out.stderr and "--dataset synthetic" in out.stderr
    assert "Traceback" not in out.stderr


def test_unwritable_output_gives_a_message(tmp_path):
    out = losslab("train", "linreg", "--epochs", "5", "--out", "/proc/nope/run.json")
    assert out.returncode == 1
    assert "cannot write" in out.stderr and "Traceback" not in out.stderr
