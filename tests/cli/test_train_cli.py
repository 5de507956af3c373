"""``losslab train``: in-process through the ``cli`` fixture (no torch import per call);
test_no_display.py runs it in a fresh interpreter, where it must load no Qt at all."""

import hashlib
import json
import textwrap
from pathlib import Path

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
    assert "Resumed at epoch 6 with lr 0.05" in r.stdout  # what it trains with, said


def test_resume_under_an_optimizer_that_cannot_take_the_state_is_refused_clearly(cli, tmp_path):
    """SGD + momentum's buffers are no state for Adam: core's first step failed with a bare
    "'step'"; said before training, with the option to give (Adam's own state goes on)."""
    ckpt = tmp_path / "m.pt"
    assert cli("train", "linreg", "--optimizer", "momentum", "--epochs", "2",
               "--checkpoint", ckpt).returncode == 0  # fmt: skip
    r = cli("train", "linreg", "--resume", ckpt, "--epochs", "3", "--optimizer", "adam")
    assert r.returncode == 2 and r.stderr.count("cannot take over") == 1
    assert "--optimizer momentum" in r.stderr and "'step'" not in r.stderr
    r = cli("train", "linreg", "--resume", ckpt, "--epochs", "3", "--optimizer", "nesterov")
    assert r.returncode == 0, r.stderr  # the same buffers: it goes on


def test_a_diverging_run_says_so_and_exits_3(cli, tmp_path):
    out = tmp_path / "run.json"
    r = cli("train", "lenet", *TINY_LENET, "--optimizer", "sgd", "--lr", "50", "--out", out)
    assert r.returncode == 3, r.stderr
    assert "Diverged at step" in r.stdout and "Finished" not in r.stdout
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


def test_an_interrupted_run_keeps_what_it_trained(cli, tmp_path, monkeypatch):
    import app.cli as cli_mod

    real_train = cli_mod.train

    def interrupted(config, **kwargs):
        for event in real_train(config, **kwargs):
            yield event
            if getattr(event, "step", 0) == 4:
                raise KeyboardInterrupt  # Ctrl-C after the fourth step

    monkeypatch.setattr(cli_mod, "train", interrupted)
    out = tmp_path / "run.json"
    r = cli("train", "linreg", "--epochs", "50", "--out", out)
    assert r.returncode == 130 and "interrupted" in r.stderr
    rec = RunRecord.load(out)
    assert rec.steps["step"] == [1, 2, 3, 4] and rec.finished["status"] == "stopped"


# --- your own model: losslab train --model FILE ------------------------------------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "core" / "train" / "examples"
TINY_FILE = """
import torch
from torch import nn

def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

def batches():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(24, 4, generator=g)
    return [(x[:12], torch.arange(12) % 3), (x[12:], torch.arange(12) % 3)]
"""


