"""Checkpoint files that are never half-written and load safely (weights only, clear errors)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from streamguard.training.config import config_hash

__all__ = ["CheckpointError", "atomic_torch_save", "safe_torch_load", "config_hash"]


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or unreadable; the message names it and says what to do."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temp file beside ``path``, fsync, then ``os.replace``.

    A crash mid-write leaves the previous file intact (never a truncated checkpoint), and the temp
    file is removed on failure.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False)
    temp_path = Path(handle.name)
    try:
        with handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_path, default_file_mode())  # temp files start at 0o600; keep the usual mode
        os.replace(temp_path, target)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def default_file_mode() -> int:
    """What ``open()`` would give a new file (0o666 less the umask); temp files start at 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable where the OS allows it (POSIX); best effort elsewhere."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """``torch.load(weights_only=True)``; a missing, truncated or corrupt file raises :class:`CheckpointError`."""
    source = Path(path)
    remedy = f"Delete {source} and re-run the training pipeline that produces it (for example `kedro run`)."
    if not source.is_file():
        raise CheckpointError(f"checkpoint {source} does not exist. Run the training pipeline that produces it.")
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {source} is truncated, corrupt or not a weights-only torch checkpoint "
            f"({type(exc).__name__}: {reason}). {remedy}"
        ) from exc
