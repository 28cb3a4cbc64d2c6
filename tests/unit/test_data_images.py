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


def test_exif_rotation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6
    assert open_image(encoded(noise_image(2, size=(40, 20)), "JPEG", exif=exif)).size == (20, 40)


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
