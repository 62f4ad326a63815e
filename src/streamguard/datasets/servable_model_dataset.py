"""The servable MLflow model of a track: a local model directory, also logged to the active run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

logger = logging.getLogger(__name__)


class ServableModelDataset(AbstractDataset[dict, Any]):
    """Saves ``{"scorer": EnsembleScorer | None, "reason": str}`` as an MLflow pyfunc model.

    The model directory goes to ``filepath`` (serve it with ``mlflow models serve -m <filepath>
    --env-manager local``) and, when an MLflow run is active, is logged to it as ``mlflow_name``
    (``runs:/<run id>/<mlflow_name>``). A package without a scorer (the track was not trained)
    writes nothing and logs the reason. Loading returns the ``mlflow.pyfunc`` model.
    """

    def __init__(self, filepath: str, mlflow_name: str = "model", metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self._mlflow_name = mlflow_name
        self.metadata = metadata

    def save(self, data: dict) -> None:
        scorer = data.get("scorer")
        if scorer is None:
            logger.warning("No servable model written to %s: %s", self._filepath, data.get("reason", "no scorer"))
            return
        from streamguard.serving.model import save_servable_model

        uri = save_servable_model(scorer, self._filepath, log_as=self._mlflow_name)
        logger.info("Servable %s model saved to %s%s", scorer.track, self._filepath, f" and logged to MLflow: {uri}" if uri else "")

    def load(self) -> Any:
        import mlflow.pyfunc

        if not (self._filepath / "MLmodel").exists():
            from kedro.io import DatasetError

            raise DatasetError(f"No servable model at {self._filepath}: run `kedro run --pipeline ensemble` after training.")
        return mlflow.pyfunc.load_model(str(self._filepath))

    def _exists(self) -> bool:
        return (self._filepath / "MLmodel").exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "mlflow_name": self._mlflow_name}
