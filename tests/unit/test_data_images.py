"""open_image: the one place a user's file is decoded: refuses bombs, always gives upright 8-bit RGB."""
from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from core.data.images import open_image
from core.errors import UserError
from tests.unit.test_data_scan import bomb_png, noise_image


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode,fmt", [("CMYK", "JPEG"), ("L", "PNG"), ("P", "PNG"), ("RGBA", "PNG"), ("RGB", "WEBP")])
def test_any_mode_comes_out_rgb(mode, fmt):
    img = open_image(encoded(noise_image(1).convert(mode), fmt))
    assert img.mode == "RGB" and img.size == (24, 20)


def test_sixteen_bit_is_scaled_and_transparency_goes_white():
    sixteen = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert open_image(encoded(sixteen, "PNG")).getpixel((0, 0)) == (255, 255, 255)
    clear = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert open_image(encoded(clear, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def marked(width: int = 40, height: int = 20) -> Image.Image:
    """Blue, with a red block in the stored top-left corner: where it lands gives the rotation."""
    img = Image.new("RGB", (width, height), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, width // 4, height // 2))
    return img


def is_red(pixel) -> bool:
    return pixel[0] > 200 and pixel[2] < 60


# EXIF orientation -> where the stored top-left corner is seen (as x, y fractions of the shown image).
CORNER_SEEN_AT = {3: (0.9, 0.9), 6: (0.9, 0.1), 8: (0.1, 0.9)}


@pytest.mark.parametrize("orientation", sorted(CORNER_SEEN_AT))
def test_exif_rotation_turns_the_right_way(orientation):
    """Orientation 6 means "turn 90 degrees clockwise to view": the top-left corner ends top-right
    (a turn the other way would put it bottom-left, with the same size)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    img = open_image(encoded(marked(), "JPEG", quality=95, exif=exif))
    assert img.size == ((40, 20) if orientation == 3 else (20, 40))
    fx, fy = CORNER_SEEN_AT[orientation]
    w, h = img.size
    corners = {(x, y): is_red(img.getpixel((int(x * w), int(y * h)))) for x in (0.1, 0.9) for y in (0.1, 0.9)}
    assert corners == {corner: corner == (fx, fy) for corner in corners}


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_colours_come_out_right(fmt):
    """Cyan, magenta, yellow, black and white inks, side by side, as the RGB colours they print as."""
    inks = [(255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255), (0, 0, 0, 0)]
    expected = [(0, 255, 255), (255, 0, 255), (255, 255, 0), (0, 0, 0), (255, 255, 255)]
    cmyk = Image.new("CMYK", (50, 10))
    for i, ink in enumerate(inks):
        cmyk.paste(ink, (10 * i, 0, 10 * i + 10, 10))
    img = open_image(encoded(cmyk, fmt, quality=95))
    for i, rgb in enumerate(expected):
        got = img.getpixel((10 * i + 5, 5))
        assert max(abs(a - b) for a, b in zip(got, rgb)) <= 8, (i, got, rgb)


def test_the_pixel_limit_is_pillows_own_setting(monkeypatch):
    """One knob: Pillow's Image.MAX_IMAGE_PIXELS, not a process-wide warnings filter."""
    import warnings

    import core.data.images  # noqa: F401 - importing it must not touch the warning filters

    assert not [f for f in warnings.filters if f[2] is Image.DecompressionBombWarning]
    assert Image.MAX_IMAGE_PIXELS >= 120_000_000  # a 108 MP phone photo opens
    photo = encoded(noise_image(5), "PNG")  # 24 x 20 = 480 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # Pillow warns (up to 800) and open_image refuses
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(UserError) as err:
        open_image(photo)
    assert err.value.key == "image.bomb" and err.value.params["limit"] == 400
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # above twice the limit Pillow itself raises
    with pytest.raises(UserError) as err:
        open_image(photo)
    assert err.value.key == "image.bomb"
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 480)
    assert open_image(photo).size == (24, 20)


@pytest.mark.parametrize("data,key", [
    (bomb_png(), "image.bomb"),
    (b"plain text, not a picture", "image.not_image"),
    (encoded(noise_image(3), "JPEG")[:200], "image.broken"),
])
def test_bad_files_are_user_errors(data, key):
    with pytest.raises(UserError) as err:
        open_image(data)
    assert err.value.key == key


def test_missing_file(tmp_path):
    with pytest.raises(UserError) as err:
        open_image(tmp_path / "gone.jpg")
    assert err.value.key == "image.missing"


def test_bombs_are_refused_from_many_threads_at_once():
    """No process-wide warning filters are swapped, so concurrent opens all behave the same."""
    outcomes = []

    def work(i: int) -> None:
        try:
            open_image(bomb_png() if i % 2 else encoded(noise_image(i), "PNG"))
            outcomes.append("ok")
        except UserError as err:
            outcomes.append(err.key)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["image.bomb"] * 8 + ["ok"] * 8


@pytest.mark.parametrize("size", [(300, 100), (100, 300), (24, 20), (160, 160)])
def test_thumbnails_are_one_square_size_with_the_whole_photo(size):
    """Issue 14: sample thumbnails had ragged heights (each kept its own shape)."""
    from core.data.images import THUMB_BACKGROUND, square_thumbnail

    photo = Image.new("RGB", size, (200, 30, 30))
    thumb = square_thumbnail(photo, 80)
    assert thumb.size == (80, 80)
    pixels = np.asarray(thumb)
    assert tuple(pixels[40, 40]) == (200, 30, 30)  # the photo, centred and scaled to fit
    w, h = size
    if w > h:  # letterboxed above and below, nothing cut off left or right
        assert tuple(pixels[0, 40]) == THUMB_BACKGROUND and tuple(pixels[40, 0]) == (200, 30, 30)
    elif h > w:
        assert tuple(pixels[40, 0]) == THUMB_BACKGROUND and tuple(pixels[0, 40]) == (200, 30, 30)
