"""CAMs: Grad-CAM matches a direct autograd computation; every method gives a clean map;
the model comes back exactly as it was (weights, mode, flags, grads, no hooks left), also when
many threads explain one shared model; every layer the page offers, for every kind of model,
can be explained."""
import random
import re
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core.errors import UserError
from core.explain import (
    METHODS,
    compute_cams,
    default_layer,
    explain,
    feature_layers,
    layer_names,
    model_input,
)
from core.explain.layers import course_layer
from core.explain.render import feature_maps
from core.models import BACKBONES, PRESETS, build_model

SIZES = {"simple_cnn": 32, "cbam_cnn": 32, "resnet18_cbam": 64, "catdog_cnn": 32, "fast_cnn": 32}


def model_for(preset: str, classes: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model({"preset": preset}, classes, SIZES[preset]).eval()


def direct_gradcam(model, x, layer, cls):
    """Grad-CAM from first principles: d(score)/d(layer output), channel weights = spatial mean
    of the gradient, ReLU of the weighted sum, upsampled bilinearly to the input, min-max normalised."""
    cam = raw_gradcam(model, x, layer, cls)
    low = cam.amin((1, 2), keepdim=True)
    high = cam.amax((1, 2), keepdim=True)
    return ((cam - low) / (high - low).clamp_min(1e-12)).detach().numpy()


def raw_gradcam(model, x, layer, cls):
    """The map before normalisation (a random network's deep layers may give ~1e-12 everywhere,
    which no two implementations normalise alike)."""
    captured = []
    # The network goes on with a copy: an in-place `out += identity` after the layer must not change it.
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: captured.append(out) or out.clone())
    try:
        score = model(x)[:, cls].sum()
    finally:
        handle.remove()
    grad, = torch.autograd.grad(score, captured[0])
    weights = grad.mean((2, 3), keepdim=True)
    cam = F.relu((weights * captured[0]).sum(1, keepdim=True))
    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0].detach()


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


# --- one model shared by many threads (the page caches one per checkpoint for every tab) ---------

def model_state(model):
    """Everything explaining may touch: each module's mode, in-place flag and hooks; each
    parameter's requires_grad and .grad (the very tensor)."""
    modules = [(name, m.training, getattr(m, "inplace", None), list(m._forward_hooks), list(m._forward_pre_hooks),
                list(m._backward_hooks)) for name, m in model.named_modules()]
    params = [(name, p.requires_grad, id(p.grad)) for name, p in model.named_parameters()]
    return modules, params


def shared_cbam_model():
    """A cbam_cnn in the state a user's code might leave it: mostly eval, one block training,
    one frozen weight, one weight with a .grad, a hook of its own."""
    model = model_for("cbam_cnn")
    model.features[1].train()
    model.features[0].conv.weight.requires_grad_(False)
    model.features[2].conv.weight.grad = torch.ones_like(model.features[2].conv.weight)
    model.features[0].register_forward_hook(lambda _m, _i, _out: None)
    return model


def explain_jobs():
    rng = np.random.default_rng(3)
    photos = [Image.fromarray(rng.integers(0, 255, (36, 44, 3), dtype=np.uint8)) for _ in range(3)]
    jobs = [("cam", i, method, layer, target) for i in range(3) for method, layer, target in
            [("gradcam", "features.2", None), ("gradcam++", "features.1", "b"), ("layercam", "features.2", "d"),
             ("eigencam", "features.0", None)]]
    jobs += [("maps", i, None, layer, None) for i in range(3) for layer in ("features.0.bn", "features.2.attn")]
    return photos, jobs + [("layers", 0, None, None, None)]


def run_job(model, photos, names, job):
    kind, i, method, layer, target = job
    info = {"img_size": 32, "classes": list("abcd"), "mean": [0.5] * 3, "std": [0.25] * 3}
    if kind == "cam":  # with the layer list passed in, as the page does from its cache
        result = explain(model, info, photos[i], method=method, layer=layer, target=target, names=names)
        return np.concatenate([result.cam.ravel(), result.probs])
    if kind == "maps":
        from core.explain import model_input
        return feature_maps(model, model_input([photos[i]], info), layer).numpy().ravel()
    listed = [x.name for x in feature_layers(model, 32)]
    return np.array([listed == names], dtype=np.float64)


def test_many_threads_explaining_one_model_get_the_single_thread_results_and_leave_it_as_it_was():
    model = shared_cbam_model()
    before = model_state(model)
    photos, jobs = explain_jobs()
    names = [x.name for x in feature_layers(model, 32)]
    expected = {job: run_job(model, photos, names, job) for job in jobs}
    assert model_state(model) == before  # one thread alone leaves it as it was
    threads, rounds = 4, 2
    results, errors = {}, []
    start = threading.Barrier(threads)

    def work(n):
        order = [(r, job) for r in range(rounds) for job in jobs]
        random.Random(n).shuffle(order)
        start.wait()
        for r, job in order:
            try:
                results[n, r, job] = run_job(model, photos, names, job)
            except Exception as err:  # noqa: BLE001 - collected and shown below
                errors.append(f"{job}: {err!r}")

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors[:3]
    assert len(results) == threads * rounds * len(jobs)
    wrong = [key for key, value in results.items() if not np.allclose(value, expected[key[2]], atol=1e-5)]
    assert not wrong, f"{len(wrong)} of {len(results)} differ from the single-thread result, e.g. {wrong[:3]}"
    assert model_state(model) == before


