"""Presets never silently mix: consumers of a track's checkpoints stop on a mix, naming the stale
artefact and the command that refreshes it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from streamguard.serving.consistency import StaleArtefactError, check_same_configuration, check_track_artefacts


def checkpoint(seed: int, preset: str, created: str) -> dict:
    return {"seed": seed, "config": {"preset": preset}, "config_hash": f"hash-{preset}", "created_at": created}


BALANCED = [checkpoint(s, "fusion_balanced", f"2026-11-30T09:0{s}:00+00:00") for s in (0, 1, 2)]
ENSEMBLE = {"timestamp": "2026-11-30T09:10:00+00:00", "best_threshold_by_f1": 0.35}


def test_artefacts_of_one_run_pass() -> None:
    check_track_artefacts("fusion", BALANCED, ENSEMBLE, "fusion.ensemble_metrics")
    check_track_artefacts("fusion", BALANCED, None, "fusion.ensemble_metrics")  # no ensemble yet: nothing to compare


def test_seeds_from_two_presets_are_refused_naming_both() -> None:
    mixed = [BALANCED[0], checkpoint(1, "fusion_high_recall", "2026-11-30T10:00:00+00:00"), BALANCED[2]]
    with pytest.raises(StaleArtefactError) as error:
        check_same_configuration("fusion", mixed)
    message = str(error.value)
    assert "seed(s) 0, 2: fusion_balanced" in message and "seed(s) 1: fusion_high_recall" in message
    assert "`kedro run --pipelines fusion,ensemble --params preset=fusion_high_recall`" in message


def test_ensemble_older_than_the_checkpoints_is_stale() -> None:
    retrained = [checkpoint(s, "fusion_high_recall", f"2026-11-30T10:0{s}:00+00:00") for s in (0, 1, 2)]
    with pytest.raises(StaleArtefactError) as error:
        check_track_artefacts("fusion", retrained, ENSEMBLE, "fusion.ensemble_metrics (data/08_reporting/fusion/ensemble_metrics.json)")
    message = str(error.value)
    assert message.startswith("fusion.ensemble_metrics (data/08_reporting/fusion/ensemble_metrics.json) is stale")
    assert "threshold 0.35 belongs to other weights" in message and "`kedro run --pipelines ensemble`" in message


def copy_of(project: Path, destination: Path) -> Path:
    """A copy of a trained project (conf, data, src, pyproject.toml) that a test may change."""
    for part in ("conf", "data", "src"):
        shutil.copytree(project / part, destination / part)
    shutil.copy(project / "pyproject.toml", destination)
    return destination


@pytest.mark.slow
def test_scan_stops_on_a_stale_ensemble_threshold(full_run: Path, tmp_path: Path, capsys) -> None:
    """The README's own example used to score high-recall weights against the balanced threshold."""
    from streamguard.serving.scan import cli as scan_cli

    project = copy_of(full_run, tmp_path / "project")
    metrics_path = project / "data/08_reporting/fusion/ensemble_metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["timestamp"] = "2000-01-01T00:00:00+00:00"  # as if the checkpoints were retrained after it
    metrics_path.write_text(json.dumps(metrics))
    source = tmp_path / "a.c"
    source.write_text("int a(char *s) { char b[4]; strcpy(b, s); return b[0]; }\n")

    assert scan_cli.main([str(source), "--project-dir", str(project), "--lines", "0"]) == scan_cli.EXIT_NO_MODEL
    err = capsys.readouterr().err
    assert "fusion.ensemble_metrics (data/08_reporting/fusion/ensemble_metrics.json) is stale" in err
    assert "kedro run --pipelines ensemble" in err


class _Pipeline:
    def __init__(self, outputs: set[str]) -> None:
        self.outputs = outputs

    def all_outputs(self) -> set[str]:
        return self.outputs


def test_a_track_only_run_says_its_ensemble_is_stale(capsys) -> None:
    from streamguard.hooks.run import StaleEnsembleHooks

    fusion_only = {"fusion.seed_0.checkpoint", "fusion.seed_1.checkpoint", "fusion.seed_0.metrics"}
    StaleEnsembleHooks().after_pipeline_run({}, {}, _Pipeline(fusion_only), None)
    printed = capsys.readouterr().out
    assert "NOTE: fusion retrained without the ensemble pipeline" in printed
    assert "fusion.ensemble_metrics (threshold), fusion.servable_model" in printed and "kedro run --pipelines ensemble" in printed

    StaleEnsembleHooks().after_pipeline_run({}, {}, _Pipeline(fusion_only | {"fusion.ensemble_metrics"}), None)
    assert capsys.readouterr().out == ""  # the default run refreshes the ensemble itself


@pytest.mark.slow
def test_switching_a_preset_and_back_reuses_what_was_trained(full_run: Path, tmp_path: Path, caplog) -> None:
    """The README's preset example, then the default again: the balanced fusion seeds come back, untrained."""
    import logging

    from conftest import run_kedro

    project = copy_of(full_run, tmp_path / "project")
    metrics = project / "data/08_reporting/fusion/seed_0/metrics.json"
    balanced = json.loads(metrics.read_text())

    run_kedro(project, "fusion", {"preset": "fusion_high_recall"})
    high_recall = json.loads(metrics.read_text())
    assert high_recall["test"] != balanced["test"]
    states = project / "data/06_models/fusion/seed_0/state"
    assert len(list((states / "configs").iterdir())) == 1  # the balanced states, kept apart

    with caplog.at_level(logging.INFO, logger="streamguard.training.resume"):
        run_kedro(project, "fusion")
    assert "states are back" in caplog.text and "without preparing data or models" in caplog.text
    again = json.loads(metrics.read_text())
    assert again["test"] == balanced["test"] and again["best_threshold_by_f1"] == balanced["best_threshold_by_f1"]
    assert len(list((states / "configs").iterdir())) == 1  # now the high-recall states wait there
