"""metrics.json on disk and the same numbers in MLflow, from one catalog entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from streamguard.datasets._files import atomic_write


class MetricsDataset(AbstractDataset[dict, dict]):
    """Saves a metrics dict as JSON and logs its scalars (and the file) to the active MLflow run.

    ``mlflow_prefix`` names the metrics (``transformer.seed_0.test.f1``) and the artifact folder;
    dataset factories fill it from the entry name. With ``allow_missing`` a file that does not
    exist loads as None (the final report then leaves that track or seed out and says so).
    """

    def __init__(
        self,
        filepath: str,
        mlflow_prefix: str = "",
        log_to_mlflow: bool = True,
        allow_missing: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(filepath)
        self._allow_missing = allow_missing
        self._prefix = mlflow_prefix
        self._log_to_mlflow = log_to_mlflow
        self.metadata = metadata

    @property
    def filepath(self) -> Path:
        """Where the metrics file lives (read by the scan index)."""
        return self._filepath

    def load(self) -> dict | None:
        try:
            return json.loads(self._filepath.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            if self._allow_missing:
                return None
            raise DatasetError(f"{self._filepath} does not exist yet: run the pipeline that writes it.") from exc
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{self._filepath} is not valid JSON ({exc}); delete it and re-run the pipeline that writes it."
            ) from exc

    def save(self, data: dict) -> None:
        text = json.dumps(data, indent=2, sort_keys=False, default=_jsonable)
        atomic_write(self._filepath, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
        if self._log_to_mlflow:
            from streamguard.tracking.runs import log_metrics_dict

            log_metrics_dict(data, self._prefix, artifact=self._filepath)

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "mlflow_prefix": self._prefix}


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays in metrics dicts become plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
