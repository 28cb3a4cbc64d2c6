"""torchvision backbones for transfer learning, the course's ResNet18+CBAM, and their weights.

Pretrained weights come through torchvision's weights API. They are loaded from the torch
hub cache when present; otherwise one download is tried with a short timeout, so an offline
laptop gets a plain message (and the path where a weights file can be put) instead of a hang.
A local weights file (a state dict) can always be given instead.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import torch
from torch import nn

from core.atomic import replacing
from core.errors import UserError
from core.models.attention import SE, SpatialAttention

def _tvm():
    """torchvision's models, imported when first needed: it takes about 1.5 s, which a run of a
    preset (and every command-line start) need not pay."""
    from torchvision import models

    return models


BACKBONES = ("resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "efficientnet_b0", "vgg11_bn", "densenet121")
DOWNLOAD_TIMEOUT_S = 10.0


def _last_linear(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """The parent module, attribute name and module of the classifier's final Linear."""
    name = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return parent, attr, getattr(parent, attr)


def head_module_name(model: nn.Module) -> str:
    """Name of the module that maps features to classes: `fc` (ResNets) or `classifier`."""
    return "fc" if isinstance(getattr(model, "fc", None), nn.Module) else "classifier"


class ResNet18CBAM(nn.Module):
    """The course's ResNet18 + attention: after each of the four stages, SE-style channel
    attention (r=16) then spatial attention (k=7); global average pooling; an MLP head.

    Attribute names follow torchvision's ResNet (conv1 ... layer4), so a resnet18 state dict
    (pretrained or local) loads into the backbone directly.
    """

    def __init__(self, num_classes: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        base = _tvm().resnet18(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = base.conv1, base.bn1, base.relu, base.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = base.layer1, base.layer2, base.layer3, base.layer4
        self.att1, self.att2, self.att3, self.att4 = (
            nn.Sequential(SE(c, reduction), SpatialAttention(kernel_size)) for c in (64, 128, 256, 512)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(512, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.att1(self.layer1(x))
        x = self.att2(self.layer2(x))
        x = self.att3(self.layer3(x))
        x = self.att4(self.layer4(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_backbone(name: str, num_classes: int) -> nn.Module:
    """A torchvision classifier by its own name, its final Linear replaced for `num_classes`."""
    if name not in BACKBONES:
        raise UserError("models.unknown_backbone", name=name, choices=", ".join(BACKBONES))
    model = _tvm().get_model(name, weights=None)
    parent, attr, linear = _last_linear(model)
    setattr(parent, attr, nn.Linear(linear.in_features, num_classes))
    return model


# --- weights -------------------------------------------------------------------------------

def weights_cache_path(name: str) -> Path:
    """Where torchvision keeps the default ImageNet weights of backbone `name`."""
    url = _tvm().get_model_weights(name).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def pretrained_available(name: str) -> bool:
    """True when the ImageNet weights are already on this machine (no network needed)."""
    return weights_cache_path(name).is_file()


def _download(url: str, dest: Path, timeout: float) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - torchvision's own URL
        with replacing(dest, "wb") as f:
            while chunk := response.read(1 << 20):
                f.write(chunk)


def pretrained_state_dict(name: str, timeout: float = DOWNLOAD_TIMEOUT_S) -> dict[str, torch.Tensor]:
    """The ImageNet weights of `name`: from the cache, else one download with a timeout."""
    path = weights_cache_path(name)
    if not path.is_file():
        try:
            _download(_tvm().get_model_weights(name).DEFAULT.url, path, timeout)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            raise UserError("models.pretrained_unavailable", name=name, path=str(path), reason=str(err)) from err
    return read_weights_file(path)


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a .pth/.pt file (plain, or under 'model'/'state_dict'), loaded safely."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError("models.weights_missing", path=str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or non-torch file: tell the user, don't crash
        raise UserError("models.weights_unreadable", path=str(path), reason=str(err)) from err
    for key in ("model", "state_dict", "model_state"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError("models.weights_unreadable", path=str(path), reason="not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_backbone_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> int:
    """Copy matching tensors into `model`; the head may differ (other class count) and is skipped.

    Anything else missing or mis-shaped means the file is for another network: a UserError.
    Returns how many tensors were loaded.
    """
    own = model.state_dict()
    head = head_module_name(model) + "."
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in usable and not k.startswith(head)
               and not k.startswith(("att1.", "att2.", "att3.", "att4."))]
    if missing or not usable:
        raise UserError("models.weights_mismatch", source=source, example=(missing or list(own))[0])
    model.load_state_dict(usable, strict=False)
    return len(usable)
