"""MLflow runs tell themselves apart: name by pipeline, preset and time; readable tags; the full command."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_project_copy, run_kedro

from streamguard.tracking.runs import kedro_command, run_identity, runner_name

KEDRO_RUN_PARAMS = {  # what Kedro 1.7's session records for `kedro run --pipeline fusion --params preset=...`
    "run_id": "2026-11-30T09.12.31.000Z",
    "env": None,
    "tags": None,
    "node_names": None,
    "from_nodes": None,
    "to_nodes": None,
    "from_inputs": None,
    "to_outputs": None,
    "load_versions": None,
    "namespaces": None,
    "pipeline_names": ["fusion"],
    "runtime_params": {"preset": "fusion_high_recall", "fusion": {"training": {"lr": 0.001}}},
    "runner": "<kedro.runner.sequential_runner.SequentialRunner object at 0x7f3a2b1c9d90>",
}


def test_run_name_and_tags_from_kedro_run_params() -> None:
    name, tags = run_identity(KEDRO_RUN_PARAMS, {"fusion": "fusion_high_recall", "gnn": "gnn_cpu_fast"}, started=0)
    assert name.startswith("fusion / fusion_high_recall / ")
    assert tags["preset"] == "fusion_high_recall"
    assert tags["preset.fusion"] == "fusion_high_recall" and tags["preset.gnn"] == "gnn_cpu_fast"
    assert tags["runner"] == "SequentialRunner"
    assert tags["pipeline_names"] == "fusion"
    assert tags["runtime_params"] == "preset=fusion_high_recall,fusion.training.lr=0.001"
    assert tags["kedro_command"] == "kedro run --pipelines=fusion --params=preset=fusion_high_recall,fusion.training.lr=0.001"


def test_default_run_is_named_and_tagged_too() -> None:
    params = {**KEDRO_RUN_PARAMS, "pipeline_names": ["__default__"], "runtime_params": {}, "env": "base"}
    name, tags = run_identity(params, {"transformer": "transformer_cpu_fast"}, started=0)
    assert name.startswith("default / default / ")
    assert tags["preset"] == "default" and tags["preset.transformer"] == "transformer_cpu_fast"
    assert kedro_command(params) == "kedro run --env=base"


@pytest.mark.parametrize(
    "runner", ["SequentialRunner", "<kedro.runner.sequential_runner.SequentialRunner object at 0x1>", "None"]
)
def test_runner_tag_is_the_class_name(runner: str) -> None:
    assert runner_name(runner) == "SequentialRunner"


@pytest.mark.slow
def test_two_preset_runs_and_a_default_run_are_told_apart_in_mlflow(tmp_path: Path) -> None:
    import mlflow

    project = make_project_copy(tmp_path / "project")
    run_kedro(project, pipeline="data_processing")
    run_kedro(project, pipeline="data_processing", runtime_params={"preset": "fusion_high_recall"})
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("streamguard")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(runs) == 2
    default, high_recall = (run.data.tags for run in runs)
    assert default["mlflow.runName"].startswith("data_processing / default / ")
    assert high_recall["mlflow.runName"].startswith("data_processing / fusion_high_recall / ")
    assert default["preset"] == "default" and default["preset.fusion"] == "fusion_balanced"
    assert high_recall["preset"] == "fusion_high_recall" and high_recall["preset.fusion"] == "fusion_high_recall"
    assert high_recall["kedro_command"] == "kedro run --pipelines=data_processing --params=preset=fusion_high_recall"
    assert high_recall["runner"] == "SequentialRunner"


def test_an_ensemble_run_is_tagged_with_the_presets_its_models_were_trained_with() -> None:
    from streamguard.hooks.run import _presets_trained_earlier

    class Pipeline:
        def inputs(self):
            return {"fusion.seed_0.valid_logits", "fusion.seed_1.valid_logits", "baseline.seed_0.valid_logits", "params:sweep"}

        def all_outputs(self):
            return {"fusion.ensemble_metrics"}

    class Catalog:
        files = {"fusion.seed_0.metrics": {"preset": "fusion_high_recall"}, "baseline.seed_0.metrics": {"preset": None}}

        def exists(self, name):
            return name in self.files

        def load(self, name):
            return self.files[name]

    assert _presets_trained_earlier(Pipeline(), Catalog()) == {"fusion": "fusion_high_recall (trained earlier)"}
