"""Checkpoint files that are never half-written and load safely (weights only, clear errors)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from streamguard.runtime.atomic import atomic_write
from streamguard.training.config import config_hash

__all__ = ["CheckpointError", "atomic_torch_save", "safe_torch_load", "config_hash"]


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or unreadable; the message names it and says what to do."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`streamguard.runtime.atomic.atomic_write`: a crash mid-write leaves the
    previous file intact (never a truncated checkpoint) and no temp file behind on the next save."""
    atomic_write(path, lambda temp: torch.save(obj, temp))


def safe_torch_load(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", how_to_produce: str = ""
) -> dict:
    """``torch.load(weights_only=True)``; a missing, truncated or corrupt file raises :class:`CheckpointError`.

    ``how_to_produce`` (for example "Produce it with `kedro run --pipeline gnn`.") ends the message.
    """
    source = Path(path)
    produce = f". {how_to_produce}" if how_to_produce else " (for example `kedro run`)."
    remedy = f"Delete {source} and re-run the training pipeline that produces it{produce}"
    if not source.is_file():
        raise CheckpointError(f"checkpoint {source} does not exist. Run the training pipeline that produces it{produce}")
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {source} is truncated, corrupt or not a weights-only torch checkpoint "
            f"({type(exc).__name__}: {reason}). {remedy}"
        ) from exc
