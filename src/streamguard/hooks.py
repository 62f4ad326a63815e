"""Hooks: fail fast on an unknown preset; name and tag the MLflow run so runs tell themselves apart."""

import time
from collections.abc import Mapping
from typing import Any

from kedro.framework.hooks import hook_impl


class PresetHooks:
    def __init__(self) -> None:
        self._track_presets: dict[str, str] = {}

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        from streamguard.presets import validate_preset_name

        params = context.params
        validate_preset_name(params)
        # The preset each track resolved to (sg.preset writes it into the track's parameters).
        self._track_presets = {
            track: str(value["preset"])
            for track, value in params.items()
            if isinstance(value, Mapping) and value.get("preset") and f"{track}_presets" in params
        }

    @hook_impl(trylast=True)  # after kedro-mlflow's hook has started the run
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        import mlflow

        if mlflow.active_run() is None:
            return
        from streamguard.tracking import run_identity

        name, tags = run_identity(run_params, self._track_presets, started=time.time())
        mlflow.set_tags({**tags, "mlflow.runName": name})
