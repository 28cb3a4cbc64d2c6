"""Class activation maps through pytorch-grad-cam, with the model left exactly as it was.

pytorch-grad-cam is the engine: it records a layer's output with a forward hook and that
output's gradient with a tensor hook (`Tensor.register_hook`, never the deprecated
`register_backward_hook`). Our layer adds what an app needs around it:
- the model may be shared (one cached copy for every browser tab), so everything below runs
  under the model's own lock (`core.models.modes`): hooks, flags and modes of one CAM are never
  seen by another thread's forward pass;
- the model comes back untouched: train/eval mode of each module, `requires_grad` flags and
  `.grad` are restored, hooks are released by the library's context manager even on errors;
- in-place activations are switched off while the CAM runs (and switched back), so a hooked
  output is never overwritten by the ReLU that follows it;
- gradients start at the target layer: weights are set not to need gradients (so no
  parameter `.grad` is written and frozen models work too) and the layer's output is made a
  leaf that requires one, so the backward pass stops there instead of running down to the
  input through the costliest full-resolution layers;
- the rest of the network gets a copy of that leaf: in-place operations written into a
  forward (a ResNet block's `out += identity`, DenseNet's `F.relu(..., inplace=True)`,
  MobileNet's residual add) may not touch a leaf that requires grad, and would otherwise
  change the recorded activations;
- one forward gives both the CAMs and the class probabilities, for a batch of images.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from core.errors import UserError
from core.models.modes import evaluating

# Our names -> pytorch_grad_cam class names (imported lazily: the package pulls in matplotlib).
METHODS: dict[str, str] = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
    "scorecam": "ScoreCAM",
}
METHOD_LABELS = {
    "gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "xgradcam": "XGrad-CAM",
    "layercam": "Layer-CAM", "eigencam": "Eigen-CAM", "scorecam": "Score-CAM",
}
SCORECAM_BATCH = 64


@contextmanager
def untouched(model: nn.Module) -> Iterator[nn.Module]:
    """Hold `model` alone, in eval mode, for a CAM, and hand it back exactly as it came."""
    with evaluating(model):
        flags = [(p, p.requires_grad, p.grad) for p in model.parameters()]
        inplace = [(m, m.inplace) for m in model.modules() if isinstance(getattr(m, "inplace", None), bool)]
        try:
            for p, _, _ in flags:
                p.requires_grad_(False)
            for m, _ in inplace:
                m.inplace = False
            yield model
        finally:
            for p, requires_grad, grad in flags:
                p.requires_grad_(requires_grad)
                p.grad = grad
            for m, value in inplace:
                m.inplace = value


def compute_cams(
    model: nn.Module,
    inputs: torch.Tensor,
    layer: str,
    method: str = "gradcam",
    targets: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """CAMs and class probabilities for a batch of model-ready inputs [B,3,S,S].

    Returns `(cams, probs)`: float32 [B,S,S] in [0, 1] (at the input's size) and float32 [B,C].
    `targets` are class indices per image; None explains each image's predicted class.
    """
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if method not in METHODS:
        raise UserError("explain.unknown_method", name=method, choices=", ".join(METHODS))
    module = _layer(model, layer)
    cam_class = _eigen_cam_class() if method == "eigencam" else getattr(pytorch_grad_cam, METHODS[method])
    num_classes = _num_classes(model)
    if targets is not None and num_classes is not None and any(not 0 <= int(c) < num_classes for c in targets):
        raise UserError("explain.bad_class", index=max(int(c) for c in targets), count=num_classes)
    with untouched(model):
        x = inputs.detach()
        # Registered before the library's hooks, so its gradient hook sees a tensor that needs one.
        leaf = module.register_forward_hook(lambda _m, _i, out: out.requires_grad_(True) if not out.requires_grad else None)
        copy = None
        try:
            with cam_class(model=model, target_layers=[module]) as cam:
                # Registered after them: what flows on is a copy, free to be changed in place.
                copy = module.register_forward_hook(lambda _m, _i, out: out.clone())
                if method == "scorecam":
                    cam.batch_size = SCORECAM_BATCH
                with contextlib.redirect_stderr(io.StringIO()):  # Score-CAM's tqdm progress bar
                    chosen = None if targets is None else [ClassifierOutputTarget(int(c)) for c in targets]
                    maps = cam(input_tensor=x, targets=chosen)
                logits = cam.outputs.detach()
        except RuntimeError as err:  # an operation of this layer's network that no CAM can get through
            raise UserError("explain.layer_failed", layer=layer, reason=str(err).splitlines()[0][:200]) from err
        finally:
            leaf.remove()
            if copy is not None:
                copy.remove()
    probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
    return np.clip(np.nan_to_num(maps.astype(np.float32)), 0.0, 1.0), probs


@lru_cache(maxsize=1)
def _eigen_cam_class() -> type:
    """Eigen-CAM computed cheaply and with a fixed sign.

    The package's version runs a full SVD of the (H*W) x C activations, U matrix included
    ((H*W)^2 numbers: 3136^2 for a 56 x 56 map, seconds on a laptop), though only the first
    right-singular vector is used; that vector is the top eigenvector of the C x C Gram matrix,
    which is tiny. Its sign is arbitrary, so the map could come out negated and then zeroed by
    the ReLU: here it is oriented to agree with the total activation.
    """
    from pytorch_grad_cam import EigenCAM

    class ThinEigenCAM(EigenCAM):
        def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):
            maps = []
            for a in np.nan_to_num(np.asarray(activations, dtype=np.float32)):
                flat = a.reshape(a.shape[0], -1).T  # (H*W, C)
                centred = flat - flat.mean(axis=0)
                # First right-singular vector = top eigenvector of the small C x C Gram matrix.
                _, vectors = np.linalg.eigh(centred.T @ centred)
                projection = centred @ vectors[:, -1]
                if np.dot(projection, flat.sum(axis=1) - flat.sum(axis=1).mean()) < 0:
                    projection = -projection
                maps.append(projection.reshape(a.shape[1:]))
            return np.float32(maps)

    return ThinEigenCAM


def _num_classes(model: nn.Module) -> int | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def _layer(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise UserError("explain.unknown_layer", name=name, choices="?") from None
