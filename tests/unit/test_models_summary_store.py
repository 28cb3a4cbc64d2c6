"""Layer table, FLOPs and sizes; saved specs in the workspace; the `models`/`summary` CLI."""
import json

import pytest
import torch

from core.cli import main
from core.errors import UserError
from core.models import (
    PRESETS, build_model, delete_spec, duplicate_spec, freeze, list_specs, load_ref, load_spec, rename_spec, save_spec,
    summarize,
)


def test_summary_table_totals_and_flops_for_the_course_cnn():
    s = summarize(build_model({"preset": "simple_cnn"}, 10, 32), 32)
    assert s.total_params == s.trainable_params == 2_122_186
    by_name = {r.name: r for r in s.rows}
    assert by_name["features.0.conv"].output_shape == [1, 32, 32, 32]
    assert by_name["classifier.fc1"].params == 4096 * 512 + 512
    # conv MACs (32*32*32*27 + 16*16*64*288) + fc MACs (4096*512 + 512*10), two FLOPs each
    assert s.flops == 2 * (32 * 32 * 32 * 27 + 16 * 16 * 64 * 288 + 4096 * 512 + 512 * 10)
    assert s.size_mb == pytest.approx(2_122_186 * 4 / 2**20)
    assert s.output_shape == [1, 10]


def test_summary_counts_frozen_parameters():
    model = build_model({"preset": "resnet18_cbam"}, 5, 224)
    freeze(model, "head")
    s = summarize(model, 224)
    assert s.trainable_params == sum(p.numel() for p in model.fc.parameters()) < s.total_params == 11_485_645
    assert {r.name: r.trainable for r in s.rows}["layer1"] == 0
    for preset in PRESETS[:2]:
        assert summarize(build_model({"preset": preset}, 10, 32), 32).output_shape == [1, 10]
    assert model.training  # summarize leaves the mode as it found it


def test_summary_hands_each_module_its_own_mode_back():
    import torch.nn as nn

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(2, 3, 8, 8))
    model[1].eval()  # a BatchNorm kept in eval inside a training network (frozen transfer learning)
    summarize(model, 8)
    assert [m.training for m in model] == [True, False, True, True]


def test_saved_specs_save_load_duplicate_and_delete(tmp_path):
    spec = {"spec": {"blocks": [{"out": 8, "attention": "cbam"}]}}
    path = save_spec(tmp_path, "我的 CBAM-net", spec)
    assert json.loads(path.read_text(encoding="utf-8"))["name"] == "我的 CBAM-net"
    assert load_spec(tmp_path, "我的 CBAM-net") == spec | {"name": "我的 CBAM-net"}
    with pytest.raises(UserError, match="already exists"):
        save_spec(tmp_path, "我的 CBAM-net", spec)
    duplicate_spec(tmp_path, "我的 CBAM-net", "copy")
    (tmp_path / "stray.json").write_text("{half written")
    assert list_specs(tmp_path) == ["copy", "我的 CBAM-net"]
    delete_spec(tmp_path, "copy")
    assert list_specs(tmp_path) == ["我的 CBAM-net"]
    for bad in ("../escape", "", "a/b", "x" * 80):
        with pytest.raises(UserError):
            save_spec(tmp_path, bad, spec)
    with pytest.raises(UserError):
        save_spec(tmp_path, "bad", {"spec": {"blocks": [{"out": 0}]}} | {"preset": "x"})
    assert load_ref("我的 CBAM-net", tmp_path)["spec"] == spec["spec"]


def test_a_saved_spec_is_renamed_without_losing_it(tmp_path):
    spec = {"spec": {"blocks": [{"out": 8, "attention": "se"}]}}
    save_spec(tmp_path, "old", spec)
    save_spec(tmp_path, "taken", {"preset": "simple_cnn"})
    rename_spec(tmp_path, "old", "  新名字 ")
    assert list_specs(tmp_path) == ["taken", "新名字"]
    assert load_spec(tmp_path, "新名字") == spec | {"name": "新名字"}
    with pytest.raises(UserError, match="already exists"):
        rename_spec(tmp_path, "新名字", "taken")  # refused: both stay as they were
    with pytest.raises(UserError):
        rename_spec(tmp_path, "新名字", "../escape")
    assert list_specs(tmp_path) == ["taken", "新名字"] and load_spec(tmp_path, "taken")["preset"] == "simple_cnn"
    with pytest.raises(UserError):
        rename_spec(tmp_path, "missing", "other")


def test_cli_lists_models_and_prints_a_summary(workspace, capsys):
    save_spec(workspace.models, "tiny", {"spec": {"blocks": [{"out": 4, "pool": "max"}]}})
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["presets"] == list(PRESETS) and "densenet121" in [b["name"] for b in listing["backbones"]]
    assert listing["saved"] == ["tiny"]
    assert main(["summary", "cbam_cnn", "--img-size", "32", "--classes", "10", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["total_params"] == 1_150_896 and record["flops"] > 0 and record["rows"]
    assert main(["summary", "tiny", "--img-size", "16", "--classes", "2"]) == 0
    text = capsys.readouterr().out
    assert "Total params: 626" in text  # conv 3*4*9+4, fc 4*8*8*2+2 and "features.0" not in text and "conv" in text


def test_cli_bad_model_exits_2_with_a_message(workspace, capsys):
    assert main(["summary", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert main(["summary", "simple_cnn", "--freeze", "last:9"]) == 2
