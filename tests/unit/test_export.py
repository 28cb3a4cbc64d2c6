"""ONNX export: the folder, its parity check (and what the check catches), predict.py, the CLI."""
import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from torch import nn

from core import runs
from core.atomic import write_json
from core.cli import main
from core.data.cache import decode_resized
from core.data.demo import make_demo
from core.data.files import class_images
from core.data.split import split_dataset
from core.errors import UserError
from core.export import FILES, export_run, recheck, zip_bytes
from core.export.folder import TEMPLATE, parity_images
from core.inference import load_model, predict
from core.models import build_model
from core.training import checkpoint

CLASSES = ["circle", "square", "triangle"]
NAMES = ["Circle", "Square", "Triangle"]
# Not the ImageNet figures: a graph that forgot the normalisation, or used other numbers, fails.
MEAN, STD = [0.40, 0.45, 0.50], [0.20, 0.22, 0.25]


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory) -> Path:
    """3 demo classes x 6 images: 2 test images per class, a handful for the check."""
    root = tmp_path_factory.mktemp("export-data")
    make_demo(root / "demo", classes=3, per_class=6, size=40, seed=1)
    split_dataset(root / "demo", root / "split", val=0.34, test=0.34, seed=0)
    return root / "split"


def make_run(runs_dir: Path, ref: dict, data: Path, img_size: int = 32, name: str = "r", seed: int = 0) -> Path:
    """A finished run as training leaves it (config + best.pt through the training area's own
    writers), with random weights: parity does not depend on what was learnt."""
    run_dir = Path(runs_dir) / name
    run_dir.mkdir(parents=True)
    write_json(run_dir / "config.json", {
        "model": ref, "data": str(data), "img_size": img_size, "classes": CLASSES, "display_names": NAMES,
        "mean": MEAN, "std": STD})
    runs.update_summary(run_dir, status="finished")
    torch.manual_seed(seed)
    model = build_model(ref, len(CLASSES), img_size)
    checkpoint.save({"model": model.state_dict(), "classes": CLASSES, "img_size": img_size, "epoch": 1},
                    run_dir / "best.pt")
    return run_dir


def split_test_images(split_dir: Path) -> list[Path]:
    return [p for name in CLASSES for p in class_images(split_dir / "test" / name)]


@pytest.fixture(scope="module")
def exported(split_dir, tmp_path_factory):
    """One simple_cnn run exported once; tests that damage the folder work on a copy."""
    run_dir = make_run(tmp_path_factory.mktemp("runs"), {"preset": "simple_cnn"}, split_dir)
    return run_dir, export_run(run_dir)


def copy_of(result, tmp_path) -> Path:
    return Path(shutil.copytree(result.folder, tmp_path / "copy"))


def problem_keys(result) -> list[str]:
    return [p["key"] for p in result.parity.problems]


def test_the_folder_holds_a_checked_model_labels_preprocessing_and_predictor(exported, split_dir):
    run_dir, result = exported
    assert result.folder == run_dir / "export" / "onnx"
    assert sorted(p.name for p in result.folder.iterdir()) == sorted(FILES)
    assert json.loads((result.folder / "labels.json").read_text()) == {"classes": CLASSES, "display_names": NAMES}
    prep = json.loads((result.folder / "preprocess.json").read_text())
    assert (prep["size"], prep["mean"], prep["std"]) == (32, MEAN, STD)
    assert prep["input"]["dtype"] == "uint8" and prep["input"]["shape"] == [1, 3, 32, 32]
    record = json.loads((result.folder / "export.json").read_text())
    parity = record["parity"]
    n = len(split_test_images(split_dir))
    assert record["passed"] and result.passed and parity["problems"] == []
    assert (parity["source"], parity["images"], parity["top1_agreement"]) == ("test", n, 1.0)
    assert parity["max_abs_diff"] <= 1e-4 and parity["torch_accuracy"] == parity["onnx_accuracy"]
    assert parity["predictor_images"] == 4 and parity["predictor_agreement"] == 1.0
    assert record["opset"] >= 18 and record["checkpoint"] == "best.pt"


