from pathlib import Path

import pytest

from streamguard.pipeline_registry import configured_seeds


def test_seeds_come_from_conf_with_local_override(tmp_path: Path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "parameters.yml").write_text("seeds: [0, 1, 2]\n")
    assert configured_seeds(tmp_path) == [0, 1, 2]
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "parameters.yml").write_text("seeds: [5]\n")
    assert configured_seeds(tmp_path) == [5]


def test_duplicate_seeds_are_rejected(tmp_path: Path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "parameters.yml").write_text("seeds: [1, 1]\n")
    with pytest.raises(ValueError, match="distinct"):
        configured_seeds(tmp_path)


def test_each_track_is_namespaced_per_seed():
    from streamguard.pipelines import fusion, gnn, transformer

    for module, track in ((transformer, "transformer"), (gnn, "gnn"), (fusion, "fusion")):
        pipeline = module.create_pipeline(seeds=[0, 3])
        outputs = pipeline.all_outputs()
        for seed in (0, 3):
            for artefact in ("checkpoint", "valid_logits", "test_logits", "metrics", "history"):
                assert f"{track}.seed_{seed}.{artefact}" in outputs
        assert {node.namespace for node in pipeline.nodes} >= {f"{track}.seed_0", f"{track}.seed_3"}


def test_fusion_reads_the_branch_checkpoints_of_the_same_seed():
    from streamguard.pipelines import fusion

    inputs = fusion.create_pipeline(seeds=[2]).inputs()
    assert {"transformer.seed_2.checkpoint", "gnn.seed_2.checkpoint", "params:fusion"} <= inputs


def test_graphs_are_built_once_for_all_seeds():
    from streamguard.pipelines import gnn

    builders = [node for node in gnn.create_pipeline(seeds=[0, 1, 2]).nodes if node.name.endswith("build_graphs")]
    assert len(builders) == 1


def test_cheap_results_are_written_before_the_first_long_training_node():
    """A run stopped during transformer training must already have the data report, the baseline's
    metrics and the graph report (the sequential runner follows ``Pipeline.nodes``)."""
    from streamguard.pipeline_registry import register_pipelines

    order = [node.name for node in register_pipelines()["__default__"].nodes]
    first_training = min(i for i, name in enumerate(order) if name.endswith(".train"))
    cheap = [name for name in order if name in ("load_and_validate", "deduplicate", "build_graphs") or name.startswith("baseline.")]
    assert {"baseline.seed_0.fit_and_score", "build_graphs", "deduplicate"} <= set(cheap)
    assert max(order.index(name) for name in cheap) < first_training, order[: first_training + 1]
