"""What every track's recipe shares: checkpoint layout and the train/valid split handling."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

CHECKPOINT_FORMAT_VERSION = 1


def plain(value: Any) -> Any:
    """OmegaConf/Mapping params to plain dicts and lists (storable with weights_only loading)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def train_config(params: Mapping[str, Any], seed: int):
    """The shared loop's TrainConfig from a track's ``training`` block, with the run's seed."""
    from streamguard.training import TrainConfig

    return TrainConfig.from_dict({**plain(params["training"]), "seed": seed})


def build_checkpoint(
    track: str, seed: int, params: Mapping[str, Any], model: Mapping[str, Any], result: Any, **extra: Any
) -> dict[str, Any]:
    """One checkpoint layout for every track: model export, config (+hash), training state, history."""
    import torch

    from streamguard.training.config import config_hash

    config = plain(params)
    return {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "track": track,
        "seed": int(seed),
        "config": config,
        "config_hash": config_hash(config),
        "model": dict(model),
        "best_epoch": int(result.best_epoch),
        "best_valid_f1": float(result.best_valid_f1),
        "history": list(result.history),
        "training_state": result.state,
        "nonfinite_steps": int(result.nonfinite_steps),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "torch_version": str(torch.__version__),  # TorchVersion is not weights-only loadable
        **extra,
    }


def require_track(checkpoint: Mapping[str, Any], track: str) -> None:
    if checkpoint.get("track") != track:
        raise ValueError(f"expected a {track} checkpoint, got one for track {checkpoint.get('track')!r}")
