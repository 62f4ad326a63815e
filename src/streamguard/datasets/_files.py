"""Small file helpers shared by the datasets."""

from __future__ import annotations

import logging
from pathlib import Path

from streamguard.runtime.atomic import atomic_write

__all__ = ["atomic_write", "missing_artefact"]

logger = logging.getLogger(__name__)


def missing_artefact(path: Path, name: str, how_to_produce: str) -> None:
    """Log why an optional artefact is absent and how to produce it (the caller then gets None)."""
    logger.info("%s not found at %s (loaded as None). %s", name, path, how_to_produce)
