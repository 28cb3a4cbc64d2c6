"""Attention blocks: shapes, parameter layout, and the same numbers as the course's modules."""
import torch
from torch import nn

from core.models import CBAM, SE, ChannelAttention, SpatialAttention
from core.models.attention import hidden_units


class CourseCBAM(nn.Module):
    """The course's straightforward CBAM (two MLP calls, 1x1 convs), as the reference."""

    def __init__(self, c: int, r: int = 16, k: int = 7) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Conv2d(c, c // r, 1, bias=False), nn.ReLU(), nn.Conv2d(c // r, c, 1, bias=False))
        self.conv = nn.Conv2d(2, 1, k, padding=k // 2, bias=False)

    def forward(self, x):
        ca = torch.sigmoid(self.fc(nn.functional.adaptive_avg_pool2d(x, 1)) + self.fc(nn.functional.adaptive_max_pool2d(x, 1)))
        x = x * ca
        sa = torch.cat([torch.mean(x, 1, keepdim=True), torch.max(x, 1, keepdim=True)[0]], 1)
        return x * torch.sigmoid(self.conv(sa))


def test_reduction_keeps_at_least_one_hidden_unit():
    assert hidden_units(8, 16) == 1
    block = CBAM(4, reduction=16)
    assert block.channel.mlp[0].out_features == 1
    assert block(torch.rand(2, 4, 5, 5)).shape == (2, 4, 5, 5)


def test_parameter_layout_matches_the_course():
    assert sum(p.numel() for p in CBAM(32).parameters()) == 2 * 32 * 2 + 98
    assert sum(p.numel() for p in SE(64).parameters()) == 2 * 64 * 4
    assert SE(64).pools == ("avg",) and ChannelAttention(64).pools == ("avg", "max")
    assert sum(p.numel() for p in SpatialAttention(7).parameters()) == 98


def test_cbam_computes_what_the_course_module_computes():
    torch.manual_seed(0)
    ours, course = CBAM(32, 16, 7), CourseCBAM(32, 16, 7)
    with torch.no_grad():
        ours.channel.mlp[0].weight.copy_(course.fc[0].weight.flatten(1))
        ours.channel.mlp[2].weight.copy_(course.fc[2].weight.flatten(1))
        ours.spatial.conv.weight.copy_(course.conv.weight)
    x = torch.randn(3, 32, 9, 9)
    torch.testing.assert_close(ours(x), course(x))
    # Channels-last input gives the same result.
    torch.testing.assert_close(ours(x.to(memory_format=torch.channels_last)), course(x))


def test_gradients_reach_every_parameter():
    block = CBAM(16, 4)
    block(torch.rand(2, 16, 6, 6, requires_grad=True)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
