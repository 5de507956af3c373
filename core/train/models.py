"""The models the training tasks use: the cubic polynomial, LeNet-5 and the tutorial's CNN."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Activation = Literal["relu", "tanh"]


def _act(name: Activation) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"Invalid activation: {name!r} (choose relu or tanh)")


class Cubic(nn.Module):
    """``y = a + b x + c x^2 + d x^3`` as the tutorial's ``Linear(3, 1)`` on ``[x, x^2, x^3]``.

    Input: ``(N, 3)`` powers of x; output ``(N,)`` (the ``Flatten(0, 1)`` of the tutorial).
    """

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1))

    def forward(self, powers: torch.Tensor) -> torch.Tensor:
        return self.net(powers)

    def coefficients(self) -> tuple[float, float, float, float]:
        lin = self.net[0]
        b, c, d = lin.weight.detach().flatten().tolist()
        return float(lin.bias.item()), b, c, d

    def set_coefficients(self, a: float, b: float, c: float, d: float) -> None:
        lin = self.net[0]
        with torch.no_grad():
            lin.bias.fill_(a)
            lin.weight.copy_(torch.tensor([[b, c, d]], dtype=lin.weight.dtype))


class Standardize(nn.Module):
    """``(x - mean) / std`` with fixed constants: part of the model, so it has no parameters
    and every consumer (training, evaluation, landscapes) sees the same inputs."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the 60,000 MNIST training images


class LeNet5(nn.Module):
    """LeNet-5 for 28x28 digits: conv 1->6 5x5 pad 2, pool, conv 6->16 5x5, pool, 120-84-10.

    Pixels in [0, 1] are standardised first with MNIST's mean and std.
    """

    def __init__(self, activation: Activation = "relu") -> None:
        super().__init__()
        self.features = nn.Sequential(
            Standardize(MNIST_MEAN, MNIST_STD),
            nn.Conv2d(1, 6, 5, padding=2),  # (N, 6, 28, 28)
            _act(activation),
            nn.MaxPool2d(2),  # (N, 6, 14, 14)
            nn.Conv2d(6, 16, 5),  # (N, 16, 10, 10)
            _act(activation),
            nn.MaxPool2d(2),  # (N, 16, 5, 5)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (N, 400)
            nn.Linear(16 * 5 * 5, 120),
            _act(activation),
            nn.Linear(120, 84),
            _act(activation),
            nn.Linear(84, 10),  # (N, 10) logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class TutorialCNN(nn.Module):
    """The tutorial's small CNN for 3x32x32 inputs: conv 3->32->32->64 (5x5) with max-pooling,
    then 1024 -> 64 -> 10."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 5, padding=2),  # (N, 32, 32, 32)
            nn.MaxPool2d(2),  # (N, 32, 16, 16)
            nn.Conv2d(32, 32, 5, padding=2),
            nn.MaxPool2d(2),  # (N, 32, 8, 8)
            nn.Conv2d(32, 64, 5, padding=2),
            nn.MaxPool2d(2),  # (N, 64, 4, 4)
            nn.Flatten(),  # (N, 1024)
            nn.Linear(1024, 64),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def summary(model: nn.Module) -> list[tuple[str, str, int]]:
    """``(name, layer type, parameter count)`` for every layer that has parameters."""
    rows = []
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if own:
            rows.append((name, type(module).__name__, own))
    return rows


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
