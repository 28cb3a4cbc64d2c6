"""Opening one image safely: the only place a user's file is decoded.

Every caller (scan, cache, the Explain page's uploads, the CLI) goes through `open_image`, so
a decompression bomb is refused before decoding, EXIF rotation is applied, and odd modes
(CMYK, 16-bit, palette, RGBA, grayscale) come out as 8-bit RGB.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import UserError

# Refuse anything above this many pixels without decoding it (a 16k x 16k photo is 268 MP).
MAX_PIXELS = 120_000_000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# MAX_PIXELS, checked before decoding, replaces Pillow's DecompressionBombWarning (its error, at
# twice its own limit, still applies). Images are opened from thread pools, where turning the
# warning into an error with `warnings.catch_warnings` is not safe: it swaps process-wide state.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


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
            if width * height > MAX_PIXELS:
                raise UserError("image.bomb", name=name, width=width, height=height, limit=MAX_PIXELS)
            img.load()
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError("image.missing", name=name) from None
    except Image.DecompressionBombError:
        raise UserError("image.bomb", name=name, width="?", height="?", limit=MAX_PIXELS) from None
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
