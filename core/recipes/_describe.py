"""A recipe's key settings in a few translated lines (the `recipes` command and the Training page)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.i18n import t

if TYPE_CHECKING:
    from core.recipes import Recipe


def describe(recipe: Recipe, lang: str = "en") -> list[str]:
    """Model, size and length, optimizer and schedule, phases, augmentation, normalisation,
    TensorBoard and split, as the recipe resolves them (TrainConfig's defaults filling the rest)."""
    from core.data.augment import DEFAULTS
    from core.models import describe_ref
    from core.training.config import phase_config, phase_lr

    c = recipe.config("recipe")
    lines = [t("recipes.line.model", lang, model=describe_ref(c.model)),
             t("recipes.line.size", lang, img=c.img_size, batch=c.batch_size, epochs=c.epochs),
             t("recipes.line.optimizer", lang, optimizer=c.optimizer, lr=f"{c.lr:g}") + _schedule(c, lang)]
    if c.freeze_epochs:
        second = phase_config(c, second=True)
        lines.append(t("recipes.line.phases", lang, head=c.freeze_epochs, lr=f"{c.lr:g}", rest=c.epochs - c.freeze_epochs,
                       lr2=f"{phase_lr(c, second=True):g}")
                     + (_schedule(second, lang) if c.scheduler == "step" else "")
                     + (t("recipes.line.from_best", lang) if c.phase2_from_best else ""))
    if isinstance(c.augment, str):
        augment = c.augment
    else:
        changed = [f"{k} {_value(v)}" for k, v in c.augment.items() if k != "order" and v != DEFAULTS[k]]
        ops = [op for op in c.augment["order"] if _op_used(op, c.augment)]
        augment = ", ".join(changed or ["-"]) + (f"; {t('recipes.line.order', lang)} {' > '.join(ops)}" if len(ops) > 1 else "")
    lines.append(t("recipes.line.augment", lang, augment=augment))
    norm = c.normalization
    norm_text = (t(f"training.norm.{norm}", lang) if isinstance(norm, str)
                 else f"mean {_value(norm['mean'])}, std {_value(norm['std'])}")
    lines.append(t("recipes.line.normalization", lang, normalization=norm_text))
    if c.tensorboard:
        lines.append(t("recipes.line.tensorboard", lang, every=c.tensorboard_batch_every))
    if recipe.split:
        s = recipe.split
        lines.append(t("recipes.line.split", lang, val=f"{s.get('val', 0):.0%}", test=f"{s.get('test', 0):.0%}",
                       seed=s.get("seed", 42)))
    return lines


def _schedule(c: Any, lang: str) -> str:
    if c.scheduler == "step":
        return t("recipes.sched.step", lang, step=c.step_size, gamma=f"{c.gamma:g}")
    if c.scheduler == "plateau":
        return t("recipes.sched.plateau", lang, metric=t(f"training.metric.{c.plateau_metric}", lang),
                 patience=c.plateau_patience, factor=f"{c.gamma:g}")
    if c.scheduler == "none":
        return ""
    return ", " + t(f"training.scheduler.{c.scheduler}", lang)


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "(" + ", ".join(_value(x) for x in v) + ")"
    return str(v)


def _op_used(op: str, s: dict[str, Any]) -> bool:
    return {"affine": s["rotation"] > 0 or s["translate"] > 0, "crop": s["crop"] != "none", "hflip": s["hflip"] > 0,
            "vflip": s["vflip"] > 0, "jitter": any(s[k] > 0 for k in ("brightness", "contrast", "saturation", "hue")),
            "grayscale": s["grayscale"] > 0}[op]