@pytest.fixture
def one_thread():
    """The examples' convolutions on a loaded 2-core box: one thread is the fastest
    (measured: the BN-ResNet example's epoch took 7.3 s with 2 threads, 1.5 s with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("name", "model"),
    [("resnet_bn", "ResNetBN"), ("mlp_regression", "Sequential"), ("tutorial_cnn", "Net")],
)
def test_each_example_trains_an_epoch_and_records_its_file(cli, tmp_path, one_thread, name, model):
    path = EXAMPLES / f"{name}.py"
    out, ckpt = tmp_path / "run.json", tmp_path / "best.pt"
    r = cli("train", "--model", path, "--epochs", "1", "--out", out, "--checkpoint", ckpt)
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith(f"{model} from {name}.py: ") and first.endswith(" parameters on cpu")
    assert "Finished (completed) after 1 epoch" in r.stdout
    data = json.loads(out.read_text())
    assert data["name"] == name and data["config"]["task"] == "experiment"
    assert data["config"]["model_file"] == str(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert data["started"]["model_digest"] == digest
    assert ("val accuracy" in r.stdout) == (name != "mlp_regression")  # its own loss: none
    payload = torch.load(ckpt, weights_only=True)
    assert payload["model_file"] == str(path) and payload["model_digest"] == digest
    rec = RunRecord.load(out)
    assert rec.snapshots.shape[1] == data["started"]["n_params"]  # the trajectory, as LeNet's


def test_model_file_takes_the_optimizer_scheduler_clip_and_seed_options(cli, tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(TINY_FILE)
    out = tmp_path / "run.json"
    r = cli("train", "--model", path, "--optimizer", "momentum", "--lr", "0.05",
            "--momentum", "0.8", "--scheduler", "step", "--sched", "step_size=1",
            "--scheduler-interval", "step", "--clip-norm", "1", "--epochs", "2",
            "--seed", "4", "--device", "auto", "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr
    c = json.loads(out.read_text())["config"]
    assert c["optimizer"] == {"name": "momentum", "hyper": {"lr": 0.05, "momentum": 0.8}}
    assert c["scheduler"]["name"] == "step" and c["scheduler_interval"] == "step"
    assert c["clip_norm"] == 1 and c["epochs"] == 2 and c["seed"] == 4
    lrs = json.loads(out.read_text())["steps"]["lr"]
    assert lrs == pytest.approx([0.05, 0.005, 0.0005, 0.00005])


def test_the_files_defaults_are_used_and_options_override_them(cli, tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(TINY_FILE + '\ndefaults = {"optimizer": "sgd", "lr": 0.2, "epochs": 2}\n')
    out = tmp_path / "run.json"
    assert cli("train", "--model", path, "--out", out).returncode == 0
    c = json.loads(out.read_text())["config"]
    assert c["optimizer"] == {"name": "sgd", "hyper": {"lr": 0.2}} and c["epochs"] == 2
    assert (
        cli("train", "--model", path, "--epochs", "1", "--lr", "0.1", "--out", out).returncode == 0
    )
    c = json.loads(out.read_text())["config"]
    assert c["optimizer"] == {"name": "sgd", "hyper": {"lr": 0.1}} and c["epochs"] == 1
    # another optimizer: the file's lr went with its own optimizer; LossLab's default lr
    assert cli("train", "--model", path, "--optimizer", "adam", "--out", out).returncode == 0
    assert json.loads(out.read_text())["config"]["optimizer"] == {"name": "adam", "hyper": {}}
    path.write_text(TINY_FILE + '\ndefaults = {"optimiser": "sgd"}\n')
    r = cli("train", "--model", path, "--out", out)
    assert r.returncode == 2 and "Unknown hyperparameter 'optimiser'" in r.stderr


BAD_FILES = [
    ("def model(:\n    pass\n", "bad.py, line 1: syntax error"),
    ("def batches():\n    return []\n", "bad.py defines no model()"),
    (TINY_FILE.replace("torch.manual_seed(0)", "raise RuntimeError('no GPU here')"),
     "bad.py: model() failed (bad.py, line 6, in model): RuntimeError: no GPU here"),
    (TINY_FILE.replace("return [(x[:12]", "return [] and [(x[:12]"), "batches() gave no batches"),
    (TINY_FILE + "\ndef loss(model, batch):\n    return model(batch[0])\n",
     "returned a tensor of shape (12, 3); it must be a scalar"),
    (TINY_FILE + "\ndef loss(model, batch):\n    return model(batch[0]).sum() * float('nan')\n",
     "the loss at the initial weights is nan"),
    (TINY_FILE + "\ndef train_batches():\n    return [1, 2]\n",
     "a batch is a int, not (inputs, targets)"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_a_bad_model_file_is_one_message_exit_2_and_nothing_written(cli, tmp_path, text, message):
    path = tmp_path / "bad.py"
    path.write_text(text)
    out, ckpt = tmp_path / "run.json", tmp_path / "best.pt"
    r = cli("train", "--model", path, "--out", out, "--checkpoint", ckpt)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and r.stderr.startswith("losslab train: error: ")
    assert "Traceback" not in r.stderr and "usage:" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.py"]


def test_a_missing_model_file(cli, tmp_path):
    r = cli("train", "--model", tmp_path / "nowhere.py", "--out", tmp_path / "run.json")
    assert r.returncode == 2 and "no experiment file at" in r.stderr and "nowhere.py" in r.stderr
    assert not (tmp_path / "run.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lenet", "--model", "x.py"), "either a TASK (lenet) or --model FILE, not both"),
        ((), "choose what to train: a TASK, or --model FILE"),
        (("--model", "x.py", "--batch-size", "8"), "--batch-size: not with --model"),
        (("--model", "x.py", "--loss", "mse", "--dataset", "synthetic"),
         "--loss, --dataset: not with --model"),
    ],
)  # fmt: skip
def test_model_option_conflicts_are_usage_errors(cli, args, message):
    r = cli("train", *args)
    assert r.returncode == 2 and message in r.stderr and "usage:" in r.stderr


def test_a_file_failing_mid_run_keeps_what_was_trained(cli, tmp_path):
    path = tmp_path / "late.py"
    path.write_text(TINY_FILE + textwrap.dedent("""
        calls = []
        def train_batches():
            calls.append(1)
            if len(calls) == 2:
                raise OSError("the data server went away")
            return batches()
    """))  # fmt: skip
    out = tmp_path / "run.json"
    r = cli("train", "--model", path, "--epochs", "3", "--out", out)
    assert r.returncode == 1 and "the data server went away" in r.stderr
    assert "late.py, line" in r.stderr and "Traceback" not in r.stderr
    rec = RunRecord.load(out)
    assert [e["epoch"] for e in rec.epochs] == [1] and rec.finished["status"] == "failed"


def test_help_says_the_file_is_run_as_python_would(cli):
    r = cli("train", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "--model FILE" in text and "runs it as `python FILE` would" in text
    assert "Defaults: optimizer Adam lr 0.001, 5 epochs" in text


def test_a_file_that_hangs_on_import_is_a_message(cli, tmp_path, monkeypatch):
    import core.train.experiment as experiment

    monkeypatch.setattr(experiment, "IMPORT_TIMEOUT", 0.2)
    path = tmp_path / "slow.py"
    path.write_text("import time\ntime.sleep(3)\n" + TINY_FILE)  # the import thread is left
    r = cli("train", "--model", path, "--out", tmp_path / "run.json")
    assert r.returncode == 2 and "slow.py: importing it took more than 0.2 s" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow.py"]


def test_an_error_in_the_models_forward_mid_run_names_the_line(cli, tmp_path):
    path = tmp_path / "fwd.py"
    path.write_text(TINY_FILE.replace("return nn.Sequential(", "return Net(") + textwrap.dedent("""
        class Net(nn.Sequential):
            calls = 0

            def forward(self, x):
                if self.training:
                    Net.calls += 1
                    if Net.calls == 3:
                        raise RuntimeError("out of memory")
                return super().forward(x)
    """))  # fmt: skip
    r = cli("train", "--model", path, "--epochs", "2", "--out", tmp_path / "run.json")
    assert r.returncode == 1, r.stderr
    assert "fwd.py: loss(model, batch) failed (fwd.py, line 21, in forward)" in r.stderr
    assert "RuntimeError: out of memory" in r.stderr and "Traceback" not in r.stderr


def test_the_model_file_is_imported_once(cli, tmp_path):
    """The file's top level runs once per command, as `python file.py` would run it (its
    defaults and its training used to import it twice: a print or a download there ran
    twice)."""
    counter = tmp_path / "imports.txt"
    path = tmp_path / "counted.py"
    path.write_text(
        f"with open({str(counter)!r}, 'a') as f:\n    f.write('imported\\n')\n" + TINY_FILE
    )
    r = cli("train", "--model", path, "--epochs", "1", "--out", tmp_path / "run.json")
    assert r.returncode == 0, r.stderr
    assert counter.read_text().splitlines() == ["imported"]
