"""Experiment files (the user's own model): loading, the contract, and every kind of bad file;
checkpoints in the formats people have."""

import math
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from core.train.checkpoints import CheckpointError
from core.train.experiment import ExperimentError, load_experiment, to_device
from core.train.weights import load_weights

EXAMPLES = Path(__file__).resolve().parents[3] / "core" / "train" / "examples"

GOOD = """
import torch
from torch import nn

def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

def batches():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20, 4, generator=g)
    return [(x[:10], torch.arange(10) % 3), (x[10:], torch.arange(10) % 3)]
"""


def write(tmp_path, text, name="exp.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("name", ["resnet_bn.py", "mlp_regression.py", "tutorial_cnn.py"])
def test_the_examples_load_and_their_loss_is_the_mean_over_batches(name, one_thread):
    e = load_experiment(EXAMPLES / name)
    summary = e.check()
    m = e.build_model().eval()
    batches = e.batches()
    with torch.no_grad():
        by_hand = sum(float(e.loss(m, b)) for b in batches) / len(batches)
    assert math.isclose(summary.loss, by_hand, rel_tol=1e-6)
    assert summary.parameters == sum(p.numel() for p in m.parameters())
    assert summary.batches == len(batches) and summary.samples > 0
    assert len(e.train_batches()) >= 1


def test_default_loss_is_cross_entropy_of_inputs_and_targets(tmp_path):
    e = load_experiment(write(tmp_path, GOOD))
    m = e.build_model()
    x, y = e.batches()[0]
    assert torch.equal(e.loss(m, (x, y)), nn.functional.cross_entropy(m(x), y))
    assert not e.own_loss and not e.own_train_batches
    assert e.train_batches()[0][0].shape == (10, 4)  # the evaluation data by default


def test_the_file_imports_as_python_would_run_it(tmp_path):
    (tmp_path / "helper_mod.py").write_text("WIDTH = 5\n")
    path = write(
        tmp_path,
        GOOD.replace("import torch\n", "import torch\nfrom helper_mod import WIDTH\n")
        + "\nassert __name__ != '__main__'\n",
    )
    assert load_experiment(path).build_model()[0].in_features == 4


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("def model(:\n    pass\n", ["exp.py, line 1", "syntax error"]),
        ("def batches():\n    return []\n", ["defines no model()"]),
        ("def model():\n    return 1/0\n\ndef batches():\n    return [1]\n", None),
        (
            GOOD.replace("return [(x[:10]", "return [] or [(x[:10]").replace("or [(x", "and [(x"),
            None,
        ),
    ],
)
def test_bad_files_say_what_and_where(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ExperimentError) as info:
        load_experiment(path).check()
    msg = str(info.value)
    assert "exp.py" in msg
    for w in words or []:
        assert w in msg


def test_model_raising_names_the_users_line(tmp_path):
    path = write(
        tmp_path, "def model():\n    x = 1\n    return x / 0\n\ndef batches():\n    return [1]\n"
    )
    with pytest.raises(ExperimentError, match=r"exp.py, line 3, in model.*ZeroDivisionError"):
        load_experiment(path).build_model()


def test_empty_data_wrong_batches_and_bad_losses_are_refused(tmp_path):
    empty = write(tmp_path, GOOD.replace("return [(x[:10]", "return []\n    [(x[:10]"), "e.py")
    with pytest.raises(ExperimentError, match="batches\\(\\) gave no batches"):
        load_experiment(empty).check()
    dicts = write(
        tmp_path,
        GOOD.replace(
            "return [(x[:10], torch.arange(10) % 3), (x[10:], torch.arange(10) % 3)]",
            "return [{'x': x}]",
        ),
        "d.py",
    )
    with pytest.raises(ExperimentError, match="define loss\\(model, batch\\)"):
        load_experiment(dicts).check()
    vector = write(
        tmp_path, GOOD + "\ndef loss(model, batch):\n    return model(batch[0]).sum(1)\n", "v.py"
    )
    with pytest.raises(ExperimentError, match="shape \\(10,\\).*scalar"):
        load_experiment(vector).check()
    nan = write(
        tmp_path,
        GOOD + "\ndef loss(model, batch):\n    return model(batch[0]).sum() * float('nan')\n",
        "n.py",
    )
    with pytest.raises(ExperimentError, match="not finite"):
        load_experiment(nan).check()
    const = write(
        tmp_path, GOOD + "\ndef loss(model, batch):\n    return torch.tensor(1.0)\n", "c.py"
    )
    with pytest.raises(ExperimentError, match="does not depend on the model"):
        load_experiment(const).check()
    not_module = write(tmp_path, GOOD + "\ndef model():\n    return [1]\n", "m.py")
    with pytest.raises(ExperimentError, match="not a torch.nn.Module"):
        load_experiment(not_module).build_model()


