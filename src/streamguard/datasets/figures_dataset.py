"""Matplotlib figures saved as PNGs in one folder and logged to the active MLflow run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from streamguard.datasets._files import atomic_write


class FiguresDataset(AbstractDataset[dict, list]):
    """Saves ``{name: Figure}`` as ``<folder>/<name>.png`` (and MLflow artifacts under ``mlflow_dir``)."""

    def __init__(self, filepath: str, mlflow_dir: str = "figures", dpi: int = 120, metadata: dict[str, Any] | None = None) -> None:
        self._folder = Path(filepath)
        self._mlflow_dir = mlflow_dir
        self._dpi = dpi
        self.metadata = metadata

    def save(self, data: dict) -> None:
        from streamguard.tracking.runs import log_artifact

        for name, figure in data.items():
            path = self._folder / f"{name}.png"
            atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=self._dpi, bbox_inches="tight"))
            figure.clear()  # release the artists; report figures are never registered with pyplot
            log_artifact(path, self._mlflow_dir)

    def load(self) -> list:
        """The saved PNG paths (figures are write-only artefacts)."""
        return sorted(self._folder.glob("*.png"))

    def _exists(self) -> bool:
        return self._folder.is_dir() and any(self._folder.glob("*.png"))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._folder), "mlflow_dir": self._mlflow_dir}