def test_feature_maps_are_the_layers_own_output_not_what_an_in_place_relu_made_of_it():
    torch.manual_seed(0)
    model = build_model({"backbone": "resnet18"}, 3, 64).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        block = model.layer1[0]
        expected = block.bn1(block.conv1(model.maxpool(model.relu(model.bn1(model.conv1(x))))))[0]
    maps = feature_maps(model, x, "layer1.0.bn1")  # followed by ReLU(inplace=True) in the block
    assert expected.min() < 0  # a ReLU'd copy could not match
    torch.testing.assert_close(maps, expected)


# --- every layer the page offers, for every kind of model ----------------------------------------

SPEC = {"spec": {"blocks": [
    {"out": 8, "bn": True, "pool": "max", "attention": "se", "reduction": 4},
    {"out": 16, "bn": True, "act": "leaky_relu", "pool": "avg", "attention": "cbam", "reduction": 4, "dropout": 0.2},
    {"out": 16, "stride": 2, "act": "gelu", "attention": "cbam", "reduction": 4},
], "head": {"pool": "gap", "hidden": [8]}}}
KINDS = {**{p: ({"preset": p}, SIZES[p]) for p in PRESETS}, "spec_se_cbam": (SPEC, 32),
         # 64 px: the smallest size at which a backbone's last stage is still a map (2 x 2), so it is offered
         **{b: ({"backbone": b}, 64) for b in BACKBONES}}
# Layers reported to crash Grad-CAM (an in-place operation after them), always tested.
# Layers that crashed Grad-CAM ("a leaf Variable that requires grad is being used in an in-place
# operation": a `+=` or in-place ReLU written into the network's forward after them).
REPORTED = {
    "resnet18": ("layer1.0.bn2", "layer4.1.bn2"), "resnet34": ("layer2.3.bn2",),
    "resnet50": ("layer1.0.bn3", "layer4.2.bn3"), "mobilenet_v3_small": ("features.3.block", "features.11.block"),
    "efficientnet_b0": ("features.2.1.block", "features.2.1.stochastic_depth", "features.6.3.block.3"),
    "densenet121": ("features", "features.norm5"),
}
SAMPLED = {"resnet18_cbam", *BACKBONES}


def layers_to_test(kind, model, names):
    """All of them, or for a backbone one layer per kind of place in the network (the last layer
    whose name reads the same with its numbers blanked, e.g. `layer#.#.bn#`), the reported ones
    and the default: ~10 CAMs each instead of 31 to 431."""
    if kind not in SAMPLED:
        return names
    last = {re.sub(r"\d+", "#", name): name for name in names}
    chosen = set(last.values()) | set(REPORTED.get(kind, ())) | {default_layer(model, names), course_layer(model, names)}
    return [n for n in names if n in chosen]


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_offered_layer_of_every_model_kind_explains(kind):
    ref, size = KINDS[kind]
    torch.manual_seed(0)
    model = build_model(ref, 3, size).eval()
    names = [layer.name for layer in feature_layers(model, size)]
    assert set(REPORTED.get(kind, ())) <= set(names)  # offered by the page
    tested = layers_to_test(kind, model, names)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    checked = 0
    for layer in tested:
        cams, probs = compute_cams(model, x, layer, "gradcam", [1])
        assert cams.shape == (1, size, size) and np.isfinite(cams).all() and 0 <= cams.min() <= cams.max() <= 1, layer
        assert abs(probs.sum() - 1) < 1e-4
        if layer in REPORTED.get(kind, ()):  # the map is right, not just there
            raw = raw_gradcam(model, x, layer, 1)
            if raw.max() > 1e-6:
                np.testing.assert_allclose(cams, direct_gradcam(model, x, layer, 1), atol=1e-4, err_msg=layer)
                checked += 1
    assert default_layer(model, names) in tested and course_layer(model, names) in tested
    assert checked or kind not in ("resnet18", "resnet50", "densenet121")
    assert not any(m._forward_hooks for m in model.modules())


def test_one_mode_rule_runs_in_eval_and_keeps_a_mixed_model_mixed():
    """predict, CAMs, layer listing and feature maps all run the model in eval mode and hand
    back each module's own mode: a training network with a frozen BatchNorm kept in eval stays so."""
    import copy
    from types import SimpleNamespace

    from core.inference import predict

    model = model_for("cbam_cnn").train()
    model.features[0].bn.eval()
    modes = [m.training for m in model.modules()]
    info = SimpleNamespace(img_size=32, mean=(0.5,) * 3, std=(0.25,) * 3, classes=list("abcd"))
    photo = Image.fromarray(np.random.default_rng(2).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = torch.softmax(copy.deepcopy(model).eval()(model_input([photo], info)), 1)
    torch.testing.assert_close(predict(model, [photo], info), expected)  # dropout off, BatchNorm statistics used
    assert [m.training for m in model.modules()] == modes
    for use in (lambda: compute_cams(model, x, "features.1"), lambda: feature_layers(model, 32),
                lambda: feature_maps(model, x, "features.1"), lambda: explain(model, info, photo)):
        use()
        assert [m.training for m in model.modules()] == modes


def test_a_layer_no_cam_can_get_through_is_a_user_error_naming_it():
    """A network whose forward reads a layer's output as numbers (which a CAM's gradient forbids)
    gets a sentence naming the layer, not a traceback, and is handed back as it was."""

    class ReadsItsMap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            y = self.conv(x)
            scale = float(y.numpy().std())  # fine in a plain forward, not on a tensor that needs a gradient
            return self.fc(y.mean((2, 3)) * scale)

    model = ReadsItsMap().eval()
    before = model_state(model)
    with pytest.raises(UserError) as err:
        compute_cams(model, torch.rand(1, 3, 16, 16), "conv", "gradcam")
    assert err.value.key == "explain.layer_failed" and "conv" in err.value.message("en")
    assert model_state(model) == before