def test_a_file_that_hangs_on_import_gets_a_message(tmp_path):
    path = write(tmp_path, "import time\ntime.sleep(30)\n" + GOOD)
    with pytest.raises(ExperimentError, match="took more than"):
        load_experiment(path, timeout=0.1)  # the file sleeps 30 s: any short limit shows it


def test_missing_and_non_python_files(tmp_path):
    with pytest.raises(ExperimentError, match="no experiment file"):
        load_experiment(tmp_path / "nope.py")
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(ExperimentError, match="not a Python file"):
        load_experiment(tmp_path / "data.json")


def test_reload_picks_up_an_edit(tmp_path, monkeypatch):
    """Also with bytecode caching on, and the edit saved within the same second at the same
    length: a cached copy was trusted by size and whole-second time, and Reload kept the old
    model."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = write(tmp_path, GOOD)
    e = load_experiment(path)
    stat = path.stat()
    path.write_text(GOOD.replace("nn.Linear(8, 3)", "nn.Linear(8, 7)"))  # the same length
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same time
    e.reload()
    assert e.build_model()[2].out_features == 7
    assert not (tmp_path / "__pycache__").exists()  # nothing written into the user's folder


def test_to_device_moves_nested_batches():
    b = {"x": torch.ones(2), "pair": (torch.zeros(1), [torch.ones(1)]), "n": 3}
    out = to_device(b, "cpu")
    assert out["n"] == 3 and isinstance(out["pair"], tuple) and torch.equal(out["x"], b["x"])


# --- checkpoints in other formats ------------------------------------------------------------


def _net():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "model", "model_state_dict", "lightning"])
def test_checkpoint_formats_load(tmp_path, wrap):
    src = _net()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(1.0)
    sd = src.state_dict()
    payload = {
        "plain": sd,
        "state_dict": {"state_dict": sd, "epoch": 3},
        "model": {"model": sd, "optimizer": {}},
        "model_state_dict": {"model_state_dict": sd},
        "lightning": {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 1},
    }[wrap]
    torch.save(payload, tmp_path / "w.pt")
    dst = _net()
    load_weights(dst, tmp_path / "w.pt")
    for k, v in dst.state_dict().items():
        assert torch.equal(v, sd[k]), k


def test_checkpoints_that_do_not_fit_name_keys_and_shapes(tmp_path):
    torch.save(nn.Sequential(nn.Linear(4, 9), nn.Linear(9, 2)).state_dict(), tmp_path / "a.pt")
    with pytest.raises(CheckpointError) as info:
        load_weights(_net(), tmp_path / "a.pt")
    msg = str(info.value)
    assert "missing" in msg and "1.running_mean" in msg
    assert "shape" in msg and "0.weight: checkpoint (9, 4), model (8, 4)" in msg
    torch.save({"optimizer": {"lr": 1}}, tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="no model weights"):
        load_weights(_net(), tmp_path / "b.pt")
    (tmp_path / "c.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="never runs code"):
        load_weights(_net(), tmp_path / "c.pt")


def test_pickled_code_is_never_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"state_dict": _net().state_dict(), "x": Evil()}, tmp_path / "e.pt")
    with pytest.raises(CheckpointError, match="never runs code"):
        load_weights(_net(), tmp_path / "e.pt")
