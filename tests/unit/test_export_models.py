"""Every model kind the studio trains exports to ONNX and passes the parity check: the presets,
a block-builder network with SE and CBAM attention, and every torchvision backbone offered.

Random-weight instances at 32 px on 6 test images. Exporting is what takes the time (the dynamo
exporter traces each network): the presets, the spec, resnet18 and mobilenet_v3_small take
2-8 s each on 2 shared cores (27 s together) and always run. The other five backbones take
9-25 s each, 75 s together, twice that when the cores are busy (vgg11_bn writes a 0.5 GB graph:
its classifier alone has 120 M weights at any image size), so they run when
CNN_STUDIO_EXPORT_ALL_BACKBONES=1.
"""
import os

import pytest

from core.export import export_run
from core.models import BACKBONES, PRESETS
from tests.unit.test_export import make_run, split_dir  # noqa: F401 - the shared split fixture

ATTENTION_SPEC = {"spec": {"name": "attention", "blocks": [
    {"out": 8, "bn": True, "act": "leaky_relu", "pool": "max", "attention": "se", "reduction": 4},
    {"out": 16, "kernel": 5, "bn": True, "act": "gelu", "pool": "avg", "attention": "cbam", "reduction": 4},
    {"out": 16, "stride": 2, "act": "silu", "attention": "cbam", "spatial_kernel": 3, "dropout": 0.1},
], "head": {"pool": "gap", "hidden": [12], "dropout": 0.2}}}

ALWAYS = ("resnet18", "mobilenet_v3_small")  # residual blocks; depthwise convs, hardswish, SE
ALL_BACKBONES = os.environ.get("CNN_STUDIO_EXPORT_ALL_BACKBONES") == "1"
KINDS = [{"preset": name} for name in PRESETS] + [ATTENTION_SPEC] + [
    pytest.param({"backbone": name, "pretrained": False}, marks=pytest.mark.skipif(
        name not in ALWAYS and not ALL_BACKBONES, reason="slow export: set CNN_STUDIO_EXPORT_ALL_BACKBONES=1"))
    for name in BACKBONES]


@pytest.mark.parametrize("ref", KINDS, ids=lambda ref: ref.get("preset") or ref.get("backbone") or "spec-se-cbam")
def test_every_model_kind_exports_and_passes_the_parity_check(ref, split_dir, tmp_path):  # noqa: F811
    run_dir = make_run(tmp_path / "runs", ref, split_dir)
    result = export_run(run_dir)
    parity = result.record["parity"]
    assert result.passed, parity["problems"]
    assert parity["source"] == "test" and parity["images"] == 6 and parity["top1_agreement"] == 1.0
    assert parity["max_abs_diff"] <= 1e-4 and parity["predictor_agreement"] == 1.0
    assert parity["torch_accuracy"] == parity["onnx_accuracy"]
