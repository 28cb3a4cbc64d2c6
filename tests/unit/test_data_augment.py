"""Augmentation as settings: every op does what torchvision's does (flips really flip, a 90 degree
rotation is rot90, hue really turns), the presets give exactly what they gave before they became
settings, settings are checked, and evaluation resizes + centre-crops as torchvision does."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core.data.augment import (
    AUGMENT_PRESETS,
    DEFAULTS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    OPS,
    Augmentation,
    adjust_hue,
    augment,
    augment_preview,
    dataset_mean_std,
    eval_input,
    eval_transform,
    hsv_to_rgb,
    normalize,
    parse_numbers,
    preview,
    rgb_to_hsv,
    settings,
    to_float,
    typed_mean_std,
)
from core.errors import UserError

_LUMA = (0.299, 0.587, 0.114)
AUGMENT_PRESETS_BEFORE = ("none", "light", "seed", "strong")


# --- the presets as they were implemented before settings (commit dbd4545), kept as the reference
@dataclass(frozen=True)
class _Preset:
    flip: bool = False
    shift: float = 0.0  # max crop shift as a fraction of the side (RandomCrop(S, padding=S*shift))
    rotate: float = 0.0  # max rotation in degrees
    jitter: float = 0.0  # brightness / contrast / saturation factor range 1 +- jitter
    grayscale: float = 0.0  # probability


LEGACY = {
    "none": _Preset(),
    "light": _Preset(flip=True, shift=0.125),
    "seed": _Preset(flip=True, shift=0.125, jitter=0.2),
    "strong": _Preset(flip=True, shift=0.125, rotate=15.0, jitter=0.4, grayscale=0.1),
}


def legacy_augment(batch_u8: torch.Tensor, preset: str, generator: torch.Generator | None = None) -> torch.Tensor:
    if preset not in LEGACY:
        raise ValueError(preset)
    p = LEGACY[preset]
    if p.rotate:
        x = _warp(to_float(batch_u8), p, generator)
    elif p.flip or p.shift:
        x = to_float(_flip_shift(batch_u8, p, generator))  # exact pixels, cheaper on uint8
    else:
        x = to_float(batch_u8)
    if p.jitter:
        x = _jitter(x, p.jitter, generator)
    if p.grayscale:
        pick = (_uniform(len(x), 0, 1, generator) < p.grayscale).to(x.device)
        x = torch.where(pick[:, None, None, None], _gray(x).expand_as(x), x)
    return x


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def _warp(x: torch.Tensor, p: _Preset, generator: torch.Generator | None) -> torch.Tensor:
    """Flip, rotate and shift every image with its own affine matrix, in one `grid_sample`.

    Shifts are whole pixels and areas shifted in are black, as RandomCrop(S, padding) does.
    """
    b, _, h, w = x.shape
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0) if p.flip else torch.ones(b)
    angle = _uniform(b, -p.rotate, p.rotate, generator) * math.pi / 180
    max_dx, max_dy = round(w * p.shift), round(h * p.shift)
    dx = torch.randint(-max_dx, max_dx + 1, (b,), generator=generator).float() * 2 / w
    dy = torch.randint(-max_dy, max_dy + 1, (b,), generator=generator).float() * 2 / h
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, dx], 1), torch.stack([sin * flip, cos, dy], 1)], 1
    ).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _flip_shift(x: torch.Tensor, p: _Preset, generator: torch.Generator | None) -> torch.Tensor:
    """RandomHorizontalFlip + RandomCrop(S, padding) for a whole batch, as one gather.

    Every output pixel is an input pixel or black padding, so this runs on uint8 without blur.
    """
    b, _, h, w = x.shape
    pad_y, pad_x = round(h * p.shift), round(w * p.shift)
    padded = F.pad(x, (pad_x, pad_x, pad_y, pad_y))
    oy = torch.randint(0, 2 * pad_y + 1, (b, 1), generator=generator)
    ox = torch.randint(0, 2 * pad_x + 1, (b, 1), generator=generator)
    rows = oy + torch.arange(h)
    cols = ox + torch.arange(w)
    if p.flip:
        flip = torch.rand(b, generator=generator) < 0.5
        cols = torch.where(flip[:, None], cols.flip(1), cols)
    rows, cols = rows.to(x.device), cols.to(x.device)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = _LUMA
    return (r * x[:, 0:1] + g * x[:, 1:2] + b * x[:, 2:3])


def _jitter(x: torch.Tensor, amount: float, generator: torch.Generator | None) -> torch.Tensor:
    """Brightness, contrast and saturation, each scaled by a factor in [1-amount, 1+amount]."""
    b = len(x)
    factors = [_uniform(b, 1 - amount, 1 + amount, generator).to(x.device, x.dtype)[:, None, None, None]
               for _ in range(3)]
    brightness, contrast, saturation = factors
    x = x.mul(brightness).clamp_(0, 1)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x.sub_(mean).mul_(contrast).add_(mean).clamp_(0, 1)
    gray = _gray(x)
    return x.sub_(gray).mul_(saturation).add_(gray).clamp_(0, 1)




@pytest.fixture
def batch() -> torch.Tensor:
    return torch.randint(0, 256, (16, 3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("preset", AUGMENT_PRESETS_BEFORE)
@pytest.mark.parametrize("size", [8, 24, 33, 64])
def test_presets_give_exactly_what_they_gave_before(preset, size):
    assert AUGMENT_PRESETS == AUGMENT_PRESETS_BEFORE
    for seed in range(3):
        x = torch.randint(0, 256, (12, 3, size, size), dtype=torch.uint8, generator=gen(seed))
        assert torch.equal(augment(x, preset, gen(seed + 10)), legacy_augment(x, preset, gen(seed + 10)))


@pytest.mark.parametrize("preset", AUGMENT_PRESETS)
def test_presets_keep_shape_range_and_are_seeded(batch, preset):
    a = augment(batch, preset, gen(1))
    b = augment(batch, preset, gen(1))
    assert a.shape == batch.shape and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b)
    if preset == "none":
        assert torch.equal(a, to_float(batch))
    else:
        assert not torch.equal(a, augment(batch, preset, gen(2)))
        per_image_changed = (a != to_float(batch)).flatten(1).any(1)
        assert per_image_changed.float().mean() > 0.5  # new parameters per image


def test_light_is_a_flip_and_a_whole_pixel_shift(batch):
    """No interpolation blur: every pixel is an original pixel or black padding."""
    out = augment(batch, "light", gen(3))
    x = to_float(batch)
    for img, orig in zip(out, x):
        found = False
        for candidate in (orig, orig.flip(-1)):
            for dy in range(-3, 4):
                for dx in range(-3, 4):
                    shifted = torch.zeros_like(candidate)
                    ys, xs = slice(max(dy, 0), 24 + min(dy, 0)), slice(max(dx, 0), 24 + min(dx, 0))
                    yo, xo = slice(max(-dy, 0), 24 + min(-dy, 0)), slice(max(-dx, 0), 24 + min(-dx, 0))
                    shifted[:, ys, xs] = candidate[:, yo, xo]
                    found |= torch.allclose(img, shifted, atol=1e-5)
        assert found


def test_strong_can_turn_images_gray():
    colour = torch.zeros((200, 3, 8, 8), dtype=torch.uint8)
    colour[:, 0] = 200
    out = augment(colour, "strong", gen(0))
    centre = out[:, :, 3:5, 3:5]
    gray = (centre[:, 0] - centre[:, 1]).abs().amax(dim=(1, 2)) < 1e-6
    assert 0 < gray.sum() < 60


def test_unknown_preset_is_refused(batch):
    with pytest.raises(UserError) as err:
        augment(batch, "extreme")
    assert err.value.key == "training.config_choice" and "seed" in err.value.message()


# --- each op, with its parameters given -----------------------------------------------------
def asymmetric(side: int = 8, n: int = 1) -> torch.Tensor:
    """uint8 images where every pixel differs: flips and rotations show."""
    x = torch.arange(n * 3 * side * side, dtype=torch.int64).reshape(n, 3, side, side)
    return (x * 7 % 251).to(torch.uint8)


def run(settings_: dict, x: torch.Tensor, img_size: int | None = None, **params) -> torch.Tensor:
    plan = Augmentation(settings_, img_size or x.shape[-1])
    drawn = plan.draw(len(x), gen(0))
    return plan.apply(x, drawn | {k: torch.as_tensor(v) for k, v in params.items()})


def test_horizontal_and_vertical_flips_flip_columns_and_rows():
    x = asymmetric(n=2)
    yes_no = torch.tensor([True, False])
    out = run({"hflip": 0.5}, x, hflip=yes_no)
    assert torch.equal(out[0], to_float(x[0]).flip(-1)) and torch.equal(out[1], to_float(x[1]))
    out = run({"vflip": 0.5}, x, vflip=yes_no)
    assert torch.equal(out[0], to_float(x[0]).flip(-2)) and torch.equal(out[1], to_float(x[1]))
    # drawn: with p = 1 every image flips, rows of a vertical flip really are reversed
    assert torch.equal(augment(x, {"vflip": 1.0}, gen(4)), to_float(x).flip(-2))
    assert torch.equal(augment(x, {"hflip": 1.0, "vflip": 1.0}, gen(4)), to_float(x).flip(-1).flip(-2))


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_a_rotation_of_90_degrees_is_rot90_counter_clockwise(interpolation):
    x = asymmetric(side=10)
    out = run({"rotation": 90.0, "interpolation": interpolation}, x, angle=torch.tensor([math.pi / 2]))
    assert torch.allclose(out, to_float(torch.rot90(x, 1, dims=(-2, -1))), atol=1e-4)
    out = run({"rotation": 90.0, "interpolation": interpolation}, x, angle=torch.tensor([-math.pi / 2]))
    assert torch.allclose(out, to_float(torch.rot90(x, -1, dims=(-2, -1))), atol=1e-4)


def test_a_rotation_fills_the_corners_black_and_keeps_the_centre():
    x = torch.full((1, 3, 16, 16), 200, dtype=torch.uint8)
    out = run({"rotation": 45.0}, x, angle=torch.tensor([math.pi / 4]))
    assert out[0, :, 0, 0].eq(0).all() and out[0, :, 8, 8].eq(200 / 255).all()
    # drawn angles stay within the setting: a small angle never blackens an inner pixel
    small = augment(torch.full((50, 3, 16, 16), 200, dtype=torch.uint8), {"rotation": 5.0}, gen(1))
    assert small[:, :, 4:12, 4:12].eq(200 / 255).all() and not small[:, :, 0, 0].eq(200 / 255).all()


@pytest.mark.parametrize("k", [1, 3])
def test_a_random_crop_with_k_pixels_of_padding_shifts_the_content_by_up_to_k(k):
    x = asymmetric(side=8)
    f = to_float(x)
    settings_ = {"crop": "random", "padding": k}
    out = run(settings_, x, oy=torch.tensor([[0]]), ox=torch.tensor([[0]]))  # the window at the padded corner
    assert torch.equal(out[..., k:, k:], f[..., :-k, :-k]) and out[..., :k, :].eq(0).all() and out[..., :, :k].eq(0).all()
    out = run(settings_, x, oy=torch.tensor([[2 * k]]), ox=torch.tensor([[k]]))
    assert torch.equal(out[..., :-k, :], f[..., k:, :]) and out[..., -k:, :].eq(0).all()
    # drawn offsets: each image one of the (2k+1)^2 shifts, and more than one of them used
    many = augment(x.expand(40, -1, -1, -1), settings_, gen(2))
    shifts = {next((dy, dx) for dy in range(-k, k + 1) for dx in range(-k, k + 1)
                   if torch.equal(img, run(settings_, x, oy=torch.tensor([[k + dy]]), ox=torch.tensor([[k + dx]]))[0]))
              for img in many}
    assert len(shifts) > 1


def test_a_random_crop_from_a_larger_stored_image_is_a_window_of_it():
    x = asymmetric(side=12)
    out = run({"resize": 12, "crop": "random"}, x, img_size=8, oy=torch.tensor([[1]]), ox=torch.tensor([[3]]))
    assert torch.equal(out, to_float(x[..., 1:9, 3:11]))


def test_a_centre_crop_takes_the_middle():
    x = asymmetric(side=12)
    assert torch.equal(augment(x, {"resize": 12, "crop": "center"}, gen(0), img_size=8), to_float(x[..., 2:10, 2:10]))


def test_a_random_resized_crop_stretches_its_box_to_the_image_size():
    x = torch.rand(1, 3, 16, 16)
    x8 = (x * 255).round().to(torch.uint8)
    plan = {"resize": 16, "crop": "resized"}
    whole = run(plan, x8, img_size=16, box=torch.tensor([[0.0, 0.0, 16.0, 16.0]]))
    assert torch.allclose(whole, to_float(x8), atol=1e-6)
    quarter = run(plan, x8, img_size=16, box=torch.tensor([[0.0, 8.0, 8.0, 8.0]]))  # top right quarter
    want = F.interpolate(to_float(x8)[..., :8, 8:], size=16, mode="bilinear", align_corners=False)
    assert torch.allclose(quarter, want, atol=1e-5)
    # drawn boxes: inside the image, areas and aspect ratios within the settings (up to rounding)
    boxes = Augmentation({"resize": 64, "crop": "resized", "scale": [0.25, 0.5]}, 32).draw(500, gen(3))["box"]
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 64).all() and (left + w <= 64).all()
    area = h * w / 64**2
    assert area.min() > 0.2 and area.max() < 0.55 and area.std() > 0.05
    aspect = w / h
    assert aspect.min() > 0.7 and aspect.max() < 1.45


def test_grayscale_with_probability_one_gives_equal_channels():
    x = asymmetric(side=6, n=4)
    out = augment(x, {"grayscale": 1.0}, gen(0))
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    f = to_float(x)
    assert torch.allclose(out[:, 0], 0.299 * f[:, 0] + 0.587 * f[:, 1] + 0.114 * f[:, 2], atol=1e-6)


def test_hue_really_turns_the_colour_circle():
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0
    assert torch.allclose(adjust_hue(red, torch.tensor(1 / 3).view(1, 1, 1, 1)), red.roll(1, dims=1), atol=1e-5)  # green
    assert torch.allclose(adjust_hue(red, torch.tensor(-1 / 3).view(1, 1, 1, 1)), red.roll(2, dims=1), atol=1e-5)  # blue
    x = torch.rand(5, 3, 7, 7)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-5)
    from torchvision.transforms import functional as TF

    shifts = torch.tensor([-0.5, -0.2, 0.05, 0.3, 0.5])
    theirs = torch.stack([TF.adjust_hue(img, float(f)) for img, f in zip(x, shifts)])
    assert torch.allclose(adjust_hue(x, shifts.view(-1, 1, 1, 1)), theirs, atol=1e-5)
    # through the op: pure red stays fully saturated and bright, its hue is the drawn shift
    red8 = torch.zeros(64, 3, 4, 4, dtype=torch.uint8)
    red8[:, 0] = 255
    plan = Augmentation({"hue": 0.5}, 4)
    drawn = plan.draw(64, gen(5))
    hsv = rgb_to_hsv(plan.apply(red8, drawn))
    assert torch.allclose(hsv[:, 1:], torch.ones_like(hsv[:, 1:]), atol=1e-5)
    assert torch.allclose(hsv[:, 0, 0, 0], torch.remainder(drawn["hue"], 1.0), atol=1e-4)
    assert drawn["hue"].min() < -0.3 and drawn["hue"].max() > 0.3


def test_brightness_contrast_and_saturation_follow_torchvision():
    x = asymmetric(side=6)
    f = to_float(x)
    half = torch.tensor([0.5])
    assert torch.allclose(run({"brightness": 0.5}, x, brightness=half), f * 0.5, atol=1e-6)
    gray = 0.299 * f[:, 0:1] + 0.587 * f[:, 1:2] + 0.114 * f[:, 2:3]
    flat = run({"contrast": 0.9}, x, contrast=torch.tensor([0.0]))
    assert torch.allclose(flat, gray.mean().expand_as(f), atol=1e-6)
    assert torch.allclose(run({"saturation": 0.9}, x, saturation=torch.tensor([0.0])), gray.expand_as(f), atol=1e-6)


def test_colour_jitter_runs_in_a_random_order_per_image_or_a_fixed_one():
    x = asymmetric(side=6).expand(64, -1, -1, -1)
    settings_ = {"brightness": 0.5, "contrast": 0.5}
    plan = Augmentation(settings_, 6)
    drawn = plan.draw(64, gen(7))
    out = plan.apply(x, drawn)
    f = to_float(x)
    b, c = drawn["brightness"].view(-1, 1, 1, 1), drawn["contrast"].view(-1, 1, 1, 1)

    def contrast(y, k):
        m = (0.299 * y[:, 0:1] + 0.587 * y[:, 1:2] + 0.114 * y[:, 2:3]).mean(dim=(1, 2, 3), keepdim=True)
        return ((y - m) * k + m).clamp(0, 1)

    first_b = contrast((f * b).clamp(0, 1), c)
    first_c = (contrast(f, c) * b).clamp(0, 1)
    is_b_first = drawn["jitter_order"][:, 0] == 0
    want = torch.where(is_b_first.view(-1, 1, 1, 1), first_b, first_c)
    assert torch.allclose(out, want, atol=1e-5)
    assert 10 < is_b_first.sum() < 54
    fixed = Augmentation(settings_ | {"jitter_order": "fixed"}, 6)
    drawn = fixed.draw(64, gen(7))
    assert "jitter_order" not in drawn


def test_the_order_of_the_ops_is_the_order_given():
    """The CIFAR lesson rotates after the crop and the jitter: black corners stay black."""
    x = torch.full((8, 3, 16, 16), 120, dtype=torch.uint8)
    plan = {"crop": "random", "padding": 2, "rotation": 30.0, "contrast": 0.5}
    late = Augmentation(plan | {"order": ["crop", "jitter", "affine"]}, 16)
    early = Augmentation(plan | {"order": ["affine", "crop", "jitter"]}, 16)
    drawn = late.draw(8, gen(0))
    drawn["angle"] = torch.full((8,), math.pi / 6)
    drawn["contrast"] = torch.full((8,), 0.5)
    rotated_last, rotated_first = late.apply(x, drawn), early.apply(x, drawn)
    assert rotated_last[:, :, 0, 0].eq(0).all()         # the rotation's corners, after the jitter
    assert not rotated_first[:, :, 0, 0].eq(0).all()    # the jitter moved the rotation's black
    assert early.settings["order"] == ["affine", "crop", "jitter", "hflip", "vflip", "grayscale"]


@pytest.mark.parametrize("name, value", [
    ("hflip", 1.0), ("vflip", 1.0), ("rotation", 30.0), ("translate", 0.25), ("brightness", 0.5),
    ("contrast", 0.5), ("saturation", 0.5), ("hue", 0.2), ("grayscale", 1.0),
    ("crop", "random"), ("crop", "resized"), ("crop", "center"),
])
def test_every_setting_changes_the_images(name, value):
    x = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=gen(0))
    extra = {"padding": 3} if value == "random" else {"resize": 20} if value in ("resized", "center") else {}
    stored = F.interpolate(x.float(), size=20, mode="nearest").round().to(torch.uint8) if extra.get("resize") else x
    out = augment(stored, {name: value} | extra, gen(1), img_size=16)
    assert out.shape == (8, 3, 16, 16)
    changed = (out - to_float(x)).abs().flatten(1).amax(1) > 1e-3
    assert changed.sum() >= 4, name


def test_settings_are_checked_with_a_translated_message():
    cases = [
        ({"rotate": 10}, "training.augment.unknown"),
        ({"hflip": 1.5}, "training.augment.bad_value"),
        ({"hflip": True}, "training.augment.bad_value"),
        ({"hue": 0.6}, "training.augment.bad_value"),
        ({"crop": "middle"}, "training.augment.bad_value"),
        ({"scale": [0.5, 0.1]}, "training.augment.bad_value"),
        ({"padding": 2.5}, "training.augment.bad_value"),
        ({"order": ["crop", "crop"]}, "training.augment.bad_order"),
        ({"order": ["spin"]}, "training.augment.bad_order"),
        ({"resize": 96}, "training.augment.needs_crop"),
        ({"resize": 48, "crop": "center"}, "training.augment.too_small"),
        ({"eval_resize": 32}, "training.augment.too_small"),
    ]
    for given, key in cases:
        with pytest.raises(UserError) as err:
            settings(given, 64)
        assert err.value.key == key, given
        for lang in ("en", "zh"):
            assert "{" not in err.value.message(lang) and err.value.key not in err.value.message(lang)
    with pytest.raises(UserError) as err:
        settings(["hflip"], 64)
    assert err.value.key == "training.augment.not_settings"


def test_settings_are_filled_in_and_stable():
    full = settings({"rotation": 10, "hflip": 0.5, "order": ["hflip", "affine"]}, 224)
    assert set(full) == set(DEFAULTS) and full["rotation"] == 10.0 and isinstance(full["rotation"], float)
    assert full["order"] == ["hflip", "affine", *[op for op in OPS if op not in ("hflip", "affine")]]
    assert settings(full, 224) == full
    assert settings("seed", 32) == settings({"crop": "random", "padding": 4, "hflip": 0.5, "brightness": 0.2,
                                            "contrast": 0.2, "saturation": 0.2, "jitter_order": "fixed",
                                            "order": ["crop", "hflip", "jitter"]}, 32)


# --- evaluation: resize (+ centre crop), as torchvision --------------------------------------
@pytest.fixture
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (120, 170, 3), dtype=np.uint8)
    pixels[:, :, 0] = np.linspace(0, 255, 170, dtype=np.uint8)[None, :]
    return Image.fromarray(pixels)


def test_the_evaluation_transform_is_torchvisions_resize_and_centre_crop(photo):
    from torchvision import transforms

    def tv(*ops):
        return torch.from_numpy(np.array(transforms.Compose(list(ops))(photo))).permute(2, 0, 1)

    assert eval_transform({"eval_resize": 96}, 64) == (96, "square")
    assert eval_transform("seed", 64) == (64, "square") and eval_transform(None, 32) == (32, "square")
    assert torch.equal(eval_input(photo, 64, 96, "square"), tv(transforms.Resize((96, 96)), transforms.CenterCrop(64)))
    assert torch.equal(eval_input(photo, 64, 96, "shorter"), tv(transforms.Resize(96), transforms.CenterCrop(64)))
    assert torch.equal(eval_input(photo, 64, 64, "square"), tv(transforms.Resize((64, 64))))
    assert torch.equal(eval_input(photo, 56, 72, "shorter"), tv(transforms.Resize(72), transforms.CenterCrop(56)))
    # The stored image is the central 73 x 73 first: with an odd size difference on both sides
    # the two roundings of the centre may land one pixel from torchvision's single one.
    ours, theirs = eval_input(photo, 56, 73, "shorter"), tv(transforms.Resize(73), transforms.CenterCrop(56))
    assert torch.equal(ours, theirs) or torch.equal(ours[:, :, 1:], theirs[:, :, :-1])


def test_the_evaluation_box_is_the_part_of_the_photo_the_model_sees(photo):
    from core.data.augment import eval_box

    assert eval_box(170, 120, 64, 64) == (0, 0, 170, 120)
    left, top, right, bottom = eval_box(170, 120, 64, 96)  # stretched to 96, the central 64
    assert (left, top, right, bottom) == pytest.approx((16 * 170 / 96, 16 * 120 / 96, 80 * 170 / 96, 80 * 120 / 96))
    # the box of the shorter-side mode, cut from the photo and resized, is the model's input (up to resampling)
    box = eval_box(170, 120, 64, 96, "shorter")
    assert box[1] == pytest.approx(16 * 120 / 96) and box[2] - box[0] == pytest.approx(box[3] - box[1])
    cut = np.asarray(photo.crop(tuple(round(v) for v in box)).resize((64, 64), Image.BILINEAR), dtype=float)
    model_input = eval_input(photo, 64, 96, "shorter").permute(1, 2, 0).numpy().astype(float)
    assert np.abs(cut - model_input).mean() < 12 < np.abs(cut[:, ::-1] - model_input).mean()


def test_typed_normalisation_is_checked():
    assert typed_mean_std("imagenet") is None
    assert typed_mean_std({"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}) == (
        (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    for bad in ({"mean": [0.5, 0.5], "std": [1, 1, 1]}, {"mean": [0, 0, 0], "std": [1, 0, 1]}, {"mean": [0, 0, 0]},
                {"mean": ["a", 0, 0], "std": [1, 1, 1]}, [0.5, 0.5, 0.5]):
        with pytest.raises(UserError) as err:
            typed_mean_std(bad)
        assert err.value.key == "training.normalization_bad"
        assert all('{"mean": [r, g, b]' in err.value.message(lang) for lang in ("en", "zh"))
    assert parse_numbers("0.4914, 0.4822，0.4465", 3, "mean") == [0.4914, 0.4822, 0.4465]
    with pytest.raises(UserError):
        parse_numbers("0.5, x", 2, "scale")


def test_normalize_and_dataset_statistics():
    x = torch.rand(4, 3, 5, 5)
    n = normalize(x, IMAGENET_MEAN, IMAGENET_STD)
    assert torch.allclose(n[:, 1] * IMAGENET_STD[1] + IMAGENET_MEAN[1], x[:, 1], atol=1e-6)

    class Tiny:
        def __init__(self, data):
            self.data, self.mean_std = data, None

        def __len__(self):
            return len(self.data)

        def batch(self, idx):
            return self.data[idx]

    data = torch.randint(0, 256, (10, 3, 6, 6), dtype=torch.uint8)
    images = Tiny(data)
    mean, std = dataset_mean_std(images, chunk=3)
    f = to_float(data)
    assert torch.allclose(torch.tensor(mean), f.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(torch.tensor(std), f.std(dim=(0, 2, 3), unbiased=False), atol=1e-4)
    assert images.mean_std == (mean, std)  # computed once


def test_preview_gives_eight_displayable_versions(batch):
    views = augment_preview(batch[0], "seed", 8, seed=5)
    assert len(views) == 8 and views[0].shape == (24, 24, 3) and views[0].dtype.name == "uint8"
    assert all((a == b).all() for a, b in zip(views, augment_preview(batch[0], "seed", 8, seed=5)))


def test_the_preview_shows_any_settings_at_the_stored_and_the_model_size(photo):
    original, views = preview(photo, {"resize": 96, "rotation": 45.0, "crop": "center", "vflip": 0.5}, 64, 8, seed=1)
    assert original.shape == (96, 96, 3) and len(views) == 8 and all(v.shape == (64, 64, 3) for v in views)
    assert len({v.tobytes() for v in views}) == 8
