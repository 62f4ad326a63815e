"""Code graphs of one split, built once and shared by every GNN seed and by fusion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset


class GraphsDataset(AbstractDataset[list, list]):
    """A list of ``CodeGraph`` in one compressed ``.npz`` (no pickle)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> list:
        from streamguard.graphs.storage import load_graphs

        return load_graphs(self._filepath)

    def save(self, data: list) -> None:
        from streamguard.graphs.storage import save_graphs

        save_graphs(data, self._filepath)

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
