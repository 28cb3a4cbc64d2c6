"""CAMs: Grad-CAM matches a direct autograd computation; every method gives a clean map;
the model comes back exactly as it was (weights, mode, flags, grads, no hooks left)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core.errors import UserError
from core.explain import METHODS, compute_cams, default_layer, explain, layer_names
from core.models import PRESETS, build_model

SIZES = {"simple_cnn": 32, "cbam_cnn": 32, "resnet18_cbam": 64}


def model_for(preset: str, classes: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model({"preset": preset}, classes, SIZES[preset]).eval()


def direct_gradcam(model, x, layer, cls):
    """Grad-CAM from first principles: d(score)/d(layer output), channel weights = spatial mean
    of the gradient, ReLU of the weighted sum, upsampled bilinearly to the input, min-max normalised."""
    captured = []
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        score = model(x)[:, cls].sum()
    finally:
        handle.remove()
    grad, = torch.autograd.grad(score, captured[0])
    weights = grad.mean((2, 3), keepdim=True)
    cam = F.relu((weights * captured[0]).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    low = cam.amin((1, 2), keepdim=True)
    high = cam.amax((1, 2), keepdim=True)
    return ((cam - low) / (high - low).clamp_min(1e-12)).detach().numpy()


@pytest.mark.parametrize("preset", PRESETS)
def test_gradcam_equals_direct_autograd_computation(preset):
    model = model_for(preset)
    size = SIZES[preset]
    layer = default_layer(model, layer_names(model, {"img_size": size}))
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    nontrivial = 0
    for cls in range(4):
        ours, _ = compute_cams(model, x, layer, "gradcam", [cls] * 3)
        expected = direct_gradcam(model, x, layer, cls)
        assert ours.shape == expected.shape == (3, size, size)
        np.testing.assert_allclose(ours, expected, atol=1e-5)
        nontrivial += int((expected.max((1, 2)) > 0.5).sum())
    assert nontrivial > 0  # the comparison was not between two blank maps


def test_default_layers_are_the_last_conv_blocks():
    assert default_layer(model_for("simple_cnn"), layer_names(model_for("simple_cnn"), {"img_size": 32})) == "features.1"
    cbam = model_for("cbam_cnn")
    assert default_layer(cbam, layer_names(cbam, {"img_size": 32})) == "features.2"
    resnet = model_for("resnet18_cbam")
    names = layer_names(resnet, {"img_size": 64})
    assert default_layer(resnet, names) == "att4"
    assert {"conv1", "layer1", "layer4", "att1"} <= set(names)
    assert "layer1.0.relu" not in names  # reused twice per block: no single output to explain
    assert "avgpool" not in names  # 1 x 1


def test_model_is_left_exactly_as_it_was():
    model = model_for("cbam_cnn")
    model.train()
    frozen = model.features[0].conv.weight
    frozen.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inplace_before = [m.inplace for m in model.modules() if hasattr(m, "inplace")]
    for method in METHODS:
        compute_cams(model, torch.rand(2, 3, 32, 32), "features.1", method)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert not frozen.requires_grad and all(p.requires_grad for p in model.parameters() if p is not frozen)
    assert [m.inplace for m in model.modules() if hasattr(m, "inplace")] == inplace_before
    with pytest.raises(UserError):
        compute_cams(model, torch.rand(1, 3, 32, 32), "features.1", "gradcam", [99])
    for module in model.modules():
        assert not module._forward_hooks and not module._backward_hooks and not module._forward_pre_hooks


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_gives_a_finite_map_in_0_1_at_the_photo_size(method):
    model = model_for("simple_cnn")
    info = {"img_size": 32, "classes": ["a", "b", "c", "d"], "mean": [0.5] * 3, "std": [0.25] * 3}
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (45, 70, 3), dtype=np.uint8))
    result = explain(model, info, photo, method=method, target="c")
    assert result.cam.shape == (45, 70) and result.cam.dtype == np.float32
    assert np.isfinite(result.cam).all() and 0 <= result.cam.min() and result.cam.max() <= 1
    assert result.target == 2 and result.layer == "features.1"
    assert abs(result.probs.sum() - 1) < 1e-5 and result.topk(2)[0][1] == pytest.approx(result.confidence)


def test_bad_choices_are_user_errors():
    model = model_for("simple_cnn")
    info = {"img_size": 32, "classes": ["a", "b", "c", "d"]}
    photo = Image.new("RGB", (40, 30))
    for kwargs, key in [({"method": "nope"}, "explain.unknown_method"), ({"layer": "fc9"}, "explain.unknown_layer"),
                        ({"target": "tulip"}, "explain.unknown_class"), ({"target": 9}, "explain.bad_class")]:
        with pytest.raises(UserError) as err:
            explain(model, info, photo, **kwargs)
        assert err.value.key == key


def test_eigencam_is_the_packages_projection_with_a_fixed_sign():
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    from core.explain.cam import _eigen_cam_class

    activations = np.random.default_rng(0).normal(size=(2, 16, 7, 9)).astype(np.float32) ** 2
    ours = _eigen_cam_class().get_cam_image(None, None, None, None, activations, None, False)
    theirs = get_2d_projection(activations)
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), rtol=1e-3, atol=1e-3)
    energy = activations.sum(1).reshape(2, -1)
    for cam, e in zip(ours.reshape(2, -1), energy):
        assert np.corrcoef(cam, e)[0, 1] > 0


def test_a_coarse_layer_gets_a_note_naming_its_grid_and_hooks_are_removed():
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 255, (80, 120, 3), dtype=np.uint8))
    info = {"img_size": 64, "classes": list("abcd"), "mean": [0.5] * 3, "std": [0.25] * 3}
    model = model_for("resnet18_cbam")  # its last stage is 2x2 at 64 px
    coarse = explain(model, info, photo)
    assert ("explain.note_coarse", {"layer": "att4", "h": 2, "w": 2, "size": 64}) in coarse.notes
    assert not [key for key, _ in explain(model, info, photo, layer="att2").notes]  # 8x8
    assert not any(m._forward_hooks for m in model.modules())
    small = explain(model_for("simple_cnn"), info | {"img_size": 32}, photo)
    assert not small.notes  # 8x8 at 32 px
