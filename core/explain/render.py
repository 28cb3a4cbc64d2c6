"""Pictures from maps: heatmaps, overlays, the difference of two heatmaps, filters, feature maps.

Everything returns uint8 RGB arrays (H, W, 3) that Streamlit, PIL and OpenCV all take. CAMs are
computed on the model's square input and stretched back here to the photo's own width and
height, so the overlay lines up with the photo instead of a squashed copy of it.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.utils import make_grid

from core.models.modes import evaluating

DISPLAY_MAX_SIDE = 768
NEUTRAL = 0.94  # grid padding and empty cells: the page's light grey, not a colour of the map


def to_size(cam: np.ndarray, width: int, height: int) -> np.ndarray:
    """A [0, 1] map resized (bilinear) to width x height, still float32 in [0, 1]."""
    resized = cv2.resize(np.ascontiguousarray(cam, dtype=np.float32), (int(width), int(height)),
                         interpolation=cv2.INTER_LINEAR)
    return np.clip(resized, 0.0, 1.0)


def to_box(cam: np.ndarray, width: int, height: int, box: tuple[float, float, float, float]) -> np.ndarray:
    """The map stretched over `box` (left, top, right, bottom) of a width x height frame, zero
    outside it: where a run whose evaluation crops the photo (resize, then centre crop) looked."""
    left, top = max(0, round(box[0])), max(0, round(box[1]))
    right, bottom = min(int(width), round(box[2])), min(int(height), round(box[3]))
    if (left, top, right, bottom) == (0, 0, int(width), int(height)):
        return to_size(cam, width, height)
    out = np.zeros((int(height), int(width)), np.float32)
    if right > left and bottom > top:
        out[top:bottom, left:right] = to_size(cam, right - left, bottom - top)
    return out


def display_copy(image: Image.Image, max_side: int = DISPLAY_MAX_SIDE) -> Image.Image:
    """A copy no larger than `max_side` on its long side, same aspect ratio (for the screen)."""
    copy = image.copy()
    copy.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return copy


def colorize(cam: np.ndarray, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """The map in a standard colormap (jet: blue = ignored, red = looked at)."""
    heat = cv2.applyColorMap(np.uint8(np.round(255 * np.clip(cam, 0, 1))), colormap)
    return cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)


def overlay(image: Image.Image | np.ndarray, cam: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """The heatmap blended over the photo; `opacity` 0 shows the photo, 1 the heatmap."""
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8)
    height, width = rgb.shape[:2]
    if cam.shape != (height, width):
        cam = to_size(cam, width, height)
    alpha = float(np.clip(opacity, 0.0, 1.0))
    return cv2.addWeighted(colorize(cam), alpha, rgb, 1.0 - alpha, 0.0)


def difference(cam_a: np.ndarray, cam_b: np.ndarray) -> tuple[np.ndarray, float]:
    """Where two heatmaps disagree: red where A looks more, blue where B does, white alike.

    Returns the picture and the mean absolute difference (0 = same map, 1 = opposite).
    """
    if cam_a.shape != cam_b.shape:
        cam_b = to_size(cam_b, cam_a.shape[1], cam_a.shape[0])
    d = np.clip(cam_a.astype(np.float32) - cam_b.astype(np.float32), -1.0, 1.0)
    # A blue-white-red diverging map: each channel fades with the other side's excess.
    red = 1.0 - np.maximum(-d, 0.0)
    blue = 1.0 - np.maximum(d, 0.0)
    green = 1.0 - np.abs(d)
    picture = np.uint8(np.round(255 * np.stack([red, green, blue], axis=-1)))
    return picture, float(np.abs(d).mean())


def scale_bar(colors: np.ndarray, ticks: list[tuple[float, str]], width: int = 320, bar: int = 12) -> np.ndarray:
    """A horizontal colour scale: `colors` (N x 3 uint8, left to right) stretched over `width`,
    with tick marks and labels at the given positions (0 = left end, 1 = right end) below it."""
    pad, text_h = 12, 16
    height = bar + text_h + 6
    picture = np.full((height, width + 2 * pad, 3), 255, np.uint8)
    idx = np.linspace(0, len(colors) - 1, width).round().astype(int)
    picture[:bar, pad:pad + width] = colors[idx][None, :, :]
    cv2.rectangle(picture, (pad, 0), (pad + width - 1, bar - 1), (150, 150, 150), 1)
    for where, text in ticks:
        x = pad + round(where * (width - 1))
        cv2.line(picture, (x, bar), (x, bar + 3), (90, 90, 90), 1)
        (w, _h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        left = int(np.clip(x - w / 2, 0, picture.shape[1] - w))
        cv2.putText(picture, text, (left, height - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    return picture


def colorbar(width: int = 320) -> np.ndarray:
    """The heatmaps' scale, 0 (blue: not used for this class) to 1 (red: used the most),
    drawn with the same colormap as `colorize`."""
    ramp = colorize(np.linspace(0.0, 1.0, 256, dtype=np.float32)[None, :])[0]
    return scale_bar(ramp, [(v, f"{v:g}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)], width)


def difference_bar(width: int = 320) -> np.ndarray:
    """The difference map's scale: -1 (blue, B only) through 0 (white) to +1 (red, A only)."""
    d = np.linspace(1.0, -1.0, 256, dtype=np.float32)[None, :]
    ramp, _ = difference(np.clip(d, 0, 1), np.clip(-d, 0, 1))
    return scale_bar(ramp[0][::-1], [(0.0, "-1"), (0.5, "0"), (1.0, "+1")], width)


