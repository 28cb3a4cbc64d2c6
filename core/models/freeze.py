"""Freezing for transfer learning: train the head only, everything, or the head + last N stages.

A "stage" is a group of layers between two downsamplings (a ResNet layer with its attention,
a VGG block, a DenseNet block, a builder block), so "last N" means the same thing to a learner
whatever the backbone.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from types import MethodType

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from core.errors import UserError
from core.models.backbones import ResNet18CBAM, head_module_name

FREEZE_POLICIES = ("all", "head", "last")
FROZEN_BN_MODES = ("eval", "train")  # frozen BatchNorm: keep its statistics, or let them follow the data


def stages(model: nn.Module) -> list[list[nn.Module]]:
    """The model's body as an ordered list of stages (not counting the stem and the head)."""
    # torchvision's networks exist only once torchvision.models is imported: not imported here
    tvm = sys.modules.get("torchvision.models")
    if isinstance(model, ResNet18CBAM) or (tvm and isinstance(model, tvm.ResNet)):
        return [[getattr(model, f"layer{i}")] + ([getattr(model, f"att{i}")] if hasattr(model, f"att{i}") else [])
                for i in range(1, 5)]
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential):
        return []
    if tvm and isinstance(model, tvm.DenseNet):
        groups: list[list[nn.Module]] = []
        for name, child in features.named_children():
            if name.startswith("denseblock"):
                groups.append([child])
            elif groups and (name.startswith("transition") or name == "norm5"):
                groups[-1].append(child)
        return groups
    if tvm and isinstance(model, tvm.VGG):
        groups, current = [], []
        for child in features.children():
            current.append(child)
            if isinstance(child, nn.MaxPool2d):
                groups.append(current)
                current = []
        return groups + ([current] if current else [])
    return [[child] for child in features.children()]


@dataclass(frozen=True)
class FreezeResult:
    trainable: int
    total: int


def parse_policy(policy: str | int) -> int | None:
    """How many trailing stages to train: None = all, 0 = head only, N = head + last N."""
    if isinstance(policy, int) and not isinstance(policy, bool):
        n = policy
    elif policy == "all":
        return None
    elif policy == "head":
        return 0
    elif isinstance(policy, str) and policy.startswith("last:") and policy[5:].isdigit():
        n = int(policy[5:])
    else:
        raise UserError("models.freeze_unknown", policy=policy)
    if n < 0:
        raise UserError("models.freeze_unknown", policy=policy)
    return n


def freeze(model: nn.Module, policy: str | int = "all", frozen_bn: str = "eval") -> FreezeResult:
    """Set `requires_grad` for `policy`: "all" (train everything), "head", or "last:N" / N.

    A frozen part keeps its BatchNorm running statistics too (`frozen_bn="eval"`): those layers
    stay in eval mode whatever `model.train()` says, until a later call unfreezes them.
    `frozen_bn="train"` lets the statistics follow the new data, as the course's code does.
    Returns the trainable and total parameter counts, which the page and the run log show.
    """
    if frozen_bn not in FROZEN_BN_MODES:
        raise ValueError(f"frozen_bn must be one of {FROZEN_BN_MODES}, not {frozen_bn!r}")
    n = parse_policy(policy)
    trainable: list[nn.Module] = [model]
    if n is not None:
        trainable = [model.get_submodule(head_module_name(model))]
        body = stages(model)
        if n > len(body):
            raise UserError("models.freeze_too_many", n=n, stages=len(body))
        for group in body[len(body) - n:]:
            trainable += group
    for p in model.parameters():
        p.requires_grad_(False)
    for module in trainable:
        for p in module.parameters():
            p.requires_grad_(True)
    trained = {id(m) for module in trainable for m in module.modules()}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            _keep_in_eval(module, frozen_bn == "eval" and id(module) not in trained, model.training)
    return FreezeResult(
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total=sum(p.numel() for p in model.parameters()),
    )


def _eval_only(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def _keep_in_eval(module: nn.Module, keep: bool, mode: bool) -> None:
    """Pin a BatchNorm layer to eval mode (an instance-level `train` that ignores its argument,
    so the training loop's `model.train()` leaves it alone), or unpin it back to `mode`."""
    if keep:
        module.train = MethodType(_eval_only, module)
        module.eval()
    elif "train" in module.__dict__:
        del module.__dict__["train"]
        module.train(mode)


def frozen_norms(model: nn.Module) -> list[str]:
    """Names of the BatchNorm layers that `freeze` pinned to eval mode."""
    return [name for name, m in model.named_modules() if isinstance(m, _BatchNorm) and "train" in m.__dict__]
