"""Which device to train on: CUDA, then Apple MPS, then CPU, unless the user says otherwise."""
from __future__ import annotations

import os

import torch

from core.errors import UserError
from core.i18n import t

CHOICES = ("auto", "cpu", "cuda", "mps")


def available() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.insert(0, "cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.insert(0, "mps")
    return found


def resolve(preference: str = "auto") -> torch.device:
    if preference not in CHOICES:
        raise UserError("device.unknown", name=preference, choices=", ".join(CHOICES))
    if preference == "auto":
        for name in ("cuda", "mps", "cpu"):
            if name in available():
                return torch.device(name)
    if preference not in available():
        raise UserError("device.unavailable", name=preference)
    return torch.device(preference)


def describe(device: torch.device, lang: str = "en") -> str:
    if device.type == "cuda":
        return f"CUDA · {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "Apple MPS"
    return t("device.cpu", lang, cores=os.cpu_count())
