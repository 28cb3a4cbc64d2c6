"""Attention blocks from the course: SE and CBAM channel attention, spatial attention, CBAM.

Each block works on whole batched tensors (no Python loops over channels) and keeps the
course's parameter layout: bias-free MLPs and a bias-free k x k spatial conv, so the
presets reproduce the parameter counts the course prints.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def hidden_units(channels: int, reduction: int) -> int:
    """Width of the squeeze MLP; at least one unit, so r=16 still works on 8 channels."""
    return max(1, channels // max(1, reduction))


class ChannelAttention(nn.Module):
    """Re-weights channels from pooled descriptors through one shared MLP.

    `pools=("avg",)` is SE (squeeze-and-excitation); `("avg", "max")` is CBAM's form, where
    both descriptors go through the same MLP in one batched pass and are summed.
    """

    def __init__(self, channels: int, reduction: int = 16, pools: tuple[str, ...] = ("avg", "max")) -> None:
        super().__init__()
        if not pools or set(pools) - {"avg", "max"}:
            raise ValueError(f"pools must be a subset of ('avg', 'max'), got {pools}")
        self.pools = tuple(pools)
        hidden = hidden_units(channels, reduction)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        # adaptive_max_pool2d / max(dim) keep argmax indices, so their backward is a cheap
        # scatter; amax's backward would compare the whole map against the maximum.
        descriptors = [x.mean((2, 3)) if p == "avg" else F.adaptive_max_pool2d(x, 1).flatten(1) for p in self.pools]
        # One MLP call for all descriptors: [P*B, C] -> split back and sum.
        weights = self.mlp(torch.cat(descriptors)).view(len(descriptors), b, c).sum(0)
        return x * torch.sigmoid(weights).view(b, c, 1, 1)


class SpatialAttention(nn.Module):
    """Re-weights positions from the channel-wise mean and max maps through a k x k conv."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([x.mean(1, keepdim=True), x.max(1, keepdim=True)[0]], dim=1)
        return x * torch.sigmoid(self.conv(maps))


class SE(ChannelAttention):
    """Squeeze-and-excitation: channel attention from the average-pooled descriptor only."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__(channels, reduction, pools=("avg",))


class CBAM(nn.Module):
    """Convolutional Block Attention Module: channel attention, then spatial attention."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, pools: tuple[str, ...] = ("avg", "max")) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction, pools)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))
