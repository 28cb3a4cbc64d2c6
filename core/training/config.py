"""A training run's settings as plain data: a dataclass that round-trips through JSON."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from core.errors import UserError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "step", "plateau", "cosine", "onecycle", "triangle")
NORMALIZATIONS = ("imagenet", "dataset")  # or typed: {"mean": [r, g, b], "std": [r, g, b]}
EARLY_STOP_METRICS = ("val_acc", "val_loss")
PLATEAU_METRICS = ("val_acc", "val_loss")
FROZEN_BN = ("eval", "train")
BALANCES = ("none", "weights", "sampler")  # core.training.balance
CACHES = ("auto", "memory", "disk", "stream")  # how decoded images are held: core.data.cache
TTAS = ("none", "flip", "flip_shift")  # core.training.loops.tta_logits
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")  # core.training.memory_format


@dataclass
class TrainConfig:
    """Everything a run needs besides its data; `config.json` holds it, so a run can be redone.

    What is trained: the model reference may carry a freeze policy (`model["freeze"]`: "all",
    "head" or "last:N", set on the Model page). With `freeze_epochs` = 0 the whole run trains
    what that policy leaves trainable, at `lr`. With `freeze_epochs` = K > 0 training has two
    phases: epochs 1..K train the head only at `lr`; the rest train what the policy leaves
    trainable (everything when there is no policy) at `lr * unfreeze_lr_factor`, with a fresh
    optimizer and scheduler. The summary's `trainable_params` is the current phase's count.
    BatchNorm layers in the frozen part keep their running statistics (`frozen_bn` = "eval");
    "train" lets them follow the new data, as the course's code does. The second phase may have
    its own learning rate (`phase2_lr`), StepLR step and gamma (`phase2_step_size`,
    `phase2_gamma`; 0 = the first phase's), and start from the first phase's best weights
    (`phase2_from_best`: best.pt, as the course's flowers-102 lesson does); it lasts
    `epochs - freeze_epochs` epochs.

    `augment` is a preset name (core.data.augment.AUGMENT_PRESETS) or a dict of augmentation
    settings (core.data.augment.DEFAULTS: resize, crops, flips, rotation, colour jitter,
    grayscale, their order, and the evaluation resize); a dict is stored with every setting
    filled in. `normalization` is "imagenet", "dataset" or {"mean": [...], "std": [...]}.
    A recipe is a dict of these fields.

    `balance` counters unbalanced classes: "weights" weighs each class's loss by its rarity
    (N / (classes * n_c)); "sampler" draws each epoch's training images with replacement, each
    with chance 1 / its class's count, so the classes come up about equally often. The
    validation loss stays the plain one, comparable between runs.

    `nproc` > 1 trains in that many processes launched by torchrun (DDP, one per GPU on CUDA:
    core.training.distributed); `batch_size` stays the batch of one optimizer step, shared
    among them, so a run learns the same with any `nproc`.
    """

    data: str                               # split folder (train/, val/, test/, split.json)
    model: dict[str, Any] = field(default_factory=lambda: {"preset": "simple_cnn"})
    name: str = ""
    img_size: int = 64
    batch_size: int = 64
    epochs: int = 10
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9                   # SGD only
    nesterov: bool = False                  # SGD only
    scheduler: str = "none"
    step_size: int = 5                      # StepLR: epochs between decays
    gamma: float = 0.1                      # StepLR / plateau decay factor
    plateau_metric: str = "val_acc"         # ReduceLROnPlateau watches this (mode max for acc, min for loss)
    plateau_patience: int = 2               # ReduceLROnPlateau: epochs without progress before a decay
    label_smoothing: float = 0.0
    bias_lr_factor: float = 1.0             # BatchNorm biases' lr multiplier (core.training.optim.make_optimizer)
    tta: str = "none"                       # test-time augmentation of the final evaluation
    balance: str = "none"                   # unbalanced classes: "weights" (loss) or "sampler" (batches)
    augment: str | dict[str, Any] = "seed"
    normalization: str | dict[str, Any] = "imagenet"
    early_stop_metric: str = "val_acc"
    early_stop_patience: int = 0            # epochs without improvement; 0 = off
    freeze_epochs: int = 0                  # transfer learning: first epochs with only the head trained
    unfreeze_lr_factor: float = 0.1         # lr multiplier after those epochs (see the docstring)
    phase2_lr: float = 0.0                  # phase 2's lr; 0 = lr * unfreeze_lr_factor
    phase2_step_size: int = 0               # phase 2's StepLR step; 0 = step_size
    phase2_gamma: float = 0.0               # phase 2's decay factor; 0 = gamma
    phase2_from_best: bool = False          # phase 2 starts from phase 1's best weights (best.pt)
    frozen_bn: str = "eval"                 # BatchNorm in frozen layers: "eval" keeps its statistics
    device: str = "auto"
    nproc: int = 1                          # processes (one per GPU) under torchrun; batch_size is their total
    cache: str = "auto"                     # decoded images in "memory", on "disk" (mapped), "stream"ed; auto: by size
    seed: int = 42
    amp: bool = True                        # mixed precision, on CUDA only
    memory_format: str = "auto"             # channels_last, contiguous, or auto: the faster (timed at start)
    tensorboard: bool = False
    histogram_every: int = 100              # steps between weight/gradient histograms
    log_every: int = 10                     # steps between iteration-loss records
    tensorboard_batch_every: int = 100      # batches between Train/Batch_* scalars in TensorBoard

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError("training.config_unknown", keys=", ".join(unknown))
        return cls(**values).validated()

    @classmethod
    def of_run(cls, saved: dict[str, Any]) -> "TrainConfig":
        """The config a run folder's `config.json` was trained with (its extra facts - classes,
        counts, split id - left out), to resume it. A run saved before a setting existed keeps
        the behaviour it trained with: frozen BatchNorm then followed the data ("train")."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls.from_dict({"frozen_bn": "train"} | {k: v for k, v in saved.items() if k in known})

    def validated(self) -> "TrainConfig":
        from core.data.augment import normalize_settings, typed_mean_std

        checks = {
            "optimizer": (self.optimizer, OPTIMIZERS),
            "scheduler": (self.scheduler, SCHEDULERS),
            "early_stop_metric": (self.early_stop_metric, EARLY_STOP_METRICS),
            "plateau_metric": (self.plateau_metric, PLATEAU_METRICS),
            "frozen_bn": (self.frozen_bn, FROZEN_BN),
            "balance": (self.balance, BALANCES),
            "cache": (self.cache, CACHES),
            "tta": (self.tta, TTAS),
            "memory_format": (self.memory_format, MEMORY_FORMATS),
        }
        if isinstance(self.normalization, str):
            checks["normalization"] = (self.normalization, NORMALIZATIONS)
        for name, (value, choices) in checks.items():
            if value not in choices:
                raise UserError("training.config_choice", field=name, value=value, choices=", ".join(choices))
        positive = {"img_size": self.img_size, "batch_size": self.batch_size, "epochs": self.epochs,
                    "lr": self.lr, "bias_lr_factor": self.bias_lr_factor, "log_every": self.log_every,
                    "histogram_every": self.histogram_every, "tensorboard_batch_every": self.tensorboard_batch_every}
        for name, value in positive.items():
            if not value > 0:
                raise UserError("training.config_positive", field=name, value=value)
        if not self.nproc >= 1:
            raise UserError("training.config_positive", field="nproc", value=self.nproc)
        if self.batch_size < 2 * self.nproc:  # every process needs two images of each batch (BatchNorm)
            raise UserError("training.ddp.batch_small", batch=self.batch_size, nproc=self.nproc,
                            least=2 * self.nproc)
        typed_mean_std(self.normalization)
        # a dict is stored complete, so config.json says every setting the run used
        self.augment = (_checked_preset(self.augment, self.img_size) if isinstance(self.augment, str)
                        else normalize_settings(self.augment, self.img_size))
        for name in ("plateau_patience", "phase2_lr", "phase2_step_size", "phase2_gamma"):
            value = getattr(self, name)
            if not value >= 0:
                raise UserError("training.config_range", field=name, value=value)
        if not 0 <= self.label_smoothing < 1:
            raise UserError("training.config_range", field="label_smoothing", value=self.label_smoothing)
        if not 0 <= self.freeze_epochs < self.epochs + 1:
            raise UserError("training.config_range", field="freeze_epochs", value=self.freeze_epochs)
        return self


def _checked_preset(name: str, img_size: int) -> str:
    """A preset name, checked (presets stay names in config.json: what older runs hold)."""
    from core.data.augment import preset_settings

    preset_settings(name, img_size)
    return name


def phase_config(cfg: TrainConfig, second: bool) -> TrainConfig:
    """The config one transfer phase's optimizer and scheduler are built from: the second phase
    with its own StepLR step and gamma where it has them."""
    if not second:
        return cfg
    return dataclasses.replace(cfg, step_size=cfg.phase2_step_size or cfg.step_size,
                               gamma=cfg.phase2_gamma or cfg.gamma)


def phase_lr(cfg: TrainConfig, second: bool) -> float:
    """A phase's starting learning rate (see TrainConfig)."""
    if not second:
        return cfg.lr
    return cfg.phase2_lr or cfg.lr * cfg.unfreeze_lr_factor
