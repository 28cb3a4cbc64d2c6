"""Named training recipes: a lesson's settings (or a proposal computed from a dataset) as data.

A recipe is one file in this folder, named after the recipe:
- `NAME.json`: fixed settings, `{"settings": {...}, "split": {...} | null, "notes": [...]}`.
  `settings` holds any TrainConfig fields but `data` (the model reference with its pretrained
  weights, image size, augmentation settings, schedule, phases, ...); fields left out keep
  TrainConfig's defaults. `split` is the share of a single folder the lesson held out for
  validation and test, and its seed, where the lesson splits one folder. `notes` are
  translation keys: where a lesson's number cannot be expressed, or the lesson gives none.
- `NAME.py`: a recipe computed from the dataset, a module with
  `def recipe(data: Path | None) -> Recipe` (its `reasons` say why each choice was made; it
  raises UserError("recipes.needs_data", name=NAME) when it needs a split and has none).
  Modules whose names start with "_" are helpers, not recipes.
Titles and notes live in the translation table (`recipes.NAME.title`, `assets/i18n/recipes.json`).

The CLI (`train --recipe`), the Training page and the tests resolve a recipe the same way:
`recipe.values()` under whatever the user sets (config file, flags, the page's fields).
"""
from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.i18n import t

FOLDER = Path(__file__).resolve().parent
FILE_KEYS = {"settings", "split", "notes"}
SPLIT_KEYS = {"val", "test", "seed"}
WEIGHTS_KEYS = ("pretrained", "weights_path")


@dataclass(frozen=True)
class Recipe:
    """A recipe, checked: its settings build a valid TrainConfig for any split folder."""

    name: str
    settings: dict[str, Any]
    split: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    reasons: tuple[dict[str, Any], ...] = ()   # computed recipes: {"key": i18n key, "params": {...}}
    source: str = ""                           # the file it came from

    def title(self, lang: str = "en") -> str:
        return t(f"recipes.{self.name}.title", lang)

    def values(self) -> dict[str, Any]:
        """The TrainConfig fields it sets, and the run's name (the recipe's, unless one is given)."""
        return {"name": self.name} | copy.deepcopy(self.settings)

    def config(self, data: str | Path, **overrides: Any) -> Any:
        """The TrainConfig for `data`, with `overrides` (other TrainConfig fields) over the recipe."""
        from core.training.config import TrainConfig

        return TrainConfig.from_dict(self.values() | {"data": str(data)} | overrides)

    def weights(self) -> str | None:
        """The architecture whose ImageNet weights the recipe starts from, if any."""
        return pretrained_arch(self.settings.get("model", {}))


def names() -> list[str]:
    """Every recipe's name (files `NAME.json` or `NAME.py` here), sorted."""
    found = {p.stem for p in FOLDER.glob("*.json")}
    found |= {p.stem for p in FOLDER.glob("*.py") if not p.stem.startswith("_")}
    return sorted(found)


def load(name: str, data: str | Path | None = None) -> Recipe:
    """Recipe `name`; a computed one is computed from the split folder `data`."""
    if name not in names():
        raise UserError("recipes.unknown", name=name, choices=", ".join(names()))
    json_file = FOLDER / f"{name}.json"
    if json_file.is_file():
        return from_file(json_file)
    if FOLDER == Path(__file__).resolve().parent:
        # imported once: what a module remembers (auto's measured speeds) lasts the process
        module = importlib.import_module(f"{__name__}.{name}")
    else:
        spec = importlib.util.spec_from_file_location(f"{__name__}.{name}", FOLDER / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    made = module.recipe(Path(data) if data else None)
    if not isinstance(made, Recipe) or made.name != name:
        raise UserError("recipes.bad", name=name, reason=f"recipe() must return a Recipe named {name}")
    return checked(made)


def load_all(data: str | Path | None = None) -> list[Recipe]:
    """Every recipe that can be made now (a computed one that needs a dataset is left out without one)."""
    found = []
    for name in names():
        try:
            found.append(load(name, data))
        except UserError as err:
            if err.key != "recipes.needs_data":
                raise
    return found


def from_file(path: Path) -> Recipe:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError("recipes.bad", name=path.stem, reason=str(err)) from err
    if not isinstance(raw, dict) or set(raw) - FILE_KEYS or "settings" not in raw:
        raise UserError("recipes.bad", name=path.stem, reason=f"expected keys {sorted(FILE_KEYS)}")
    return checked(Recipe(name=path.stem, settings=raw["settings"], split=raw.get("split"),
                          notes=tuple(raw.get("notes") or ()), source=str(path)))


def checked(recipe: Recipe) -> Recipe:
    """`recipe` if its settings make a valid TrainConfig and its split ratios are sound, else a
    UserError naming the recipe (so a broken file is found by `core recipes`, not mid-training)."""
    from core.models import check_ref
    from core.training.config import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"data"}
    settings = recipe.settings
    if not isinstance(settings, dict):
        raise UserError("recipes.bad", name=recipe.name, reason="settings must be an object")
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise UserError("recipes.bad", name=recipe.name, reason="unknown settings: " + ", ".join(unknown))
    try:
        check_ref(settings.get("model", {"preset": "simple_cnn"}))
        recipe.config("recipe-check")
    except UserError as err:
        raise UserError("recipes.bad", name=recipe.name, reason=err.message("en")) from err
    except TypeError as err:  # a value of the wrong kind where TrainConfig does arithmetic on it
        raise UserError("recipes.bad", name=recipe.name, reason=str(err)) from err
    _check_split(recipe)
    return recipe


def _check_split(recipe: Recipe) -> None:
    split = recipe.split
    if split is None:
        return
    ok = isinstance(split, dict) and not set(split) - SPLIT_KEYS
    ok = ok and all(isinstance(split.get(k, 0), (int, float)) and 0 <= split.get(k, 0) < 1 for k in ("val", "test"))
    ok = ok and split.get("val", 0) + split.get("test", 0) < 1 and isinstance(split.get("seed", 0), int)
    if not ok:
        raise UserError("recipes.bad", name=recipe.name, reason=f"split: {split}")


def pretrained_arch(ref: dict[str, Any]) -> str | None:
    """The torchvision architecture whose ImageNet weights a model reference asks for (no
    local file given), else None."""
    if not isinstance(ref, dict) or not ref.get("pretrained") or ref.get("weights_path"):
        return None
    if ref.get("preset") == "resnet18_cbam":
        return "resnet18"
    return ref.get("backbone")


def missing_weights(recipe: Recipe) -> str | None:
    """The architecture whose pretrained weights the recipe wants and this machine lacks."""
    from core.models import pretrained_available

    arch = recipe.weights()
    return arch if arch and not pretrained_available(arch) else None


def with_weights(ref: dict[str, Any], source: str, path: str | None = None) -> dict[str, Any]:
    """`ref` starting from `source`: "pretrained" (ImageNet), "file" (`path`) or "scratch"."""
    ref = {k: v for k, v in ref.items() if k not in WEIGHTS_KEYS}
    if source == "pretrained":
        return ref | {"pretrained": True}
    if source == "file":
        return ref | {"weights_path": path}
    return ref


from core.recipes._describe import describe  # it reads Recipe: imported last

__all__ = ["FOLDER", "Recipe", "checked", "describe", "from_file", "load", "load_all", "missing_weights", "names",
           "pretrained_arch", "with_weights"]
