"""The real training problems: each gives a model, data, a default loss and optimizer, and the
metrics that make sense for it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from core.optimizers import OptimizerSpec
from core.train import data as data_mod
from core.train.losses import Family, LossSpec
from core.train.models import Cubic, LeNet5, TutorialCNN
from core.train.sine import polynomial_text, powers, sine_data


@dataclass(frozen=True)
class TaskInfo:
    key: str
    label: str
    family: Family
    loss: LossSpec  # the tutorial's choice
    optimizer: OptimizerSpec  # the tutorial's choice
    epochs: int
    batch_size: int  # 0 = the whole training set in one batch
    caption: str


TASKS: dict[str, TaskInfo] = {
    t.key: t
    for t in (
        TaskInfo(
            "sine",
            "Sine fit (cubic polynomial)",
            "regression",
            LossSpec("mse", "sum"),
            OptimizerSpec("rmsprop", {"lr": 1e-3}),
            2000,
            0,
            "y = a + b x + c x^2 + d x^3 fitted to sin(x) on [-pi, pi], 2,000 points",
        ),
        TaskInfo(
            "linreg",
            "Linear regression",
            "regression",
            LossSpec("mse"),
            OptimizerSpec("sgd", {"lr": 0.01}),
            1000,
            0,
            "x = [1, 2, 3], y = [2, 4, 6]: Linear(1, 1) should find w = 2, b = 0",
        ),
        TaskInfo(
            "linreg_noisy",
            "Linear regression (noisy)",
            "regression",
            LossSpec("mse"),
            OptimizerSpec("sgd", {"lr": 0.01}),
            200,
            16,
            "200 points of y = 2x + 1 + noise (std 0.5), x in [0, 5]",
        ),
        TaskInfo(
            "lenet",
            "LeNet-5 on MNIST",
            "classification",
            LossSpec("cross_entropy"),
            OptimizerSpec("momentum", {"lr": 0.01, "momentum": 0.9}),
            3,
            32,
            "the classic convolutional network on 28x28 handwritten digits",
        ),
        TaskInfo(
            "cnn",
            "Tutorial CNN (random 3x32x32 inputs)",
            "regression",
            LossSpec("mse"),
            OptimizerSpec("rmsprop", {"lr": 1e-4}),
            100,
            0,
            "the tutorial's CNN fitting a fixed target vector from random images: "
            "watch the loss fall",
        ),
    )
}


# The user's own model: TrainConfig(task=EXPERIMENT, model_file="path.py"). Not in TASKS (it
# needs a file, and its model, data and loss come from that file): its defaults live here.
# Adam at 1e-3 is the default that trains most networks without tuning; SGD would need a
# learning rate chosen for the model.
EXPERIMENT = "experiment"
EXPERIMENT_INFO = TaskInfo(
    EXPERIMENT,
    "Your own model (Python file)",
    "classification",  # nominal: the file's loss(model, batch) decides (cross-entropy if none)
    LossSpec("cross_entropy"),  # nominal as well; a run's config keeps loss=None
    OptimizerSpec("adam", {"lr": 1e-3}),
    5,
    0,  # nominal: the file's batches are used as they come
    "model(), batches() and optionally loss(model, batch) and train_batches() from your own "
    "Python file",
)


def get_task(key: str) -> TaskInfo:
    if key == EXPERIMENT:
        return EXPERIMENT_INFO
    try:
        return TASKS[key]
    except KeyError:
        raise ValueError(f"Unknown task {key!r}; choose one of: {', '.join(TASKS)}") from None


def default_hyper(task: str, optimizer: str) -> dict[str, Any]:
    """The hyperparameters a run starts from: the task's tutorial settings when ``optimizer``
    is the task's own optimizer, else none (the optimizer's own defaults apply). The one place
    this rule lives: the Train controls and the command line both ask here."""
    info = get_task(task)
    return dict(info.optimizer.hyper) if optimizer == info.optimizer.name else {}


def build_model(key: str, activation: str = "relu") -> nn.Module:
    """The task's model, freshly initialised from torch's global generator."""
    get_task(key)
    if key == EXPERIMENT:
        raise ValueError("the experiment's model comes from its file: use core.train.experiment")
    if key == "sine":
        return Cubic()
    if key in ("linreg", "linreg_noisy"):
        return nn.Linear(1, 1)
    if key == "lenet":
        return LeNet5(activation)  # type: ignore[arg-type]
    if key == "cnn":
        return TutorialCNN()
    raise ValueError(f"Unknown task {key!r}")


_SEED_LOCK = threading.Lock()
T = TypeVar("T")


def seeded_model(key: str, seed: int, activation: str = "relu") -> nn.Module:
    """The task's model initialised from ``seed``.

    Layers initialise from torch's global generator, which every thread shares: without the
    lock, runs started together (the sine fit's three forms) drew each other's numbers.
    """
    return seeded(seed, lambda: build_model(key, activation))


def seeded(seed: int, build: Callable[[], T]) -> T:
    """``build()`` right after ``torch.manual_seed(seed)``, with no other run seeding between
    (see :func:`seeded_model`)."""
    with _SEED_LOCK:
        torch.manual_seed(seed)
        return build()


@dataclass
class TaskSetup:
    """Everything the training loop needs for one run."""

    info: TaskInfo
    model: nn.Module
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    dataset: str  # name ("MNIST", "synthetic digits (not MNIST)", "sin(x)")
    source: str  # one line: where the data came from, how it is split
    describe: Callable[[nn.Module], dict[str, Any]]  # task-specific live figures per epoch
    classes: int = 0  # > 0 for classification: accuracy and confusion matrices apply
    label: str = ""  # what this run trains, when the data changes it ("LeNet-5 on synthetic...")


def build_task(
    key: str,
    *,
    seed: int = 0,
    dataset: str = "auto",
    data_dir: str | None = None,
    limit: int | None = None,
    activation: str = "relu",
    dtype: torch.dtype = torch.float32,
) -> TaskSetup:
    """Model and data for task ``key``, the model initialised from ``seed``."""
    info = get_task(key)
    if key == EXPERIMENT:
        raise ValueError("an experiment is built from its file: use core.train.experiment")
    if key == "sine":
        x, y = sine_data(dtype)
        feats = powers(x)  # (2000, 3)
        model = seeded_model(key, seed).to(dtype)
        return TaskSetup(
            info,
            model,
            feats,
            y,
            feats,
            y,
            "sin(x)",
            "2,000 points of sin(x) on [-pi, pi] (the fit is judged on them too)",
            _describe_cubic,
        )
    if key in ("linreg", "linreg_noisy"):
        if key == "linreg":
            x = torch.tensor([[1.0], [2.0], [3.0]], dtype=dtype)
            y = 2 * x
            vx, vy, source = x, y, "the tutorial's three points (judged on them too)"
        else:
            g = torch.Generator().manual_seed(seed + 1)
            x = torch.rand(250, 1, generator=g, dtype=dtype) * 5
            y = 2 * x + 1 + 0.5 * torch.randn(250, 1, generator=g, dtype=dtype)
            x, vx, y, vy = x[:200], x[200:], y[:200], y[200:]
            source = "200 noisy points of y = 2x + 1, validated on 50 more"
        model = seeded_model(key, seed).to(dtype)
        return TaskSetup(info, model, x, y, vx, vy, "points", source, _describe_line)
    if key == "lenet":
        if dataset == "synthetic":
            # a limit draws only the digits it keeps (they are the full set's first ones), a
            # quarter of it for validation, as MNIST's limit
            n = (min(limit, 4000), min(max(1, limit // 4), 1000)) if limit else (4000, 1000)
            ds = data_mod.synthetic_digits(*n, seed=seed)
        elif dataset in ("auto", "mnist"):
            ds = data_mod.load_mnist(data_dir, limit=limit)
        else:
            raise ValueError(f"Invalid dataset: {dataset!r} (choose auto, mnist or synthetic)")
        model = seeded_model(key, seed, activation)
        return TaskSetup(
            info,
            model,
            ds.train_x,
            ds.train_y,
            ds.val_x,
            ds.val_y,
            ds.name,
            ds.source,
            lambda m: {},
            classes=10,
            label=f"LeNet-5 on {ds.name}",
        )
    if key == "cnn":
        g = torch.Generator().manual_seed(seed + 1)
        x = torch.randn(64, 3, 32, 32, generator=g)
        target = torch.linspace(-1, 1, 10).expand(64, 10).clone()  # a fixed target vector
        model = seeded_model(key, seed)
        return TaskSetup(
            info,
            model,
            x,
            target,
            x,
            target,
            "random images",
            "64 random 3x32x32 images and one fixed target vector (the tutorial's "
            "demo of a falling loss, not a real data set)",
            lambda m: {},
        )
    raise ValueError(f"Unknown task {key!r}")  # unreachable: get_task checked it


def _describe_cubic(model: nn.Module) -> dict[str, Any]:
    a, b, c, d = model.coefficients()
    return {"coefficients": [a, b, c, d], "polynomial": polynomial_text(a, b, c, d)}


def _describe_line(model: nn.Module) -> dict[str, Any]:
    w = float(model.weight.detach().flatten()[0])
    b = float(model.bias.detach().flatten()[0])
    return {"w": w, "b": b, "line": f"y = {w:.4g} x {'-' if b < 0 else '+'} {abs(b):.4g}"}


__all__ = [
    "EXPERIMENT",
    "EXPERIMENT_INFO",
    "TASKS",
    "TaskInfo",
    "TaskSetup",
    "build_model",
    "build_task",
    "get_task",
    "seeded",
    "seeded_model",
]