def first_conv(model: nn.Module) -> nn.Conv2d | None:
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


def filters_grid(model: nn.Module, tile: int = 32, limit: int = 64) -> np.ndarray:
    """The first conv layer's filters as an image grid, as the course shows them.

    Filters seeing RGB are drawn in colour; others as the mean over input channels. Each is
    stretched to its own min..max and enlarged (nearest) so a 3x3 kernel is visible.
    """
    conv = first_conv(model)
    if conv is None:
        return np.zeros((tile, tile, 3), np.uint8)
    w = conv.weight.detach().float().cpu()[:limit]
    if w.shape[1] != 3:
        w = w.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    low = w.amin((1, 2, 3), keepdim=True)
    high = w.amax((1, 2, 3), keepdim=True)
    w = (w - low) / (high - low).clamp_min(1e-8)
    w = torch.nn.functional.interpolate(w, size=(tile, tile), mode="nearest")
    return _grid(w)


def feature_maps(model: nn.Module, inputs: torch.Tensor, layer: str) -> torch.Tensor:
    """The output of `layer` for one model-ready image [1,3,S,S]: a [C,h,w] tensor."""
    captured: list[torch.Tensor] = []
    with evaluating(model):
        handle = model.get_submodule(layer).register_forward_hook(
            lambda _m, _i, out: captured.append(out.detach().clone()))
        try:
            with torch.no_grad():
                model(inputs)
        finally:
            handle.remove()
    return captured[0][0].float().cpu()


def feature_maps_grid(maps: torch.Tensor, limit: int = 32, tile: int = 64,
                      colormap: int = cv2.COLORMAP_VIRIDIS) -> np.ndarray:
    """The first `limit` feature maps, each stretched to its own range, as a coloured grid
    (padding and the cells left over in the last row in a neutral grey)."""
    maps = maps[:limit].unsqueeze(1)
    low = maps.amin((2, 3), keepdim=True)
    high = maps.amax((2, 3), keepdim=True)
    maps = (maps - low) / (high - low).clamp_min(1e-8)
    maps = torch.nn.functional.interpolate(maps, size=(tile, tile), mode="nearest")
    gray = np.uint8(np.round(255 * maps[:, 0].numpy()))  # [N, tile, tile]
    colored = cv2.cvtColor(cv2.applyColorMap(gray.reshape(-1, tile), colormap), cv2.COLOR_BGR2RGB)
    tiles = torch.from_numpy(colored.reshape(-1, tile, tile, 3)).permute(0, 3, 1, 2).float() / 255
    return _grid(tiles)


def _grid(tiles: torch.Tensor) -> np.ndarray:
    nrow = max(1, int(np.ceil(np.sqrt(tiles.shape[0]))))
    grid = make_grid(tiles, nrow=nrow, padding=2, pad_value=NEUTRAL)
    return np.uint8(np.round(255 * grid.clamp(0, 1).permute(1, 2, 0).numpy()))
