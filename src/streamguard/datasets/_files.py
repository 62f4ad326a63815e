"""Small file helpers shared by the datasets."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from streamguard.training.checkpoint import default_file_mode, remove_stale_temp_files

logger = logging.getLogger(__name__)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temp file in the same folder, then os.replace: readers never see half a file.

    Temp files that a killed earlier write of ``path`` left behind are removed first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, default_file_mode())  # mkstemp creates 0o600 files
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def missing_artefact(path: Path, name: str, how_to_produce: str) -> None:
    """Log why an optional artefact is absent and how to produce it (the caller then gets None)."""
    logger.info("%s not found at %s (loaded as None). %s", name, path, how_to_produce)
