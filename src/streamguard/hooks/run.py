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
        from streamguard.config.presets import validate_preset_name

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
        from streamguard.tracking.runs import run_identity

        name, tags = run_identity(run_params, {**self._track_presets, **_presets_trained_earlier(pipeline, catalog)}, started=time.time())
        mlflow.set_tags({**tags, "mlflow.runName": name})


def _presets_trained_earlier(pipeline: Any, catalog: Any) -> dict[str, str]:
    """For tracks whose seeds this run reads but does not train (an ``ensemble`` run), the preset
    their models were trained with (from the seed's metrics.json), not this run's parameters."""
    import re

    outputs = pipeline.all_outputs()
    found: dict[str, str] = {}
    for name in sorted(pipeline.inputs()):
        match = re.fullmatch(r"(\w+)\.seed_(\d+)\.\w+", name)
        if not match or match.group(1) in found or f"{match.group(1)}.seed_{match.group(2)}.checkpoint" in outputs:
            continue
        metrics = f"{match.group(1)}.seed_{match.group(2)}.metrics"
        try:
            preset = catalog.load(metrics).get("preset") if catalog.exists(metrics) else None
        except Exception:  # an unreadable metrics file: the tag falls back to this run's parameters
            preset = None
        if preset:
            found[match.group(1)] = f"{preset} (trained earlier)"
    return found


class DataReportHooks:
    """Print the data report's headline and quality warnings at the end of a run that rebuilt the splits.

    Mid-run log lines scroll away under hours of training; the end of the run is where a user looks.
    It also says when the splits replaced ones made from another source (generated -> jsonl).
    """

    REPORT = "data_report"

    def __init__(self) -> None:
        self._previous_source: str | None = None

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        self._previous_source = None
        if self.REPORT in pipeline.all_outputs() and catalog.exists(self.REPORT):
            try:
                self._previous_source = catalog.load(self.REPORT).get("source") or "an earlier run's data"
            except Exception:  # an unreadable old report: the new one replaces it anyway
                self._previous_source = "an earlier run's data"

    @hook_impl
    def after_pipeline_run(self, run_params: dict, run_result: Any, pipeline: Any, catalog: Any) -> None:
        if self.REPORT not in pipeline.all_outputs() or not catalog.exists(self.REPORT):
            return
        from streamguard.data.quality import headline

        report = catalog.load(self.REPORT)
        lines = ["", headline(report)]
        source = report.get("source")
        if self._previous_source and source and self._previous_source != source:
            lines.append(
                f"  NOTE: the splits in data/03_primary now hold {source}; they replaced {self._previous_source}."
            )
        warnings = report.get("quality_warnings") or []
        if warnings:
            lines.append(f"  WARNING: {len(warnings)} data quality warning(s):")
            lines += [f"  WARNING: {warning}" for warning in warnings]
        print("\n".join(lines), flush=True)


class StaleEnsembleHooks:
    """After a run that retrained a track without its ensemble, say which artefacts are now stale.

    ``kedro run --pipeline fusion --params preset=...`` replaces the fusion checkpoints but not
    ``fusion.ensemble_metrics`` (its threshold), the final report or the servable model; the scan
    and the servable-model packaging refuse the mix (``streamguard.serving.consistency``), and this note
    says so at the end of the run, with the command that refreshes them.
    """

    @hook_impl
    def after_pipeline_run(self, run_params: dict, run_result: Any, pipeline: Any, catalog: Any) -> None:
        outputs = pipeline.all_outputs()
        retrained = sorted(
            {name.split(".")[0] for name in outputs if name.endswith(".checkpoint") and ".seed_" in name}
            - {name.split(".")[0] for name in outputs if name.endswith(".ensemble_metrics")}
        )
        if retrained:
            tracks = ", ".join(retrained)
            print(
                f"\nNOTE: {tracks} retrained without the ensemble pipeline: "
                + ", ".join(f"{track}.ensemble_metrics (threshold), {track}.servable_model" for track in retrained)
                + " and the final report still describe the previous models; `streamguard scan` refuses the mix. "
                "Refresh them with `kedro run --pipelines ensemble`.",
                flush=True,
            )


class ReuseNoticeHooks:
    """At the start of a training node, say what saved state it is about to reuse (``streamguard.training.reuse_notice``)."""

    @hook_impl
    def before_node_run(self, node: Any, catalog: Any, inputs: dict, is_async: bool) -> None:
        import logging

        from streamguard.training.reuse_notice import reuse_notice

        for name, value in inputs.items():
            if name.endswith(".training_state"):
                notice = reuse_notice(name.removesuffix(".training_state"), value)
                if notice:
                    logging.getLogger("streamguard.training.reuse_notice").info(notice)


class CpuThreadsHooks:
    """At the start of a run, the torch / BLAS thread counts from ``cpu_threads`` (``streamguard.runtime.threads``)."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        from streamguard.runtime.threads import apply_cpu_threads

        params = catalog.load("parameters") if catalog.exists("parameters") else {}
        apply_cpu_threads(params.get("cpu_threads", "auto"))
