"""`explain RUN IMAGE`: a run's prediction for a photo and where it looked (CAM overlay)."""
from __future__ import annotations

import argparse
from pathlib import Path

from core.cli import Output
from core.i18n import cli_lang, t
from core.workspace import Workspace

# core.explain.cam.METHODS, named here so that --help does not import torch
METHODS = ("gradcam", "gradcam++", "xgradcam", "layercam", "eigencam", "scorecam")


def register(sub) -> None:
    lang = cli_lang()
    p = sub.add_parser("explain", help=t("explain.cli.help", lang))
    p.add_argument("run", metavar="RUN", help=t("explain.cli.run_arg", lang))
    p.add_argument("image", metavar="IMAGE", nargs="?", help=t("explain.cli.image_arg", lang))
    p.add_argument("--method", default="gradcam", choices=list(METHODS), help=t("explain.cli.method_arg", lang))
    p.add_argument("--layer", default=None, metavar="NAME", help=t("explain.cli.layer_arg", lang))
    p.add_argument("--class", dest="target", default=None, metavar="NAME", help=t("explain.cli.class_arg", lang))
    p.add_argument("--out", default=None, metavar="PNG", help=t("explain.cli.out_arg", lang))
    p.add_argument("--save-npy", default=None, metavar="NPY", help=t("explain.cli.npy_arg", lang))
    p.add_argument("--opacity", type=float, default=0.5, help=t("explain.cli.opacity_arg", lang))
    p.add_argument("--top", type=int, default=5, help=t("explain.cli.top_arg", lang))
    p.add_argument("--list-layers", action="store_true", help=t("explain.cli.list_layers_arg", lang))
    p.set_defaults(handler=explain_command)


def explain_command(args: argparse.Namespace, out: Output) -> int:
    import numpy as np
    from PIL import Image

    from core.data.images import open_image
    from core.data.labels import field_of
    from core.errors import UserError
    from core.explain import explain, feature_layers
    from core.explain.cam import METHOD_LABELS
    from core.explain.layers import (
        course_layer,
        default_layer,
        distinct,
        kept_layer,
        layer_label,
    )
    from core.explain.render import overlay
    from core.inference import load_model
    from core.runs import find_run

    run_dir = find_run(args.run, Workspace.open().runs)
    model, info = load_model(run_dir)
    layers = feature_layers(model, int(field_of(info, "img_size")))
    names = [layer.name for layer in layers]
    if args.list_layers:  # one line per distinct map; the modules with the very same map after "="
        default, course = (kept_layer(layers, pick(model, names)).name for pick in (default_layer, course_layer))
        lang = out.lang
        marks = {course: "c", default: "*"}
        lines = [(f"{marks.get(x.name, ' ')} {x.name:<28} {layer_label(x, lang):<40} {x.type:<18}"
                  + (f" = {', '.join(x.same_as)}" if x.same_as else "")).rstrip() for x in distinct(layers)]
        out.emit({"run": run_dir.name, "default": default, "course": course,
                  "layers": [{"name": x.name, "label": layer_label(x, lang), "type": x.type, "shape": list(x.shape),
                              "same_as": list(x.same_as)} for x in distinct(layers)]},
                 "\n".join([out.t("explain.cli.layers_title", run=run_dir.name), *lines]))
        return 0
    if not args.image:
        raise UserError("explain.cli.no_image")
    image = open_image(args.image)
    result = explain(model, info, image, method=args.method, layer=args.layer, target=args.target, names=names)
    overlay_path = Path(args.out or f"{Path(args.image).stem}_{args.method.replace('+', 'p')}.png")
    Image.fromarray(overlay(image, result.cam, args.opacity)).save(overlay_path)
    record = {"run": run_dir.name, **result.record(args.top), "overlay": str(overlay_path)}
    if args.save_npy:
        np.save(args.save_npy, result.cam.astype(np.float32))
        record["heatmap"] = str(args.save_npy)
    lines = [out.t("explain.cli.header", run=run_dir.name, method=METHOD_LABELS[args.method], layer=result.layer)]
    lines += [f"  {i + 1}. {name:<24} {prob:7.2%}" for i, (name, prob) in enumerate(result.topk(args.top))]
    lines.append(out.t("explain.cli.target", name=result.names[result.target]))
    lines += [out.t(key, **params) for key, params in result.notes]
    lines.append(out.t("explain.cli.wrote", path=str(overlay_path)))
    if args.save_npy:
        lines.append(out.t("explain.cli.wrote", path=str(args.save_npy)))
    out.emit(record, "\n".join(lines))
    return 0
