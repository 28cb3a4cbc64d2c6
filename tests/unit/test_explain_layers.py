"""The layers the Explain page and CLI offer: one per distinct map, friendly names built from data
(kind + number + map size) in English and Chinese, the course's layer per preset, raw names kept."""
import re

import pytest
import torch
from torch import nn

from core.explain import explain, feature_layers
from core.explain.layers import (
    COURSE,
    course_layer,
    default_layer,
    distinct,
    kept_layer,
    layer_label,
    resolve_layer,
)
from core.models import PRESETS, build_model
from core.models.builder import PRESET_SPECS

SIZE = 64
DROPOUT_SPEC = {"spec": {"blocks": [{"out": 8, "pool": "max", "dropout": 0.3},
                                    {"out": 8, "bn": True, "attention": "cbam", "reduction": 4}],
                         "head": {"pool": "gap"}}}


def model_for(ref, size=SIZE):
    """The model with weights and BatchNorm statistics moved as training moves them: fast_cnn
    starts with identity convolutions and BatchNorm without a learnt scale, identity maps too."""
    torch.manual_seed(0)
    model = build_model(ref, 3, size).train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        model(torch.rand(4, 3, size, size) * 2 + 0.5)
    return model.eval()


def outputs(model, size=SIZE):
    """Every module's output for one random image, copied the moment the module returned it."""
    seen = {}

    def keep(name, out):  # returns None: a hook that returned the copy would replace the output
        seen.setdefault(name, out.detach().clone() if isinstance(out, torch.Tensor) else None)

    handles = [m.register_forward_hook(lambda _m, _i, out, name=name: keep(name, out))
               for name, m in model.named_modules() if name]
    with torch.no_grad():
        model(torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1)))
    for handle in handles:
        handle.remove()
    return seen


REFS = {p: {"preset": p} for p in PRESETS} | {"resnet18": {"backbone": "resnet18"}, "dropout_spec": DROPOUT_SPEC}


@pytest.mark.parametrize("kind", list(REFS))
def test_each_map_is_offered_once_and_its_other_names_return_that_same_map(kind):
    model = model_for(REFS[kind])
    layers = feature_layers(model, SIZE)
    menu = distinct(layers)
    out = outputs(model)
    assert len(menu) < len(layers)  # there were duplicates (containers ending in their last child)
    for i, a in enumerate(menu):  # no two offered layers show the same map
        for b in menu[i + 1:]:
            same = out[a.name].shape == out[b.name].shape and torch.equal(out[a.name], out[b.name])
            assert not same, (a.name, b.name)
    for layer in layers:  # every name left out returns exactly the map of the one kept for it
        kept = kept_layer(layers, layer.name)
        assert torch.equal(out[layer.name], out[kept.name]), (layer.name, kept.name)
        assert layer.name == kept.name or layer.name in kept.same_as


def test_containers_equal_to_their_last_child_are_left_out_and_an_in_place_relu_is_not_merged():
    simple = feature_layers(model_for({"preset": "simple_cnn"}), SIZE)
    offered = [x.name for x in distinct(simple)]
    assert "features" not in offered and "features.1.pool" not in offered and "features.0.pool" not in offered
    assert {"features.0", "features.1", "features.1.conv"} <= set(offered)
    assert set(kept_layer(simple, "features").same_as) == {"features", "features.1.pool"}
    # torchvision's stem: bn1 then ReLU(inplace=True) on the very same tensor: two different maps
    resnet = [x.name for x in distinct(feature_layers(model_for({"backbone": "resnet18"}), SIZE))]
    assert {"bn1", "relu", "layer4"} <= set(resnet) and "layer4.1" not in resnet
    spec = [x.name for x in distinct(feature_layers(model_for(DROPOUT_SPEC), SIZE))]
    assert "features.0.drop" not in spec  # an eval-mode dropout hands on its input


