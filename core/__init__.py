"""CNN Studio's engine: data, models, training and explanations, with no screen attached.

The Python API for scripts: `core.load_model(run_dir)` and `core.predict(run_or_model, images)`.
"""
from __future__ import annotations


def __getattr__(name: str):
    # Imported lazily so `import core` stays cheap for the CLI's --help and the pages.
    if name in ("load_model", "predict"):
        from core import inference

        return getattr(inference, name)
    raise AttributeError(name)
