"""``losslab train``: in-process through the ``cli`` fixture (no torch import per call); one
child process proves that no display is needed and that the exit status reaches the shell."""

import json

import pytest
import torch

from core.train.runs import RunRecord

TINY_LENET = ("--dataset", "synthetic", "--limit", "256", "--batch-size", "32")


def test_train_sine_writes_a_run_record(cli, tmp_path):
    r = cli("train", "sine", "--epochs", "100", "--out", tmp_path / "run.json")
    assert r.returncode == 0, r.stderr
    assert "y = " in r.stdout and "Finished (completed) after 100 epochs" in r.stdout
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["format"] == "losslab-run-1"
    assert len(data["steps"]["loss"]) == 100
    assert data["config"]["optimizer"]["name"] == "rmsprop"
    assert data["finished"]["final"]["polynomial"].startswith("y = ")
    assert data["finished"]["status"] == "completed" and data["finished"]["divergence"] is None
    assert (tmp_path / "run.trajectory.npz").exists()
    assert RunRecord.load(tmp_path / "run.json").snapshots.shape[1] == 4


def test_train_numpy_form_and_overrides(cli):
    r = cli(
        "train", "sine", "--form", "numpy", "--optimizer", "sgd", "--lr", "1e-6",
        "--reduction", "sum", "--epochs", "50",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "(numpy form)" in r.stdout


def test_lenet_resume_prints_the_tutorial_lines_and_continues(cli, trained_run):
    done = torch.load(trained_run.checkpoint, weights_only=True)["epoch"]  # the best epoch
    r = cli("train", "lenet", *TINY_LENET, "--epochs", done + 1, "--log-every", "4",
            "--resume", trained_run.checkpoint)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"Train Epoch: {done + 1} [128/256 (50%)]\tLoss: " in r.stdout
    assert f"Epoch {done + 1}:" in r.stdout and f"Epoch {done}:" not in r.stdout
    assert "val accuracy" in r.stdout


def test_synthetic_data_is_named_from_the_first_line(cli, tmp_path):
    ckpt = tmp_path / "best.pt"
    r = cli("train", "lenet", *TINY_LENET, "--epochs", "1", "--checkpoint", ckpt)
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("LeNet-5 on synthetic digits (not MNIST):"), first
    assert "LeNet-5 on MNIST" not in r.stdout and "NOT MNIST" in r.stdout
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1


def test_one_epoch_is_singular(cli):
    r = cli("train", "linreg", "--epochs", "1")
    assert r.returncode == 0, r.stderr
    assert "Finished (completed) after 1 epoch, 1 step," in r.stdout


def test_resume_trains_with_the_new_learning_rate(cli, tmp_path):
    ckpt, out = tmp_path / "c.pt", tmp_path / "b.json"
    assert cli("train", "linreg", "--epochs", "5", "--checkpoint", ckpt).returncode == 0
    r = cli("train", "linreg", "--resume", ckpt, "--epochs", "8", "--lr", "0.05", "--out", out)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["config"]["optimizer"]["hyper"]["lr"] == 0.05
    assert data["steps"]["lr"] == [0.05, 0.05, 0.05]  # steps 6..8 ran at it (were 0.01)
    assert data["started"]["hyper"]["lr"] == 0.05 and data["started"]["start_epoch"] == 6


def test_a_diverging_run_says_so_and_exits_3(cli, tmp_path):
    out = tmp_path / "run.json"
    r = cli("train", "lenet", *TINY_LENET, "--optimizer", "sgd", "--lr", "50", "--out", out)
    assert r.returncode == 3, r.stderr
    assert "Finished (diverged)" in r.stdout
    assert "Diverged in epoch 1: loss " in r.stderr and "Try: lower the learning rate" in r.stderr
    d = RunRecord.load(out).divergence
    assert d is not None and d.epoch == 1 and f"at step {d.step}" in d.reason
    assert "3 the training diverged" in " ".join(cli("train", "--help").stdout.split())


@pytest.mark.parametrize("option", ["--out", "--checkpoint"])
def test_an_output_in_a_missing_folder_is_refused_before_training(cli, tmp_path, option):
    target = tmp_path / "missing" / "run.json"
    r = cli("train", "lenet", *TINY_LENET, "--epochs", "30", option, target)
    assert r.returncode == 2
    assert f"{option}: cannot write" in r.stderr and str(target) in r.stderr
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert "Finished" not in r.stdout and "Epoch" not in r.stdout  # nothing trained


def test_an_output_that_is_a_folder_or_unwritable_is_refused(cli, tmp_path):
    r = cli("train", "linreg", "--out", tmp_path)
    assert r.returncode == 2 and "is a folder, not a file" in r.stderr
    r = cli("train", "linreg", "--out", "/proc/nope.json")
    assert r.returncode == 2 and "--out: cannot write the run record to /proc/nope.json" in r.stderr


def test_a_record_that_cannot_be_written_at_the_end_is_saved_elsewhere(cli, tmp_path, monkeypatch):
    import os

    wanted = tmp_path / "run.json"
    real_save = RunRecord.save

    def failing_save(self, path):
        if os.fspath(path) == os.fspath(wanted):
            raise OSError(28, "No space left on device")
        return real_save(self, path)

    monkeypatch.setattr(RunRecord, "save", failing_save)
    r = cli("train", "linreg", "--epochs", "7", "--out", wanted)
    assert r.returncode == 1
    assert f"cannot write {wanted}: No space left on device" in r.stderr
    where = r.stderr.split("saved to ")[1].split(" instead")[0]
    assert where.startswith(os.environ["LOSSLAB_RUNS_DIR"])  # the runs folder first
    assert len(RunRecord.load(where).steps["loss"]) == 7


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
        (["train", "sine", "--form", "numpy"], "choose the SGD optimizer"),
        (["train", "linreg", "--optimizer", "sgd", "--hyper", "nesterov=true"], "Nesterov"),
    ],
)
def test_bad_options_give_argparse_messages(cli, args, message):
    r = cli(*args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_missing_mnist_says_what_to_do(cli, tmp_path):
    r = cli("train", "lenet", "--data-dir", tmp_path)
    assert r.returncode == 1
    assert "no MNIST files" in r.stderr and "--dataset synthetic" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_real_process_needs_no_display_and_exits_3_on_divergence(losslab):
    out = losslab("train", "linreg", "--lr", "5", "--epochs", "100")
    assert out.returncode == 3, out.stderr
    assert "Diverged in epoch" in out.stderr and "Traceback" not in out.stderr


def test_an_interrupted_run_keeps_what_it_trained(cli, tmp_path, monkeypatch):
    import app.cli as cli_mod

    real_train = cli_mod.train

    def interrupted(config):
        for event in real_train(config):
            yield event
            if getattr(event, "step", 0) == 4:
                raise KeyboardInterrupt  # Ctrl-C after the fourth step

    monkeypatch.setattr(cli_mod, "train", interrupted)
    out = tmp_path / "run.json"
    r = cli("train", "linreg", "--epochs", "50", "--out", out)
    assert r.returncode == 130 and "interrupted" in r.stderr
    rec = RunRecord.load(out)
    assert rec.steps["step"] == [1, 2, 3, 4] and rec.finished["status"] == "stopped"
