"""Presets and backbones: the course's exact parameter counts; a training step lowers the loss at every size."""
import json

import pytest
import torch

from core.errors import UserError
from core.models import (
    BACKBONES,
    PRESET_SPECS,
    PRESETS,
    build_model,
    describe_ref,
    load_ref,
)
from core.models.builder import feature_sizes, normalize_spec

SIZES = (32, 64, 128, 224)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("preset", "classes", "size", "count"), [
    ("simple_cnn", 10, 32, 2_122_186),
    ("cbam_cnn", 10, 32, 1_150_896),
    ("resnet18_cbam", 5, 224, 11_485_645),
    ("resnet18_cbam", 5, 32, 11_485_645),
    ("catdog_cnn", 2, 224, 51_475_010),   # the day-43 cats-vs-dogs SimpleCNN
])
def test_presets_have_the_course_parameter_counts(preset, classes, size, count):
    assert n_params(build_model({"preset": preset}, classes, size)) == count


def test_the_catdog_cnn_is_the_lessons_network_layer_for_layer():
    """conv 3x3/pad 1 + ReLU + 2x2 max-pool three times (32, 64, 128, no batch norm), flatten,
    fc 512, ReLU, dropout 0.5, fc classes; the fc input follows the image size."""
    from torch import nn

    for size, flat in ((224, 128 * 28 * 28), (64, 128 * 8 * 8), (96, 128 * 12 * 12)):
        model = build_model({"preset": "catdog_cnn"}, 2, size)
        kinds = [type(m) for m in model.modules() if not isinstance(m, nn.Sequential) and m is not model]
        assert kinds == [nn.Conv2d, nn.ReLU, nn.MaxPool2d] * 3 + [nn.Flatten, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [(32, (3, 3), (1, 1)), (64, (3, 3), (1, 1)),
                                                                               (128, (3, 3), (1, 1))]
        fc1, fc2 = [m for m in model.modules() if isinstance(m, nn.Linear)]
        assert (fc1.in_features, fc1.out_features, fc2.out_features) == (flat, 512, 2)
        assert next(m for m in model.modules() if isinstance(m, nn.Dropout)).p == 0.5
        assert model(torch.zeros(1, 3, size, size)).shape == (1, 2)


def _a_step_lowers_the_loss(model, size):
    """One optimizer step on a fixed batch must lower that batch's loss: the gradients reach the
    weights and point downhill, not merely have the right shapes. The same seed before each
    forward gives both passes the same dropout masks."""
    model.train()
    # BatchNorm over a 1x1 map of two images is degenerate (every value becomes +-1): small
    # sizes get more images.
    n = 8 if size <= 32 else 2
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(size))
    y = torch.arange(n) % 3
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    torch.manual_seed(1)
    out = model(x)
    assert out.shape == (n, 3)
    before = torch.nn.functional.cross_entropy(out, y)
    before.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    optimizer.step()
    with torch.no_grad():
        torch.manual_seed(1)
        after = torch.nn.functional.cross_entropy(model(x), y)
    assert after < before, (size, float(before), float(after))
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", PRESETS + BACKBONES)
def test_every_preset_and_backbone_trains_at_every_size(name):
    torch.manual_seed(0)
    ref = {"preset": name} if name in PRESETS else {"backbone": name}
    model = None
    for size in SIZES:
        # Flatten heads are sized for one input size; the others take any size.
        if model is None or name in PRESET_SPECS:
            model = build_model(ref, 3, size)
        _a_step_lowers_the_loss(model, size)


@pytest.mark.parametrize("preset", sorted(PRESET_SPECS))
def test_flatten_size_follows_the_input_size_up_to_512(preset):
    spec = normalize_spec(PRESET_SPECS[preset])
    blocks = len(spec["blocks"])
    for size in (32, 100, 224, 333, 512):
        assert feature_sizes(spec, size)[-1] == size // 2**blocks


def test_bad_references_are_user_errors():
    for ref, key in [
        ({"preset": "alexnet"}, "models.unknown_preset"),
        ({"backbone": "vit_b_16"}, "models.unknown_backbone"),
        ({"preset": "simple_cnn", "backbone": "resnet18"}, "models.ref_bad"),
        ("simple_cnn", "models.ref_bad"),
    ]:
        with pytest.raises(UserError) as err:
            build_model(ref, 3, 32)
        assert err.value.key == key
    with pytest.raises(UserError, match="classes"):
        build_model({"preset": "simple_cnn"}, 0, 32)
    with pytest.raises(UserError) as err:
        build_model({"preset": "simple_cnn"}, 3, 4)
    assert err.value.key == "models.bad_img_size"


def test_load_ref_accepts_names_files_and_saved_specs(tmp_path):
    assert load_ref("cbam_cnn") == {"preset": "cbam_cnn"}
    assert load_ref("resnet50")["backbone"] == "resnet50"
    (tmp_path / "bare.json").write_text(json.dumps(PRESET_SPECS["simple_cnn"]))
    assert load_ref(tmp_path / "bare.json") == {"spec": PRESET_SPECS["simple_cnn"]}
    (tmp_path / "mine.json").write_text(json.dumps({"name": "mine", "preset": "cbam_cnn"}))
    assert load_ref("mine", tmp_path)["preset"] == "cbam_cnn"
    (tmp_path / "broken.json").write_text("{not json")
    for bad, key in [("broken", "models.ref_unreadable"), ("missing", "models.ref_not_found")]:
        with pytest.raises(UserError) as err:
            load_ref(bad, tmp_path)
        assert err.value.key == key


def test_describe_ref_gives_short_labels():
    assert describe_ref({"preset": "simple_cnn"}) == "simple_cnn"
    assert describe_ref({"backbone": "resnet18", "pretrained": True}) == "resnet18 (pretrained)"
    assert describe_ref({"name": "my net", "spec": {}}) == "my net"
    assert describe_ref({"spec": {"blocks": []}}) == "custom"
