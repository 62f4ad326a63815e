"""Per-row logits with idx and label, so ensembles can check that seeds are aligned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset, DatasetError

from streamguard.datasets._files import atomic_write, missing_artefact

LOGITS_COLUMNS = ("idx", "label", "logit_0", "logit_1", "prob")


class LogitsDataset(AbstractDataset[pd.DataFrame, "pd.DataFrame | None"]):
    """A parquet table with columns idx, label, logit_0, logit_1, prob (P(vulnerable))."""

    def __init__(
        self,
        filepath: str,
        allow_missing: bool = False,
        how_to_produce: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(filepath)
        self._allow_missing = allow_missing
        self._how_to_produce = how_to_produce
        self.metadata = metadata

    def load(self) -> pd.DataFrame | None:
        if not self._filepath.exists():
            if self._allow_missing:
                missing_artefact(self._filepath, "Logits", self._how_to_produce)
                return None
            raise DatasetError(f"Logits file {self._filepath} does not exist. {self._how_to_produce}")
        try:
            frame = pd.read_parquet(self._filepath)
        except Exception as exc:  # pyarrow raises several types for truncated files
            raise DatasetError(
                f"Logits file {self._filepath} is unreadable ({type(exc).__name__}: {exc}). "
                f"Delete it and re-run the pipeline that writes it. {self._how_to_produce}"
            ) from exc
        missing = [column for column in LOGITS_COLUMNS if column not in frame.columns]
        if missing:
            raise DatasetError(f"Logits file {self._filepath} lacks columns {missing}.")
        return frame

    def save(self, data: pd.DataFrame) -> None:
        missing = [column for column in LOGITS_COLUMNS if column not in data.columns]
        if missing:
            raise DatasetError(f"Logits to save lack columns {missing}; got {list(data.columns)}.")
        atomic_write(self._filepath, lambda tmp: data.to_parquet(tmp, index=False))

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "allow_missing": self._allow_missing}
