"""`python -m core explain RUN IMAGE`: top-k, layer, overlay PNG, float32 heatmap that lights up
where a hand-set model looks; bad input."""
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from core import runs
from core.atomic import write_json
from core.cli import main
from core.models import build_model
from core.training import checkpoint

CLASSES = ["circle", "square", "star"]


def bright_square_detector() -> torch.nn.Module:
    """A simple_cnn whose weights are set by hand, so where it looks is known in advance.

    Every filter averages its input (positive weights, no bias): after the ReLUs only bright
    places are active. The head sums those activations into "square" and subtracts them from
    "circle". So "square" wins on a bright square, its Grad-CAM must light up that square, and
    "circle" (evidence against) must not.
    """
    model = build_model({"preset": "simple_cnn"}, len(CLASSES), 32)
    with torch.no_grad():
        for layer in (model.features[0].conv, model.features[1].conv, model.classifier.fc1):
            layer.weight.fill_(1.0 / layer.weight[0].numel())
            layer.bias.zero_()
        model.classifier.out.weight.zero_()
        model.classifier.out.weight[CLASSES.index("square")] = 1.0
        model.classifier.out.weight[CLASSES.index("circle")] = -1.0
        model.classifier.out.bias.zero_()
    return model


@pytest.fixture
def run(workspace):
    """A run folder as training leaves it (config + best.pt through the training area's own
    writers), holding the bright-square detector."""
    run_dir = workspace.runs / "r-simple"
    run_dir.mkdir()
    config = {"model": {"preset": "simple_cnn"}, "data": str(workspace.splits / "none"), "img_size": 32,
              "classes": CLASSES, "display_names": CLASSES, "mean": [0.5] * 3, "std": [0.25] * 3}
    write_json(run_dir / "config.json", config)
    runs.update_summary(run_dir, status="finished")
    model = bright_square_detector()
    checkpoint.save({"model": model.state_dict(), "classes": CLASSES, "img_size": 32, "epoch": 1}, run_dir / "best.pt")
    return run_dir


def cli_json(capsys, *argv):
    code = main([*map(str, argv), "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return code, lines[-1]


def square_photo(size=(70, 40), box=(6, 10, 26, 30)) -> Image.Image:
    """A dark photo with a bright square on its left side (box = x0, y0, x1, y1)."""
    photo = Image.new("RGB", size, (10, 10, 10))
    ImageDraw.Draw(photo).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=(250, 250, 250))
    return photo


def peak_and_contrast(heat, box):
    """Where the map is hottest (x, y) and how much hotter the box is than the rest."""
    x0, y0, x1, y1 = box
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    inside = np.zeros(heat.shape, bool)
    inside[y0:y1, x0:x1] = True
    return (int(x), int(y)), float(heat[inside].mean() - heat[~inside].mean())


@pytest.mark.parametrize("method", ["gradcam", "layercam"])
def test_explain_lights_up_the_square_at_the_image_size(run, tmp_path, capsys, method):
    photo, box = tmp_path / "photo.png", (6, 10, 26, 30)
    square_photo(box=box).save(photo)
    code, record = cli_json(capsys, "explain", run.name, photo, "--class", "square", "--method", method,
                            "--out", tmp_path / "o.png", "--save-npy", tmp_path / "h.npy")
    assert code == 0
    assert record["pred"] == "square" and record["target"] == "square" and record["layer"] == "features.1"
    assert len(record["topk"]) == 3 and record["size"] == [70, 40]
    heat = np.load(tmp_path / "h.npy")
    assert heat.dtype == np.float32 and heat.shape == (40, 70) and 0 <= heat.min() <= heat.max() <= 1
    (x, y), contrast = peak_and_contrast(heat, box)
    assert box[0] <= x < box[2] and box[1] <= y < box[3], (x, y)  # not mirrored, transposed or shifted
    assert contrast > 0.4
    picture = np.asarray(Image.open(tmp_path / "o.png").convert("RGB"), dtype=float)
    assert picture.shape == (40, 70, 3)
    redness = picture[..., 0] - picture[..., 2]  # jet: red where it looked, blue where not
    assert redness[box[1]:box[3], box[0]:box[2]].mean() > redness[:, 40:].mean() + 50
    # Explaining "circle", which the square counts against, lights up nothing there.
    code, record = cli_json(capsys, "explain", run.name, photo, "--class", "circle", "--method", method,
                            "--out", tmp_path / "c.png", "--save-npy", tmp_path / "c.npy")
    assert code == 0 and record["target"] == "circle"
    assert peak_and_contrast(np.load(tmp_path / "c.npy"), box)[1] < 0.1


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

    path, box = tmp_path / "big.jpg", (7_000, 1_000, 9_000, 3_000)  # a bright square, top right
    square_photo((10_000, 8_000), box).save(path, quality=50)
    import core

    model, info = core.load_model(run)
    result = explain(model, info, open_image(path), target="square", cam_size=(1000, 800))
    assert result.cam.shape == (800, 1000)
    (x, y), contrast = peak_and_contrast(result.cam, tuple(v // 10 for v in box))
    assert 700 <= x < 900 and 100 <= y < 300 and contrast > 0.4


def test_layer_list_names_each_map_once_with_its_raw_names_and_the_course_layer(run, tmp_path, capsys):
    code, record = cli_json(capsys, "explain", run.name, "--list-layers")
    assert code == 0 and record["default"] == "features.1" and record["course"] == "features.1.conv"
    listed = {x["name"]: x for x in record["layers"]}
    assert "features" not in listed and "features.1.pool" not in listed  # the same map as block 2's output
    assert listed["features.1"]["label"] == "block 2 output, 8x8"
    assert set(listed["features.1"]["same_as"]) == {"features", "features.1.pool"}
    assert main(["explain", run.name, "--list-layers"]) == 0
    text = capsys.readouterr().out
    assert "* features.1" in text and "c features.1.conv" in text and "= features, features.1.pool" in text
    photo = tmp_path / "p.png"
    square_photo().save(photo)
    for layer, used in (("course", "features.1.conv"), ("features", "features"), ("features.1.pool", "features.1.pool")):
        code, record = cli_json(capsys, "explain", run.name, photo, "--layer", layer, "--out", tmp_path / "o.png")
        assert code == 0 and record["layer"] == used  # raw names, aliases included, are still taken
