"""The block builder: presets are specs, specs round-trip through JSON, bad specs say why."""
import json

import pytest
import torch

from core.errors import UserError
from core.models import PRESET_SPECS, build_model, describe_spec, normalize_spec

GOOD = {
    "blocks": [
        {"out": 8, "kernel": 3, "bn": True, "pool": "max", "attention": "se", "reduction": 4},
        {"out": 16, "kernel": 5, "stride": 2, "act": "gelu", "pool": "avg", "attention": "cbam", "dropout": 0.1},
        {"out": 16, "act": "none"},
    ],
    "head": {"pool": "gap", "hidden": [32, 16], "dropout": 0.2, "act": "silu"},
}


def test_a_spec_round_trips_through_json_to_the_same_network():
    torch.manual_seed(0)
    a = build_model({"spec": GOOD}, 4, 40)
    torch.manual_seed(0)
    b = build_model(json.loads(json.dumps({"spec": GOOD})), 4, 40)
    assert normalize_spec(json.loads(json.dumps(normalize_spec(GOOD)))) == normalize_spec(GOOD)
    a.eval(), b.eval()
    x = torch.rand(2, 3, 40, 40)
    torch.testing.assert_close(a(x), b(x))
    assert a(x).shape == (2, 4)


def test_presets_are_builder_specs():
    model = build_model({"spec": PRESET_SPECS["cbam_cnn"]}, 10, 32)
    assert sum(p.numel() for p in model.parameters()) == 1_150_896
    assert [type(m).__name__ for m in model.features[0]] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "CBAM"]


def test_text_view_is_one_line_per_block_and_a_head():
    lines = describe_spec(GOOD)
    assert len(lines) == 4
    assert "CBAM(r=16, k=7)" in lines[1] and "s2" in lines[1]
    assert lines[-1].startswith("head: global avg pool - fc 32")


def block(**fields):
    return {"blocks": [{"out": 8} | fields]}


@pytest.mark.parametrize(("spec", "key", "params"), [
    ({"blocks": [{"out": 0}]}, "models.block.bad_int", {"block": 1, "field": "out"}),
    ({"blocks": [{"out": 8}, {"out": -3}]}, "models.block.bad_int", {"block": 2, "field": "out"}),
    (block(kernel=2.5), "models.block.bad_int", {"field": "kernel"}),
    (block(pool="median"), "models.block.bad_choice", {"field": "pool", "value": "median"}),
    (block(attention="eca"), "models.block.bad_choice", {"field": "attention"}),
    (block(act="tanhh"), "models.block.bad_choice", {"field": "act"}),
    (block(colour="red"), "models.block.unknown_field", {"field": "colour"}),
    (block(bn="yes"), "models.block.bad_bool", {"field": "bn"}),
    (block(dropout=1.5), "models.block.bad_dropout", {"field": "dropout"}),
    (block(spatial_kernel=4), "models.block.odd_kernel", {"field": "spatial_kernel"}),
    ({"blocks": [{"out": 8, "pool": "max"}] * 6}, "models.block.too_small", {"block": 6, "img_size": 32}),
    ({"blocks": []}, "models.spec.no_blocks", {}),
    ({"blocks": ["conv"]}, "models.block.not_object", {"block": 1}),
    ({"layers": []}, "models.spec.unknown_field", {"field": "layers"}),
    ({"blocks": [{"out": 8}], "head": {"pool": "mean"}}, "models.head.bad_choice", {"field": "pool"}),
    ({"blocks": [{"out": 8}], "head": {"hidden": 512}}, "models.head.bad_hidden", {}),
    ({"blocks": [{"out": 8}], "head": {"hidden": [0]}}, "models.head.bad_int", {"field": "hidden"}),
])
def test_bad_specs_name_the_block_and_the_reason(spec, key, params):
    with pytest.raises(UserError) as err:
        build_model({"spec": spec}, 3, 32)
    assert err.value.key == key
    assert params.items() <= err.value.params.items()
    for lang in ("en", "zh"):  # a real sentence in both languages, not the key
        assert err.value.message(lang) != key


def test_the_same_spec_fits_larger_images():
    spec = {"blocks": [{"out": 8, "pool": "max"}] * 6}
    assert build_model({"spec": spec}, 3, 64)(torch.rand(1, 3, 64, 64)).shape == (1, 3)
