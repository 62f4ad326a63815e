"""The shared training loop's settings: one dataclass for every track, built from plain dicts."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEDULERS = ("linear", "cosine", "constant")
AMP_DTYPES = (None, "fp16", "bf16")
LOSSES = ("ce", "focal")
CLASS_WEIGHTINGS = ("none", "balanced")
TRIPLE_WEIGHTING_GUARDS = ("adjust", "error")
SKIP_MIN = 17  # torch-lr-finder needs skip_start + skip_end + 2 points to suggest a rate
# What picks the best epoch and drives early stopping. ROC-AUC by default: F1 at 0.5 rewards a
# model that calls everything vulnerable (F1 ~0.62 at a 45 % positive rate), so an untrained
# first epoch could win and stop training; ROC-AUC is 0.5 for such a model.
SELECTION_METRICS = ("valid_roc_auc", "valid_f1", "valid_loss")


@dataclass
class TrainConfig:
    """Every knob of :func:`streamguard.training.fit`; defaults suit a tiny model on CPU."""

    epochs: int = 3
    batch_size: int = 16
    eval_batch_size: int = 64
    lr: float | str = 5e-4  # or "auto": a range test picks it (streamguard.training.lr_finder), cached
    encoder_lr: float | None = None  # lr of ``model.encoder`` params when set (discriminative fine-tuning)
    weight_decay: float = 0.01
    scheduler: str = "linear"
    warmup_ratio: float = 0.1
    gradient_accumulation_steps: int = 1
    amp_dtype: str | None = None
    grad_clip_norm: float = 1.0  # 0 disables clipping
    ema: bool = False
    ema_decay: float = 0.999
    early_stopping_patience: int = 2  # 0 disables early stopping
    selection_metric: str = "valid_roc_auc"  # best epoch + early stopping: valid_roc_auc | valid_f1 (at 0.5) | valid_loss
    loss: str = "ce"
    focal_gamma: float = 2.0
    class_weighting: str = "none"
    vulnerable_weight_multiplier: float = 1.0
    max_class_weight: float = 5.0
    label_smoothing: float = 0.0
    weighted_sampler: bool = False
    group_by_length: bool = True
    pad_to_multiple_of: int | None = 8
    num_workers: int = 0
    prefetch_factor: int | None = None
    persistent_workers: bool = False
    drop_last: bool = False
    seed: int = 0
    deterministic: bool = True
    # Dropout masks from random bits while training on CPU (streamguard.training.fast_dropout): the
    # same layers, ~3x cheaper masks; False keeps torch's own (slower) CPU dropout.
    fast_dropout: bool = True
    device: str = "auto"
    max_nonfinite_steps: int = 0
    progress: bool = True
    # Collapse detection (streamguard.training.collapse): from this epoch (0 = off), this many consecutive
    # epochs predicting one class only on validation stop the seed with a report, as the original did.
    collapse_check_from_epoch: int = 2
    collapse_consecutive_epochs: int = 2
    # Sampler + multiplier > 1 + focal loss at once (streamguard.training.weighting): adjust | error.
    triple_weighting_guard: str = "adjust"
    # Processes that train one seed data-parallel (Accelerate; streamguard.training.distributed).
    num_processes: int = 1
    # lr: auto. The range test's length and where its results are cached (null: not cached).
    lr_finder_iterations: int = 100
    lr_finder_cache_dir: str | None = "data/06_models/lr_finder"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Fail at construction on values the loop cannot honour, instead of mid-training."""
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.eval_batch_size >= 1, "eval_batch_size must be >= 1"),
            (self.lr == "auto" or (not isinstance(self.lr, str) and self.lr > 0), "lr must be > 0 or 'auto'"),
            (self.encoder_lr is None or self.encoder_lr >= 0, "encoder_lr must be >= 0 or null"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.scheduler in SCHEDULERS, f"scheduler must be one of {SCHEDULERS}"),
            (0.0 <= self.warmup_ratio < 1.0, "warmup_ratio must be in [0, 1)"),
            (self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps must be >= 1"),
            (self.amp_dtype in AMP_DTYPES, f"amp_dtype must be one of {AMP_DTYPES}"),
            (self.grad_clip_norm >= 0, "grad_clip_norm must be >= 0 (0 disables)"),
            (0.0 <= self.ema_decay <= 1.0, "ema_decay must be in [0, 1]"),
            (self.early_stopping_patience >= 0, "early_stopping_patience must be >= 0 (0 disables)"),
            (self.selection_metric in SELECTION_METRICS, f"selection_metric must be one of {SELECTION_METRICS}"),
            (self.loss in LOSSES, f"loss must be one of {LOSSES}"),
            (self.focal_gamma >= 0, "focal_gamma must be >= 0"),
            (self.class_weighting in CLASS_WEIGHTINGS, f"class_weighting must be one of {CLASS_WEIGHTINGS}"),
            (self.vulnerable_weight_multiplier > 0, "vulnerable_weight_multiplier must be > 0"),
            (self.max_class_weight > 0, "max_class_weight must be > 0"),
            (0.0 <= self.label_smoothing < 1.0, "label_smoothing must be in [0, 1)"),
            (self.pad_to_multiple_of is None or self.pad_to_multiple_of >= 1, "pad_to_multiple_of must be >= 1 or null"),
            (self.num_workers >= 0, "num_workers must be >= 0"),
            (self.prefetch_factor is None or self.prefetch_factor >= 1, "prefetch_factor must be >= 1 or null"),
            (self.max_nonfinite_steps >= 0, "max_nonfinite_steps must be >= 0"),
            (self.num_processes >= 1, "num_processes must be >= 1"),
            (self.lr_finder_iterations >= SKIP_MIN, f"lr_finder_iterations must be >= {SKIP_MIN}"),
            (self.collapse_check_from_epoch >= 0, "collapse_check_from_epoch must be >= 0 (0 disables)"),
            (self.collapse_consecutive_epochs >= 1, "collapse_consecutive_epochs must be >= 1"),
            (self.triple_weighting_guard in TRIPLE_WEIGHTING_GUARDS, f"triple_weighting_guard must be one of {TRIPLE_WEIGHTING_GUARDS}"),
        ]
        errors = [message for ok, message in checks if not ok]
        if errors:
            raise ValueError("invalid training config: " + "; ".join(errors))

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.init]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a params block; unknown keys are an error (a typo must not be silently ignored)."""
        valid = cls.field_names()
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(f"unknown training config key(s) {unknown}; valid keys are: {', '.join(valid)}")
        return cls(**{name: _coerce(name, value) for name, value in values.items()})

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, so it can sit in a weights-only torch checkpoint and in MLflow params."""
        return {name: getattr(self, name) for name in self.field_names()}


_FLOAT_FIELDS = {
    "lr", "encoder_lr", "weight_decay", "warmup_ratio", "grad_clip_norm", "ema_decay", "focal_gamma",
    "vulnerable_weight_multiplier", "max_class_weight", "label_smoothing",
}
_INT_FIELDS = {
    "epochs", "batch_size", "eval_batch_size", "gradient_accumulation_steps", "early_stopping_patience",
    "pad_to_multiple_of", "num_workers", "prefetch_factor", "seed", "max_nonfinite_steps", "num_processes",
    "collapse_check_from_epoch", "collapse_consecutive_epochs", "lr_finder_iterations",
}


def _coerce(name: str, value: Any) -> Any:
    """YAML 1.1 reads ``5e-4`` as a string and ints where floats are meant: normalise the numbers."""
    if value is None or isinstance(value, bool) or (name == "lr" and value == "auto"):
        return value
    try:
        if name in _FLOAT_FIELDS:
            return float(value)
        if name in _INT_FIELDS:
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
    except (TypeError, ValueError):
        raise ValueError(f"training config {name}={value!r} is not a number") from None
    return value


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable short id of a config: sha256 of its sorted-key JSON, first 16 hex digits."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
