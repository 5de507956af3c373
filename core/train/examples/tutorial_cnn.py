"""The CNN of PyTorch's "Training a classifier" tutorial (CIFAR-10 shaped: 3x32x32, 10 classes).

A LossLab experiment file: `losslab train --model tutorial_cnn.py`. The tutorial downloads
CIFAR-10; this file makes CIFAR-shaped synthetic images instead (offline): each class has its
own mean colour and a blob at its own place, plus noise. No `loss` is defined, so LossLab uses
cross_entropy(model(inputs), targets), as the tutorial does.
"""

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


def _images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    colours = torch.rand(10, 3, generator=torch.Generator().manual_seed(7)) * 2 - 1
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    cx, cy = 6 + 20 * (labels % 5).float() / 4, 8 + 16 * (labels // 5).float()
    blob = torch.exp(-((xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2) / 30)
    x = colours[labels][:, :, None, None] * (0.3 + blob[:, None])
    return x + 1.5 * torch.randn(n, 3, 32, 32, generator=g), labels


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def model() -> nn.Module:
    torch.manual_seed(0)
    return Net()


def batches():
    """Evaluation data: 500 images in batches of 100."""
    x, y = _images(500, seed=1)
    return [(x[i : i + 100], y[i : i + 100]) for i in range(0, 500, 100)]


def train_batches():
    """Training data: 2,000 images in batches of 32, reshuffled every epoch (the tutorial
    uses 4 a batch, which is slow on a CPU)."""
    x, y = _images(2000, seed=2)
    order = torch.randperm(len(x))
    return [(x[order[i : i + 32]], y[order[i : i + 32]]) for i in range(0, len(x), 32)]
