"""The default service's digits model: a small CNN for scikit-learn's 8x8 digit images."""

from __future__ import annotations

import torch
from torch import nn


class DigitsCNN(nn.Module):
    """[batch, 1, 8, 8] pixels (0..16) -> (logits [batch, 10], predicted digit [batch])."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels * 2, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(channels * 2 * 4 * 4, 10)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.classifier(self.features(pixels / 16.0).flatten(1))
        return logits, logits.argmax(dim=1)
