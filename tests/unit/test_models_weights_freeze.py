"""Weights (a local file, the torch hub cache, offline) and freezing policies, with no network."""
import urllib.error
import urllib.request

import pytest
import torch
from torchvision import models as tvm

from core.errors import UserError
from core.models import build_model, freeze, pretrained_available, weights_cache_path
from core.models import backbones


def n(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture
def resnet18_file(tmp_path):
    torch.manual_seed(1)
    state = tvm.resnet18(weights=None).state_dict()  # an ImageNet-shaped file: 1000-class head
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    return path, state


def test_a_local_weights_file_loads_into_the_backbone(resnet18_file):
    path, state = resnet18_file
    model = build_model({"backbone": "resnet18", "weights_path": str(path)}, 3, 32)
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    assert torch.equal(model.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    assert model.fc.out_features == 3
    # The course's ResNet18+CBAM takes the same file for its ResNet part.
    cbam = build_model({"preset": "resnet18_cbam", "weights_path": str(path)}, 5, 32)
    assert torch.equal(cbam.layer2[0].conv1.weight, state["layer2.0.conv1.weight"])


def test_wrong_or_broken_weights_files_are_user_errors(tmp_path):
    other = tmp_path / "mobilenet.pth"
    torch.save(tvm.mobilenet_v3_small(weights=None).state_dict(), other)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    for path, key in [(other, "models.weights_mismatch"), (junk, "models.weights_unreadable"),
                      (tmp_path / "none.pth", "models.weights_missing")]:
        with pytest.raises(UserError) as err:
            build_model({"backbone": "resnet18", "weights_path": str(path)}, 3, 32)
        assert err.value.key == key


def test_pretrained_weights_come_from_the_torch_hub_cache(tmp_path, monkeypatch, resnet18_file):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert not pretrained_available("resnet18")
    cached = weights_cache_path("resnet18")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(resnet18_file[0].read_bytes())
    assert pretrained_available("resnet18")
    model = build_model({"backbone": "resnet18", "pretrained": True}, 3, 32)
    assert torch.equal(model.conv1.weight, resnet18_file[1]["conv1.weight"])


def test_offline_pretrained_fails_fast_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    timeouts = []

    def offline(url, timeout=None):
        timeouts.append(timeout)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(UserError) as err:
        build_model({"backbone": "efficientnet_b0", "pretrained": True}, 3, 32)
    assert err.value.key == "models.pretrained_unavailable"
    assert str(weights_cache_path("efficientnet_b0")) in err.value.message("en")
    assert timeouts == [backbones.DOWNLOAD_TIMEOUT_S]


def test_freezing_policies_leave_only_the_expected_parameters_trainable():
    model = build_model({"backbone": "resnet18"}, 3, 32)
    total = n(model)
    assert freeze(model, "head").trainable == n(model.fc)
    assert {name for name, p in model.named_parameters() if p.requires_grad} == {"fc.weight", "fc.bias"}
    assert freeze(model, "last:1").trainable == n(model.fc) + n(model.layer4)
    assert freeze(model, 2).trainable == n(model.fc) + n(model.layer4) + n(model.layer3)
    result = freeze(model, "all")
    assert result.trainable == result.total == total

    cbam = build_model({"preset": "resnet18_cbam"}, 5, 32)
    assert freeze(cbam, "last:1").trainable == n(cbam.fc) + n(cbam.layer4) + n(cbam.att4)
    spec = build_model({"preset": "cbam_cnn"}, 10, 32)
    assert freeze(spec, "last:1").trainable == n(spec.classifier) + n(spec.features[2])
    for bad, key in [("some", "models.freeze_unknown"), ("last:9", "models.freeze_too_many")]:
        with pytest.raises(UserError) as err:
            freeze(spec, bad)
        assert err.value.key == key


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "vgg11_bn", "densenet121", "efficientnet_b0"])
def test_every_backbone_has_stages_to_unfreeze(name):
    from core.models import stages

    model = build_model({"backbone": name}, 3, 32)
    head_only = freeze(model, "head").trainable
    assert 0 < head_only < freeze(model, "last:1").trainable < freeze(model, "all").trainable
    assert len(stages(model)) >= 4


def buffers(module) -> dict[str, torch.Tensor]:
    return {name: b.clone() for name, b in module.named_buffers()}


def train_a_little(model) -> None:
    """What the training loop does to a model: train mode, then forward passes on new data."""
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(4, 3, 32, 32) * 3 + 1)  # far from the statistics the model has


def moved(before: dict, model, prefix: str = "") -> list[str]:
    return [name for name, b in model.named_buffers() if name.startswith(prefix) and not torch.equal(b, before[name])]


def test_frozen_batchnorm_keeps_its_statistics_whatever_model_train_says():
    model = build_model({"backbone": "resnet18"}, 3, 32)
    freeze(model, "last:1")
    before = buffers(model)
    train_a_little(model)
    assert moved(before, model) and all(name.startswith("layer4.") for name in moved(before, model))
    assert not model.bn1.training and model.layer4[0].bn1.training and model.training
    model.eval()
    model.train()  # as the loop does at every epoch
    assert not model.layer1[0].bn2.training

    # Unfreezing (the second phase of transfer learning) lets every BatchNorm learn again.
    freeze(model, "all")
    before = buffers(model)
    train_a_little(model)
    assert model.bn1.training and moved(before, model, "bn1.") and moved(before, model, "layer1.")


def test_frozen_bn_train_keeps_the_courses_behaviour():
    model = build_model({"backbone": "resnet18"}, 3, 32)
    freeze(model, "head", frozen_bn="train")
    before = buffers(model)
    train_a_little(model)
    assert moved(before, model, "bn1.") and moved(before, model, "layer1.")
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"fc.weight", "fc.bias"}