def test_friendly_names_in_english_and_chinese_from_kind_number_and_size():
    layers = feature_layers(model_for({"preset": "cbam_cnn"}), SIZE)
    by_name = {x.name: x for x in layers}
    assert by_name["features.1"].parts == (("block", 2),)
    assert layer_label(by_name["features.1"]) == "block 2 output, 16x16"
    assert layer_label(by_name["features.1"], "zh") == "第 2 块输出，16x16"
    assert layer_label(by_name["features.2.conv"], "en") == "block 3 · conv, 16x16"
    assert layer_label(by_name["features.2.conv"], "zh") == "第 3 块 · 卷积，16x16"
    assert layer_label(by_name["features.0.attn.channel"]) == "block 1 · channel attention, 32x32"
    assert layer_label(by_name["features.2.conv"], "en", course=True) == "block 3 · conv, 16x16 (course layer)"
    resnet = {x.name: x for x in feature_layers(model_for({"preset": "resnet18_cbam"}), SIZE)}
    assert layer_label(resnet["layer4.1.conv2"]) == "stage 4 · block 2 · conv 2, 2x2"
    assert layer_label(resnet["layer3"], "zh") == "第 3 阶段输出，4x4"
    assert layer_label(resnet["att4.1"]) == "stage 4 · spatial attention, 2x2"


@pytest.mark.parametrize("kind", list(REFS) + ["mobilenet_v3_small"])
def test_offered_names_are_unique_and_fully_translated(kind):
    ref = REFS.get(kind, {"backbone": kind})
    menu = distinct(feature_layers(model_for(ref), SIZE))
    for lang in ("en", "zh"):
        labels = [layer_label(x, lang) for x in menu]
        assert len(set(labels)) == len(labels), [x for x in labels if labels.count(x) > 1][:3]
    zh = [re.sub(r"\d+x\d+", "", layer_label(x, "zh")) for x in menu]  # the map size: 16x16
    assert not [x for x in zh if re.search(r"[A-Za-z]", x)], "English words in Chinese layer names"


def test_the_course_layer_of_each_preset():
    resnet = model_for({"preset": "resnet18_cbam"})
    names = [x.name for x in feature_layers(resnet, SIZE)]
    assert course_layer(resnet, names) == "layer4.1.conv2"
    assert resnet.get_submodule("layer4.1.conv2") is resnet.layer4[-1].conv2  # the last conv of layer4
    assert default_layer(resnet, names) == "att4"  # the page's default is still offered beside it
    for preset in PRESET_SPECS:  # builder presets (a new one included): the last block's conv
        model = model_for({"preset": preset})
        names = [x.name for x in feature_layers(model, SIZE)]
        assert course_layer(model, names) == f"features.{len(model.features) - 1}.conv", preset
    for preset in PRESETS:  # every preset: a real convolution (not a one-channel attention map), the last one
        model = model_for({"preset": preset})
        names = [x.name for x in feature_layers(model, SIZE)]
        chosen = model.get_submodule(course_layer(model, names))
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.out_channels > 1]
        assert chosen is convs[-1], preset


def test_raw_names_and_course_are_accepted_and_an_alias_explains_like_the_layer_it_stands_for():
    from PIL import Image

    model = model_for({"preset": "simple_cnn"}, 32)
    info = {"img_size": 32, "classes": ["a", "b", "c"], "mean": [0.5] * 3, "std": [0.25] * 3}
    names = [x.name for x in feature_layers(model, 32)]
    assert resolve_layer(model, "features", names) == "features"
    assert resolve_layer(model, COURSE, names) == "features.1.conv"
    photo = Image.new("RGB", (40, 30), (200, 30, 60))
    kept = explain(model, info, photo, layer="features.1")
    for alias in ("features", "features.1.pool"):
        other = explain(model, info, photo, layer=alias)
        assert other.layer == alias
        torch.testing.assert_close(torch.from_numpy(other.cam), torch.from_numpy(kept.cam))
    assert explain(model, info, photo, layer=COURSE).layer == "features.1.conv"
