"""Atomic file writes: every artefact (checkpoint, state, logits, metrics, figure, graphs) is
written through a temp file beside it and ``os.replace``d, so a kill leaves the old file or the
new one, never half a file. Nothing here imports Kedro or torch."""

from __future__ import annotations

import glob
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """``write(temp_path)``, fsync, the usual file mode, then ``os.replace`` onto ``path``.

    Temp files that a killed earlier write of ``path`` left behind are removed first; the temp
    file is removed when ``write`` fails.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(target)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    temp = Path(temp_name)
    try:
        write(temp)
        os.chmod(temp, default_file_mode())  # mkstemp creates 0o600 files
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    fsync_directory(target.parent)


def temp_file_pattern(path: str | os.PathLike) -> str:
    """Glob of the temp files an atomic write of ``path`` creates (``.<name>.<random>.tmp`` beside it)."""
    return f".{glob.escape(Path(path).name)}.*.tmp"


def remove_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Delete the temp files a killed atomic write of ``path`` left behind; returns what was removed.

    One writer per file at a time is assumed (Kedro saves each output once per run), so any such
    file is debris of an interrupted save.
    """
    target = Path(path)
    removed: list[Path] = []
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
