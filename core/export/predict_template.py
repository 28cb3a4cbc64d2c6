#!/usr/bin/env python3
"""Class predictions from the model.onnx beside this file. Needs only onnxruntime, numpy and Pillow.

    python predict.py photo.jpg [more.jpg ...] [--top 5] [--json]

Written by CNN Studio's export (this folder also holds model.onnx, labels.json and
preprocess.json). A photo is prepared exactly as the studio prepares it:
  1. opened with Pillow, EXIF orientation applied;
  2. converted to 8-bit RGB (transparency flattened onto white, 16-bit scaled to 8-bit);
  3. resized with Pillow's bilinear filter (antialiased when shrinking) to R x R, R being
     preprocess.json's `resize_to` (SIZE when absent): stretched (`resize_mode` "square":
     `img.resize((R, R), Image.BILINEAR)`), or shorter side to R keeping the aspect ratio,
     then the central R x R ("shorter", as torchvision's Resize(R) + CenterCrop(R));
  4. when R > SIZE, the central SIZE x SIZE (as torchvision's CenterCrop(SIZE));
  5. given to the model as uint8 [N, 3, SIZE, SIZE] (RGB, channels first, values 0-255).
The mean/std normalisation is inside model.onnx: do not normalise the input yourself.
The model's outputs are `logits` and `probs` [N, classes]; column i is labels.json's class i.

From Python: `Predictor(folder).predict([image_path_or_PIL_image, ...])` -> probabilities.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
# The studio refuses images above this many pixels before decoding them (decompression bombs).
MAX_PIXELS = 120_000_000
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS


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


def open_image(path: str | Path) -> Image.Image:
    """An upright 8-bit RGB image, as the studio opens it."""
    with Image.open(path) as img:
        if img.size[0] * img.size[1] > MAX_PIXELS:
            raise ValueError(f"{path}: {img.size[0]} x {img.size[1]} pixels is more than {MAX_PIXELS}")
        img.load()
        return to_rgb(ImageOps.exif_transpose(img))


def centre(img: Image.Image, size: int) -> Image.Image:
    left, top = round((img.width - size) / 2.0), round((img.height - size) / 2.0)
    return img.crop((left, top, left + size, top + size))


def to_input(img: Image.Image, size: int, resize_to: int | None = None, mode: str = "square") -> np.ndarray:
    """uint8 [3, size, size]: the model's input for one image."""
    side = resize_to or size
    img = img.convert("RGB")
    if mode == "shorter":
        w, h = img.size
        img = centre(img.resize((side, int(side * h / w)) if w <= h else (int(side * w / h), side),
                                Image.Resampling.BILINEAR), side)
    else:
        img = img.resize((side, side), Image.Resampling.BILINEAR)
    if side != size:
        img = centre(img, size)
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))


class Predictor:
    """model.onnx with its labels and preprocessing, read from an export folder."""

    def __init__(self, folder: str | Path = HERE, threads: int = 0) -> None:
        folder = Path(folder)
        self.labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
        self.preprocess = json.loads((folder / "preprocess.json").read_text(encoding="utf-8"))
        self.size = int(self.preprocess["size"])
        self.resize_to = int(self.preprocess.get("resize_to") or self.size)
        self.resize_mode = self.preprocess.get("resize_mode", "square")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
        batch = self.session.get_inputs()[0].shape[0]
        self.batch = batch if isinstance(batch, int) else 64  # a fixed batch size, or "batch" (any)

    def predict(self, images: list) -> np.ndarray:
        """Class probabilities [N, classes] for image paths or PIL images."""
        arrays = [to_input(img if isinstance(img, Image.Image) else open_image(img), self.size, self.resize_to,
                           self.resize_mode) for img in images]
        out = [self.session.run(["probs"], {"image": np.stack(arrays[i:i + self.batch])})[0]
               for i in range(0, len(arrays), self.batch)]
        return np.concatenate(out) if out else np.zeros((0, len(self.labels["classes"])), np.float32)

    def top(self, probs: np.ndarray, k: int) -> list[dict]:
        order = np.argsort(-probs, kind="stable")[:k]
        return [{"index": int(i), "class": self.labels["classes"][i], "name": self.labels["display_names"][i],
                 "p": float(probs[i])} for i in order]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Top-k classes of images with model.onnx.")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--top", type=int, default=5, help="how many classes to print (default 5)")
    parser.add_argument("--json", action="store_true", help="one JSON object per image")
    args = parser.parse_args(argv)
    predictor = Predictor()
    failed = 0
    for path in args.images:
        try:
            probs = predictor.predict([path])[0]
        except (OSError, ValueError, SyntaxError) as err:
            print(f"{path}: cannot read this image ({err})", file=sys.stderr)
            failed += 1
            continue
        top = predictor.top(probs, max(1, args.top))
        if args.json:
            print(json.dumps({"image": str(path), "top": top}, ensure_ascii=False))
        else:
            print(path)
            print("\n".join(f"  {r['name']:<24} {r['p']:.4f}" for r in top))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
