"""Checkpoint files that are never half-written and load safely (weights only, clear errors)."""

from __future__ import annotations

import glob
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from streamguard.training.config import config_hash

logger = logging.getLogger(__name__)

__all__ = ["CheckpointError", "atomic_torch_save", "safe_torch_load", "config_hash", "remove_stale_temp_files"]


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or unreadable; the message names it and says what to do."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temp file beside ``path``, fsync, then ``os.replace``.

    A crash mid-write leaves the previous file intact (never a truncated checkpoint), and the temp
    file is removed on failure; temp files a killed process left beside ``path`` are removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(target)
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
    fsync_directory(target.parent)


def temp_file_pattern(path: str | os.PathLike) -> str:
    """Glob of the temp files an atomic save of ``path`` creates (``.<name>.<random>.tmp`` beside it)."""
    return f".{glob.escape(Path(path).name)}.*.tmp"


def remove_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Delete the temp files a killed atomic save of ``path`` left behind; returns what was removed.

    One writer per file at a time is assumed (Kedro saves each output once per run), so any such
    file is debris of an interrupted save.
    """
    target = Path(path)
    removed = []
    if not target.parent.is_dir():
        return removed
    for stale in target.parent.glob(temp_file_pattern(target)):
        try:
            stale.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:  # read-only folder, permissions: leave it, the save itself will say more
            logger.debug("could not remove stale temp file %s: %s", stale, exc)
            continue
        removed.append(stale)
        logger.info("removed %s, left by an interrupted save of %s", stale, target)
    return removed


def default_file_mode() -> int:
    """What ``open()`` would give a new file (0o666 less the umask); temp files start at 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_directory(directory: Path) -> None:
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
