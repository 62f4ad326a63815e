"""Hooks: fail fast on an unknown preset and tag the MLflow run with the chosen one."""

from typing import Any

from kedro.framework.hooks import hook_impl


class PresetHooks:
    @hook_impl
    def after_context_created(self, context: Any) -> None:
        from streamguard.presets import validate_preset_name

        validate_preset_name(context.params)

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        import mlflow

        preset = (run_params.get("runtime_params") or {}).get("preset")
        if preset and mlflow.active_run() is not None:
            mlflow.set_tag("preset", preset)