def test_the_graph_takes_raw_uint8_pixels_and_normalises_inside(exported, split_dir):
    """Checked here without the parity code: the studio's own predict against the bare graph."""
    run_dir, result = exported
    session = ort.InferenceSession(str(result.folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type, i.shape) for i in session.get_inputs()] == [("image", "tensor(uint8)", [1, 3, 32, 32])]
    assert [o.name for o in session.get_outputs()] == ["logits", "probs"]
    model, info = load_model(run_dir)
    for path in split_test_images(split_dir)[:3]:
        logits, probs = session.run(None, {"image": decode_resized(path, 32).numpy()[None]})
        expected = predict(model, [path], info).numpy()
        assert np.abs(probs - expected).max() <= 1e-5
        assert np.allclose(np.exp(logits) / np.exp(logits).sum(), probs, atol=1e-6)


def test_a_corrupted_model_onnx_fails_the_check(exported, workspace, tmp_path, capsys):
    run_dir, result = exported
    folder = copy_of(result, tmp_path)
    data = (folder / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(data[: len(data) // 2])
    checked = recheck(run_dir, folder)
    assert not checked.passed and problem_keys(checked) == ["export.check.onnx_unreadable"]
    assert json.loads((folder / "export.json").read_text())["passed"] is False
    # and through the CLI: exit 2, the problem in the error line
    code = main(["export", str(run_dir), "--out", str(folder), "--check-only", "--json"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 2 and lines[-1]["key"] == "export.check.failed"
    assert "onnxruntime cannot load model.onnx" in lines[-1]["error"]


def test_a_model_onnx_with_other_weights_fails_on_agreement_and_difference(exported, tmp_path):
    """A file that loads and runs, but is not the run's network: only the figures can tell."""
    run_dir, result = exported
    folder = copy_of(result, tmp_path)
    graph = onnx.load(str(folder / "model.onnx"))
    rng = np.random.default_rng(0)
    for init in graph.graph.initializer:
        values = onnx.numpy_helper.to_array(init)
        if values.dtype == np.float32 and values.ndim == 4:  # the conv kernels
            init.CopyFrom(onnx.numpy_helper.from_array(rng.normal(size=values.shape).astype(np.float32), init.name))
    onnx.save(graph, str(folder / "model.onnx"))
    checked = recheck(run_dir, folder)
    assert "export.check.max_diff" in problem_keys(checked) and "export.check.predictor_mismatch" in problem_keys(checked)
    assert checked.parity.max_abs_diff > 1e-2


def test_labels_json_in_another_order_fails_the_check(exported, tmp_path):
    """predict.py names classes from labels.json: a reordered file would name the wrong class."""
    run_dir, result = exported
    folder = copy_of(result, tmp_path)
    write_json(folder / "labels.json", {"classes": CLASSES[::-1], "display_names": NAMES[::-1]})
    checked = recheck(run_dir, folder)
    assert problem_keys(checked) == ["export.check.labels_mismatch", "export.check.predictor_mismatch"]
    assert checked.parity.top1_agreement == 1.0  # the graph itself is fine


def test_preprocess_json_with_another_size_fails_the_check(exported, tmp_path):
    run_dir, result = exported
    folder = copy_of(result, tmp_path)
    prep = json.loads((folder / "preprocess.json").read_text())
    write_json(folder / "preprocess.json", prep | {"size": 48})
    checked = recheck(run_dir, folder)
    assert problem_keys(checked) == ["export.check.preprocess_mismatch", "export.check.predictor_failed"]


def test_a_predict_py_that_resizes_differently_fails_the_check(exported, tmp_path):
    """The complaint this check exists for: the graph is right, the shipped preprocessing is not."""
    run_dir, result = exported
    folder = copy_of(result, tmp_path)
    script = (folder / "predict.py").read_text()
    assert "Image.Resampling.BILINEAR" in script
    (folder / "predict.py").write_text(script.replace("Image.Resampling.BILINEAR", "Image.Resampling.NEAREST"))
    checked = recheck(run_dir, folder)
    assert problem_keys(checked) == ["export.check.predictor_mismatch"]
    assert checked.parity.top1_agreement == 1.0 and checked.parity.predictor_max_abs_diff > 1e-4


def test_the_zip_holds_the_folder_under_the_run_name(exported):
    run_dir, result = exported
    archive = zipfile.ZipFile(BytesIO(zip_bytes(result.folder)))
    assert sorted(archive.namelist()) == sorted(f"{run_dir.name}-onnx/{f}" for f in FILES)
    assert archive.read(f"{run_dir.name}-onnx/model.onnx") == (result.folder / "model.onnx").read_bytes()


@pytest.mark.parametrize("argv, key", [
    (["--opset", "11"], "export.bad_opset"),
    (["--opset", "99"], "export.bad_opset"),
    (["--format", "tflite"], "export.bad_format"),
])
def test_cli_bad_options_exit_2_with_a_message(exported, workspace, capsys, argv, key):
    run_dir, _ = exported
    assert main(["export", str(run_dir), *argv, "--json"]) == 2
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["key"] == key


def test_a_missing_run_exits_2(workspace, capsys):
    assert main(["export", "no-such-run", "--json"]) == 2
    assert "error" in json.loads(capsys.readouterr().out.splitlines()[-1])


def test_a_folder_of_the_users_is_never_replaced(exported, workspace, tmp_path, capsys):
    run_dir, _ = exported
    mine = tmp_path / "my-photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"not touched")
    assert main(["export", str(run_dir), "--out", str(mine), "--json"]) == 2
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["key"] == "export.out_not_ours"
    assert [p.name for p in mine.iterdir()] == ["holiday.jpg"]


class CumMaxNet(nn.Module):
    """A network with an operator the ONNX exporter cannot translate (aten.cummax)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, len(CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cummax(x.mean(dim=(2, 3)), dim=1).values)


def test_a_model_the_exporter_cannot_translate_names_the_operator(exported, workspace, monkeypatch, capsys):
    run_dir, result = exported
    before = (result.folder / "model.onnx").read_bytes()
    real_load = load_model

    def load_with_cummax(run, which="best"):
        _, info = real_load(run, which)
        return CumMaxNet().eval(), info

    monkeypatch.setattr("core.inference.load_model", load_with_cummax)
    with pytest.raises(UserError) as err:
        export_run(run_dir)
    assert err.value.key == "export.unsupported_op" and err.value.params["op"] == "aten.cummax.default"
    assert main(["export", str(run_dir), "--json"]) == 2
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert line["key"] == "export.unsupported_op" and "aten.cummax" in line["error"]
    # the earlier export is still there, and no half-built folder is left beside it
    assert (result.folder / "model.onnx").read_bytes() == before
    assert [p.name for p in result.folder.parent.iterdir()] == ["onnx"]


def test_cli_exports_a_run_without_its_split_checked_on_demo_images_with_any_batch_size(
        split_dir, workspace, tmp_path, capsys):
    run_dir = make_run(tmp_path / "runs", {"preset": "simple_cnn"}, tmp_path / "gone", seed=1)
    out = tmp_path / "cli-export"
    assert main(["export", str(run_dir), "--out", str(out), "--check-only"]) == 2  # nothing there yet
    assert "holds no export" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--out", str(out), "--dynamic-batch"]) == 0
    text = capsys.readouterr().out
    assert "input image: uint8 RGB [N, 3, 32, 32]" in text
    assert "Parity check on demo images (the run's split is not available) (16 images)" in text
    assert "top-1 agreement" in text and "100.00%" in text and "Parity check passed" in text
    assert main(["export", str(run_dir), "--out", str(out), "--check-only", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[-1])
    parity = record["parity"]
    assert record["passed"] and record["folder"] == str(out) and record["dynamic_batch"]
    assert (parity["source"], parity["images"], parity["top1_agreement"]) == ("demo", 16, 1.0)
    assert parity["torch_accuracy"] is not None  # circle, square, triangle are demo shapes
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"
    pixels = np.stack([decode_resized(p, 32).numpy() for p in split_test_images(split_dir)])
    probs = session.run(["probs"], {"image": pixels})[0]
    model, info = load_model(run_dir)
    assert np.abs(probs - predict(model, split_test_images(split_dir), info).numpy()).max() <= 1e-5


def test_parity_images_fall_back_from_test_to_val(split_dir, tmp_path):
    _, info = load_model(make_run(tmp_path / "runs", {"preset": "simple_cnn"}, split_dir))
    no_test = tmp_path / "no-test"
    shutil.copytree(split_dir / "val", no_test / "val")
    images = parity_images(info, {"data": str(no_test)}, tmp_path / "scratch")
    assert images.source == "val" and len(images.paths) == len(images.labels) > 0
    assert all(CLASSES[label] == path.parent.name for path, label in zip(images.paths, images.labels))


# --- predict.py: the app's preprocessing, without torch ------------------------------------

def load_template():
    spec = importlib.util.spec_from_file_location("exported_predict", TEMPLATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def odd_images(folder: Path) -> list[Path]:
    """Modes and orientations the studio's open_image handles, each written to a file."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    made = {
        "rgba.png": Image.fromarray(np.dstack([rgb, rng.integers(0, 256, (45, 70), dtype=np.uint8)]), "RGBA"),
        "palette.gif": Image.fromarray(rgb).convert("P"),
        "grey.jpg": Image.fromarray(rgb).convert("L"),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
        "sixteen.png": Image.fromarray((rng.integers(0, 65536, (45, 70))).astype(np.uint16)),
        "la.png": Image.fromarray(rgb).convert("LA"),
        "tiny.bmp": Image.fromarray(rgb[:5, :7]),
    }
    paths = []
    for name, img in made.items():
        img.save(folder / name)
        paths.append(folder / name)
    rotated = Image.fromarray(rgb)
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees on display
    rotated.save(folder / "exif-rotated.jpg", exif=exif)
    return paths + [folder / "exif-rotated.jpg"]


def test_predict_py_prepares_every_kind_of_image_exactly_like_the_studio(tmp_path):
    shipped = load_template()
    for path in odd_images(tmp_path):
        for size in (32, 57):
            ours = decode_resized(path, size).numpy()
            theirs = shipped.to_input(shipped.open_image(path), size)
            assert theirs.dtype == np.uint8 and np.array_equal(ours, theirs), (path.name, size)


def studio_top1(run_dir: Path, paths: list[Path]) -> list[str]:
    model, info = load_model(run_dir)
    return [info.classes[i] for i in predict(model, paths, info).argmax(1).tolist()]


def run_predict_py(python: list[str], folder: Path, paths: list[Path]) -> list[str]:
    done = subprocess.run([*python, str(folder / "predict.py"), "--json", "--top", "1", *map(str, paths)],
                          capture_output=True, text=True, timeout=300, cwd=folder, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["top"][0]["class"] for line in done.stdout.splitlines()]


BLOCK_TORCH = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")


def test_predict_py_never_imports_torch(exported, split_dir):
    """With `import torch` made to fail, predict.py still answers like the studio."""
    run_dir, result = exported
    paths = split_test_images(split_dir)
    assert run_predict_py([sys.executable, "-I", "-c", BLOCK_TORCH], result.folder, paths) == studio_top1(run_dir, paths)


def clean_python(root: Path) -> Path | None:
    """A new venv holding only onnxruntime, numpy and Pillow (from the package index pip is set
    up with, or its local wheels), or None when pip cannot install them here."""
    venv = root / "clean-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                           "onnxruntime", "numpy", "pillow"], capture_output=True, text=True, timeout=600, check=False)
    return python if done.returncode == 0 else None


def test_predict_py_in_a_clean_venv_gives_the_studios_top1_on_the_demo_test_split(exported, split_dir, tmp_path):
    run_dir, result = exported
    python = clean_python(tmp_path)
    if python is None:
        pytest.skip("pip could not install onnxruntime, numpy and pillow into a new venv (no package index or "
                    "wheels reachable); test_predict_py_never_imports_torch still covers predict.py without torch")
    assert subprocess.run([str(python), "-c", "import torch"], capture_output=True, check=False).returncode != 0
    shipped = Path(shutil.copytree(result.folder, tmp_path / "shipped"))  # away from the run and the repo
    paths = split_test_images(split_dir)
    assert run_predict_py([str(python), "-I"], shipped, paths) == studio_top1(run_dir, paths)
