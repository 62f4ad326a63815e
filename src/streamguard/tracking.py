"""MLflow logging that works with or without an active run (plain scripts, tests, notebooks).

Nothing here imports Kedro: kedro-mlflow opens the run, these helpers only log into it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _active_mlflow():
    """The mlflow module when a run is active, else None (mlflow is imported lazily: ~3 s)."""
    import mlflow

    return mlflow if mlflow.active_run() is not None else None


def log_metrics_dict(
    metrics: Mapping[str, Any], prefix: str = "", artifact: str | os.PathLike | None = None
) -> None:
    """Log every numeric scalar of a metrics dict (dotted names) and the JSON file as an artifact."""
    from streamguard.metrics import flatten_for_mlflow

    mlflow = _active_mlflow()
    if mlflow is None:
        return
    flat = flatten_for_mlflow(metrics, prefix)
    if flat:
        mlflow.log_metrics(flat)
    if artifact is not None:
        mlflow.log_artifact(str(artifact), artifact_path=artifact_dir_for(prefix))


def artifact_dir_for(prefix: str) -> str:
    """``transformer.seed_0`` -> ``transformer/seed_0`` so artifacts group like the reporting folder."""
    return prefix.replace(".", "/") if prefix else "reports"


def epoch_logger(prefix: str) -> Callable[[Mapping[str, Any]], None]:
    """A training-loop callback that logs each epoch record as MLflow metric history."""

    def log_epoch(record: Mapping[str, Any]) -> None:
        mlflow = _active_mlflow()
        if mlflow is None:
            return
        step = int(record.get("epoch", 0))
        values = {
            f"{prefix}.curve.{key}": float(value)
            for key, value in record.items()
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        mlflow.log_metrics(values, step=step)

    return log_epoch


def log_artifact(path: str | os.PathLike, artifact_dir: str = "reports") -> None:
    """Log a file (a plot, a table) under ``artifact_dir`` when a run is active."""
    mlflow = _active_mlflow()
    if mlflow is not None and Path(path).exists():
        mlflow.log_artifact(str(path), artifact_path=artifact_dir)


def set_tags(tags: Mapping[str, Any]) -> None:
    mlflow = _active_mlflow()
    if mlflow is not None:
        mlflow.set_tags({key: str(value) for key, value in tags.items()})
