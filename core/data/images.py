"""Opening one image safely: the only place a user's file is decoded.

Every caller (scan, cache, the Explain page's uploads, the CLI) goes through `open_image`, so
a decompression bomb is refused before decoding, EXIF rotation is applied, and odd modes
(CMYK, 16-bit, palette, RGBA, grayscale) come out as 8-bit RGB.

The pixel limit is Pillow's own `Image.MAX_IMAGE_PIXELS` (one setting for every library that
opens images in this process), raised here from Pillow's 89 MP so that 108 MP phone photos
open. Above it Pillow warns while opening and `open_image` refuses the image before decoding;
above twice it Pillow itself raises. No warnings filter is changed.
"""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import UserError

# Refuse anything above this many pixels without decoding it (a 16k x 16k photo is 268 MP).
MAX_PIXELS = 120_000_000
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def pixel_limit() -> int | None:
    """Pillow's limit as it is now (None: no limit), read at each check so one setting rules."""
    return Image.MAX_IMAGE_PIXELS


def too_many_pixels(width: int, height: int) -> bool:
    limit = pixel_limit()
    return limit is not None and width * height > limit


def _source_name(source: str | Path | bytes | io.IOBase) -> str:
    return str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "upload")


def open_image(source: str | Path | bytes | io.IOBase) -> Image.Image:
    """Decode `source` into an upright 8-bit RGB image, or raise a UserError saying why not."""
    name = _source_name(source)
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with Image.open(source) as img:
            width, height = img.size
            if too_many_pixels(width, height):
                raise UserError("image.bomb", name=name, width=width, height=height, limit=pixel_limit())
            img.load()
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError("image.missing", name=name) from None
    except Image.DecompressionBombError:
        raise UserError("image.bomb", name=name, width="?", height="?", limit=pixel_limit()) from None
    except UnidentifiedImageError:
        raise UserError("image.not_image", name=name) from None
    except (OSError, SyntaxError, ValueError) as err:
        raise UserError("image.broken", name=name, reason=str(err)) from None


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode; transparency is flattened onto white, 16-bit is scaled down."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v / 256).convert("L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")


THUMB_SIDE = 160
THUMB_BACKGROUND = (240, 242, 246)  # the page's light grey: the letterbox bars read as margin


def square_thumbnail(img: Image.Image, side: int = THUMB_SIDE) -> Image.Image:
    """`img` scaled to fit a `side` x `side` square and centred on a plain background: a grid of
    photos of any shapes lines up in rows of one height, and no part of a photo is cut off."""
    copy = ImageOps.contain(to_rgb(img), (side, side), Image.Resampling.LANCZOS)
    square = Image.new("RGB", (side, side), THUMB_BACKGROUND)
    square.paste(copy, ((side - copy.width) // 2, (side - copy.height) // 2))
    return square
