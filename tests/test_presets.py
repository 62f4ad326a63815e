from pathlib import Path

import pytest

from streamguard.config.presets import UnknownPresetError, known_presets, validate_preset_name


def load_parameters(project: Path, runtime_params: dict | None = None) -> dict:
    from kedro.config import OmegaConfigLoader

    from streamguard import settings

    loader = OmegaConfigLoader(str(project / "conf"), runtime_params=runtime_params or {}, **settings.CONFIG_LOADER_ARGS)
    return loader["parameters"]


def test_every_track_defaults_to_its_default_preset(project_copy):
    params = load_parameters(project_copy)
    assert params["transformer"]["preset"] == "transformer_cpu_fast"
    assert params["gnn"]["preset"] == "gnn_cpu_fast"
    assert params["fusion"]["preset"] == "fusion_balanced"


def test_fusion_presets_match_the_design_card(project_copy):
    balanced = load_parameters(project_copy, {"preset": "fusion_balanced"})["fusion"]
    assert balanced["preset"] == "fusion_balanced"
    assert 0.2 <= balanced["dropout"] <= 0.3
    assert balanced["training"]["ema"] is False
    assert balanced["training"]["scheduler"] == "cosine"
    assert balanced["training"]["warmup_ratio"] == 0.1
    assert balanced["training"]["grad_clip_norm"] == 1.0
    high_recall = load_parameters(project_copy, {"preset": "fusion_high_recall"})["fusion"]
    assert high_recall["training"]["loss"] == "focal"
    assert high_recall["training"]["focal_gamma"] == 2.0
    assert high_recall["training"]["scheduler"] == "cosine"
    assert high_recall["training"]["grad_clip_norm"] == 1.0


def test_preset_only_touches_its_own_track(project_copy):
    params = load_parameters(project_copy, {"preset": "transformer_small_cpu"})
    assert params["transformer"]["model_name"] == "small"
    assert params["fusion"]["preset"] == "fusion_balanced"


def test_dotted_override_beats_the_preset(project_copy):
    params = load_parameters(
        project_copy, {"preset": "transformer_small_cpu", "transformer": {"training": {"lr": 1e-4}}}
    )
    assert params["transformer"]["model_name"] == "small"
    assert params["transformer"]["training"]["lr"] == 1e-4


def test_unknown_preset_lists_the_known_ones(project_copy):
    params = load_parameters(project_copy, {"preset": "fusion_turbo"})
    with pytest.raises(UnknownPresetError) as error:
        validate_preset_name(params)
    message = str(error.value)
    assert "fusion_turbo" in message
    for name in ("fusion_balanced", "fusion_high_recall", "transformer_cpu_fast", "gnn_cpu_fast"):
        assert name in message


def test_preset_names_are_unique_across_tracks(project_copy):
    params = load_parameters(project_copy)
    names = [name for key, catalog in params.items() if key.endswith("_presets") for name in catalog]
    assert len(names) == len(set(names)) == len(known_presets(params))


def test_a_bundle_sets_every_track_it_names(project_copy):
    params = load_parameters(project_copy, {"preset": "devign_cpu"})
    assert validate_preset_name(params) == "devign_cpu"
    assert params["transformer"]["preset"] == "transformer_devign_cpu"
    assert params["gnn"]["preset"] == "gnn_devign_cpu"
    assert params["fusion"]["preset"] == "fusion_devign_cpu"
    assert params["transformer"]["training"]["lr"] == 5.0e-4 and params["gnn"]["training"]["early_stopping_patience"] == 3
    # A dotted override still wins over the bundle's preset.
    tuned = load_parameters(project_copy, {"preset": "devign_cpu", "gnn": {"training": {"early_stopping_patience": 7}}})
    assert tuned["gnn"]["training"]["early_stopping_patience"] == 7 and tuned["gnn"]["preset"] == "gnn_devign_cpu"


def test_a_bundle_naming_an_unknown_preset_is_refused(project_copy):
    from streamguard.config.presets import preset_bundles

    params = load_parameters(project_copy)
    params["preset_bundles"] = {"broken": {"gnn": "gnn_does_not_exist"}}
    with pytest.raises(UnknownPresetError, match="gnn_does_not_exist"):
        preset_bundles(params)
