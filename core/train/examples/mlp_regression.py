"""An MLP regressor with its own loss on dict batches.

A LossLab experiment file: `losslab train --model mlp_regression.py`. The batches are dicts
({"x": ..., "y": ...}), so the file defines `loss(model, batch)`: LossLab uses it everywhere
(training, landscapes, curvature). The target is a smooth function of two inputs plus noise,
made here (offline).
"""

import torch
from torch import nn

# Optional: where LossLab's run settings start for this file (options override them).
defaults = {"optimizer": "adam", "lr": 0.01, "epochs": 5}


def _data(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g) * 4 - 2
    y = torch.sin(2 * x[:, :1]) + 0.5 * x[:, 1:] ** 2 + 0.1 * torch.randn(n, 1, generator=g)
    return {"x": x, "y": y}


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)
    )


def batches():
    """Evaluation data: 512 points in batches of 128."""
    d = _data(512, seed=1)
    return [{k: v[i : i + 128] for k, v in d.items()} for i in range(0, 512, 128)]


def train_batches():
    d = _data(2048, seed=2)
    order = torch.randperm(2048)
    return [{k: v[order[i : i + 64]] for k, v in d.items()} for i in range(0, 2048, 64)]


def loss(model: nn.Module, batch: dict) -> torch.Tensor:
    """Mean squared error of one batch (a scalar)."""
    return nn.functional.mse_loss(model(batch["x"]), batch["y"])
