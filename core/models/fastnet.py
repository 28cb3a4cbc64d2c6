"""`fast_cnn`: a small network built to reach a good accuracy in few epochs on a CPU.

Its shape follows what fast CIFAR-10 training records found to work (Keller Jordan's airbench,
David Page's ResNet-9): a first 2x2 convolution whose fixed weights whiten the image patches
(computed from the training images before the first step: `init_from_data`), three groups of
conv - max-pool - BatchNorm - GELU - conv - BatchNorm - GELU, a global max pool and a linear
head scaled down by 1/9. The BatchNorm layers learn a bias only (their scale stays 1), which
lets them take a much higher learning rate (`TrainConfig.bias_lr_factor`); convolutions start
as identity maps on the channels they share with their input.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WIDTHS = (32, 128, 128)
WHITEN_KERNEL = 2
WHITEN_EPS = 5e-4
MAX_PATCHES = 2_000_000  # enough for a stable 12x12 covariance; bounds memory at large image sizes


class BiasNorm(nn.BatchNorm2d):
    """BatchNorm with a learnt bias and no learnt scale."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=1e-12, momentum=0.4)
        self.weight = None


class IdentityConv(nn.Conv2d):
    """3x3 'same' convolution without bias, starting as the identity on the shared channels."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(in_ch, out_ch, 3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        w = self.weight.data
        nn.init.dirac_(w[:min(w.size(0), w.size(1))])


class ConvGroup(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1, self.pool, self.norm1 = IdentityConv(in_ch, out_ch), nn.MaxPool2d(2), BiasNorm(out_ch)
        self.conv2, self.norm2 = IdentityConv(out_ch, out_ch), BiasNorm(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(self.pool(self.conv1(x))))
        return F.gelu(self.norm2(self.conv2(x)))


class Whiten(nn.Module):
    """A 2x2 convolution with fixed weights (a buffer: no optimizer or freeze policy moves them)
    and a learnt bias. The weights are the patch covariance's eigenvectors scaled to unit
    variance, each twice (+ and -) so the GELU after it keeps both signs."""

    def __init__(self, in_ch: int = 3) -> None:
        super().__init__()
        width = 2 * in_ch * WHITEN_KERNEL**2
        self.register_buffer("weight", torch.zeros(width, in_ch, WHITEN_KERNEL, WHITEN_KERNEL))
        self.bias = nn.Parameter(torch.zeros(width))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # used only until init_from_data

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias)

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> None:
        """Whitening weights from normalised images [N,3,H,W]."""
        c, k = images.shape[1], WHITEN_KERNEL
        per_image = max(1, (images.shape[2] - k + 1) * (images.shape[3] - k + 1))
        images = images[:max(1, MAX_PATCHES // per_image)].float()
        patches = images.unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)
        eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
        filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + WHITEN_EPS)[:, None]).flip(0)
        filters = filters.reshape(-1, c, k, k)
        self.weight.copy_(torch.cat((filters, -filters)))


class FastNet(nn.Module):
    def __init__(self, num_classes: int, widths: tuple[int, int, int] = WIDTHS) -> None:
        super().__init__()
        stem = Whiten()
        first = stem.bias.numel()
        self.features = nn.Sequential(stem, nn.GELU(), ConvGroup(first, widths[0]), ConvGroup(widths[0], widths[1]),
                                      ConvGroup(widths[1], widths[2]))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.classifier = nn.Linear(widths[2], num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1)) / 9

    def init_from_data(self, images: torch.Tensor) -> None:
        """Set the whitening layer from normalised training images (before the first step)."""
        self.features[0].fit(images)
