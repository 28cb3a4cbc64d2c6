"""`python -m core explain RUN IMAGE`: top-k, layer, overlay PNG, float32 heatmap; bad input."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from core.cli import main
from core.models import build_model
from core.atomic import write_json
from core import runs
from core.training import checkpoint

CLASSES = ["circle", "square", "star"]


@pytest.fixture
def run(workspace):
    """A run folder as training leaves it (config + best.pt through the training area's own
    writers), with untrained weights: the CLI's behaviour does not depend on what was learnt."""
    run_dir = workspace.runs / "r-simple"
    run_dir.mkdir()
    config = {"model": {"preset": "simple_cnn"}, "data": str(workspace.splits / "none"), "img_size": 32,
              "classes": CLASSES, "display_names": CLASSES, "mean": [0.5] * 3, "std": [0.25] * 3}
    write_json(run_dir / "config.json", config)
    runs.update_summary(run_dir, status="finished")
    torch.manual_seed(0)
    model = build_model(config["model"], len(CLASSES), 32)
    checkpoint.save({"model": model.state_dict(), "classes": CLASSES, "img_size": 32, "epoch": 1}, run_dir / "best.pt")
    return run_dir


def cli_json(capsys, *argv):
    code = main([*map(str, argv), "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return code, lines[-1]


def test_explain_writes_overlay_and_heatmap_at_the_image_size(run, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (70, 40), (200, 30, 30)).save(photo)
    code, record = cli_json(capsys, "explain", run.name, photo, "--class", "star", "--method", "layercam",
                            "--out", tmp_path / "o.png", "--save-npy", tmp_path / "h.npy")
    assert code == 0
    assert record["layer"] == "features.1" and record["target"] == "star" and len(record["topk"]) == 3
    assert Image.open(tmp_path / "o.png").size == (70, 40)
    heat = np.load(tmp_path / "h.npy")
    assert heat.dtype == np.float32 and heat.shape == (40, 70) and 0 <= heat.min() <= heat.max() <= 1


def test_prose_output_and_layer_list(run, tmp_path, capsys):
    photo = tmp_path / "p.jpg"
    Image.new("RGB", (32, 32)).save(photo)
    assert main(["explain", str(run), str(photo), "--out", str(tmp_path / "x.png")]) == 0
    text = capsys.readouterr().out
    assert "layer features.1" in text and "Wrote" in text
    assert main(["explain", run.name, "--list-layers"]) == 0
    assert "* features.1" in capsys.readouterr().out


def cmyk(path):
    Image.new("CMYK", (50, 30), (0, 255, 255, 0)).save(path, format="JPEG")


def bomb(path):
    """A tiny PNG whose header claims 20000 x 20000 pixels: refused before decoding."""
    import io
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = struct.pack(">II", 20_000, 20_000) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("make,ok", [
    (lambda p: p.write_bytes(b"plain text, not pixels"), False),
    (lambda p: p.write_bytes(open_bytes_truncated()), False),
    (bomb, False),
    (lambda p: Image.new("L", (1, 1)).save(p, format="PNG"), True),
    (lambda p: Image.new("RGBA", (40, 20), (0, 0, 255, 0)).save(p, format="PNG"), True),
    (lambda p: Image.new("L", (40, 20), 90).save(p, format="PNG"), True),
    (cmyk, True),
], ids=["not-image", "truncated", "bomb", "1x1", "rgba", "gray", "cmyk"])
def test_odd_and_bad_images(run, tmp_path, capsys, make, ok):
    path = tmp_path / "input.img"
    make(path)
    code, record = cli_json(capsys, "explain", run.name, path, "--out", tmp_path / "o.png")
    assert code == (0 if ok else 2)
    assert ("error" in record) != ok
    if not ok:
        assert "input.img" in record["error"] and "Traceback" not in record["error"]


def open_bytes_truncated() -> bytes:
    import io
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()[:400]


def test_a_missing_run_or_checkpoint_is_a_clear_error(run, capsys):
    code, record = cli_json(capsys, "explain", "no-such-run", "x.png")
    assert code == 2 and record["key"] == "runs.not_found"
    (run / "best.pt").unlink()
    code, record = cli_json(capsys, "explain", run.name, "--list-layers")
    assert code == 2 and "r-simple" in record["error"]


def test_a_10000_by_8000_photo_is_explained_at_its_size(run, tmp_path):
    from core.data.images import open_image
    from core.explain import explain

    path = tmp_path / "big.jpg"
    Image.new("RGB", (10_000, 8_000), (10, 120, 30)).save(path, quality=50)
    import core

    model, info = core.load_model(run)
    result = explain(model, info, open_image(path), cam_size=(1000, 800))
    assert result.cam.shape == (800, 1000)
