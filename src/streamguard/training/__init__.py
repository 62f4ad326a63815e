"""The one training loop shared by every track, and its building blocks (plain torch, no Kedro).

May import: evaluation, runtime, config.

Importing this package costs torch only; transformers (schedules) and scikit-learn (F1) are
imported when :func:`fit` runs.
"""

from streamguard.training.batching import LengthGroupedSampler, move_to_device, pad_token_batch
from streamguard.training.checkpoint import CheckpointError, atomic_torch_save, safe_torch_load
from streamguard.training.config import TrainConfig, config_hash
from streamguard.training.components import resolve_device
from streamguard.training.loop import TIMING_KEYS, FitResult, NonFiniteLossError, fit
from streamguard.training.predict import embed, predict_logits
from streamguard.training.losses import FocalLoss, build_loss, class_weights_from_labels
from streamguard.training.resume import ResumeStore, resumable_fit
from streamguard.training.seeding import capture_rng_state, restore_rng_state, seed_everything

__all__ = [
    "TIMING_KEYS",
    "CheckpointError",
    "FitResult",
    "FocalLoss",
    "LengthGroupedSampler",
    "NonFiniteLossError",
    "ResumeStore",
    "TrainConfig",
    "atomic_torch_save",
    "build_loss",
    "capture_rng_state",
    "class_weights_from_labels",
    "config_hash",
    "embed",
    "fit",
    "move_to_device",
    "pad_token_batch",
    "predict_logits",
    "resolve_device",
    "restore_rng_state",
    "resumable_fit",
    "safe_torch_load",
    "seed_everything",
]
