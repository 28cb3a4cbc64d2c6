"""Refresh the README's screenshots from the last e2e journey run.

    ./scripts/test.sh tests/e2e/test_journey.py && .venv/bin/python scripts/readme_screenshots.py

The journey test writes full-page screenshots to artifacts/screenshots/ (ignored by git); this
keeps the top of each page, at three quarters of the size, in docs/screenshots/.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SOURCE, TARGET = ROOT / "artifacts" / "screenshots", ROOT / "docs" / "screenshots"
PAGES = {  # README name: (journey screenshot, pixels kept from the top)
    "data": ("journey-1-data.png", 1500),
    "model": ("journey-2-model.png", 1500),
    "training": ("journey-3-training-live.png", 1500),
    "compare": ("journey-4-compare.png", 1700),
    "explain": ("journey-5-explain.png", 1800),
}


def main() -> None:
    TARGET.mkdir(parents=True, exist_ok=True)
    for name, (shot, height) in PAGES.items():
        image = Image.open(SOURCE / shot).convert("RGB")
        image = image.crop((0, 0, image.width, min(height, image.height)))
        image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
        image.save(TARGET / f"{name}.png", optimize=True)
        print(TARGET / f"{name}.png", image.size)


if __name__ == "__main__":
    main()
