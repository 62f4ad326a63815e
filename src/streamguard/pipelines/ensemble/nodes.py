"""ensemble nodes: per-track seed ensembles and the final cross-track report."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)


def ensemble(
    params: dict[str, Any],
    sweep: dict,
    valid_functions: pd.DataFrame,
    test_functions: pd.DataFrame,
    valid_graphs: list | None = None,
    test_graphs: list | None = None,
    *,
    track: str,
    seeds: list[int],
    **seed_inputs: Any,
):
    """Average the seeds' logits of one track.

    ``seed_inputs`` holds ``valid_logits_<s>``, ``test_logits_<s>`` (None when missing) and
    ``checkpoint_<s>`` (a loader) per seed; with ``recompute`` a seed's missing logits are rebuilt
    from its checkpoint before ensembling.
    """
    from streamguard.evaluation.ensemble import ensemble_track, recompute_missing_logits
    from streamguard.tracks.logits import checkpoint_logits

    configured = params.get("tracks")
    if isinstance(configured, str):  # `--params ensemble.tracks=fusion` arrives as a string
        configured = configured.replace(";", " ").replace("+", " ").split()
    if configured is not None and track not in configured:
        raise ValueError(
            f"ensemble.tracks={list(configured)} leaves out {track}, but the ensemble pipeline is built from conf when "
            f"Kedro starts, so --params cannot change which tracks it runs. Run `kedro run --pipeline ensemble_<track>` "
            f"(ensemble_transformer, ensemble_gnn, ensemble_fusion) for one track, or set ensemble.tracks in "
            f"conf/local/parameters_ensemble.yml."
        )
    per_seed = {seed: {"valid": seed_inputs[f"valid_logits_{seed}"], "test": seed_inputs[f"test_logits_{seed}"]} for seed in seeds}
    if params.get("recompute", False):
        per_seed = recompute_missing_logits(
            track,
            per_seed,
            {seed: seed_inputs[f"checkpoint_{seed}"] for seed in seeds},
            {"valid": valid_functions, "test": test_functions},
            {"valid": valid_graphs, "test": test_graphs},
            checkpoint_logits,
        )
    return ensemble_track(track, per_seed, average=params["average"], sweep=sweep)


def stacked_ensemble(params: dict[str, Any], sweep: dict, **logits: pd.DataFrame | None):
    """The stacking meta-model over the inputs named in ``ensemble.stacking.inputs``.

    ``logits`` holds ``valid_<name>`` / ``test_<name>`` for the baseline and every track; only the
    configured inputs are stacked. Disabled (``enabled: false``) it writes empty outputs, which
    the final report leaves out.
    """
    from streamguard.evaluation.stacking import stack_inputs, stack_tracks, stacking_settings

    settings = stacking_settings(params.get("stacking"))
    if not settings["enabled"]:
        logger.info("Stacking is off (ensemble.stacking.enabled=false).")
        return {"enabled": False}, _empty_logits(), _empty_logits()
    names = stack_inputs(settings)
    unknown = [name for name in names if f"valid_{name}" not in logits]
    if unknown:
        raise ValueError(f"ensemble.stacking.inputs names unknown tracks {unknown}; known: {sorted(k[6:] for k in logits if k.startswith('valid_'))}")
    available = [name for name in names if logits[f"valid_{name}"] is not None and logits[f"test_{name}"] is not None]
    if len(available) < 2:
        reason = f"stacking needs two of {names} with valid and test logits; only {available or 'none'} exist"
        logger.warning("No stacked model: %s.", reason)
        return {"enabled": False, "reason": reason}, _empty_logits(), _empty_logits()
    metrics, valid, test = stack_tracks(
        {name: logits[f"valid_{name}"] for name in names},
        {name: logits[f"test_{name}"] for name in names},
        sweep=sweep,
        folds=int(settings["folds"]),
        C=float(settings["C"]),
        seed=int(settings["seed"]),
    )
    return {"enabled": True, **metrics}, valid, test


def _empty_logits() -> pd.DataFrame:
    from streamguard.datasets.logits_dataset import LOGITS_COLUMNS

    return pd.DataFrame({column: pd.Series(dtype="float64") for column in LOGITS_COLUMNS})


def final_report(*inputs: Any, tracks: list[str], seeds: list[int]):
    """Per-seed mean +- std vs ensemble for every track, beside the baseline: CSV, Markdown, figures.

    ``inputs`` is, per track: the ensemble metrics, the ensemble test logits, then each seed's
    metrics; then the stacked ensemble's metrics and test logits (``{"enabled": false}`` when
    stacking is off); then ``params:sweep`` and the baseline's valid and test logits (None when the
    baseline has not been run: the report then has no baseline row and says how to add it).
    The baseline is scored here from its logits with the same function and sweep as its
    ``metrics.json``, so the numbers are the same. Every ensemble row gets the paired-bootstrap
    95 % interval of its test ROC-AUC difference to the baseline (same test rows).
    """
    from streamguard.evaluation.scoring import metrics_from_logits
    from streamguard.evaluation.report import BASELINE_TRACK, report_figures, summary_markdown, summary_table
    from streamguard.evaluation.stacking import STACKED_TRACK

    per_seed, ensembles, test_logits = {}, {}, {}
    position = 0
    for track in tracks:
        track_ensemble, track_logits = inputs[position], inputs[position + 1]
        seed_metrics = inputs[position + 2 : position + 2 + len(seeds)]
        position += 2 + len(seeds)
        missing_seeds = [seed for seed, metrics in zip(seeds, seed_metrics) if metrics is None]
        if track_ensemble is None or track_logits is None:
            logger.warning("The final report leaves out %s: it has no ensemble yet (`kedro run --pipeline %s`, then "
                           "`kedro run --pipeline ensemble_%s`).", track, track, track)
            continue
        if missing_seeds:
            logger.warning("The final report's %s per-seed rows leave out seeds %s: they never ran (`kedro run --pipeline %s`).",
                           track, missing_seeds, track)
        ensembles[track], test_logits[track] = track_ensemble, track_logits
        per_seed[track] = [metrics for metrics in seed_metrics if metrics is not None]
    if not ensembles:
        raise ValueError("No track has an ensemble to report: train a track (`kedro run --pipeline gnn`) and ensemble it first.")
    stacked_metrics, stacked_test = inputs[position : position + 2]
    sweep, baseline_valid, baseline_test = inputs[position + 2 : position + 5]
    baseline = None
    if baseline_valid is not None and baseline_test is not None:
        # The baseline's own score node already warned about a threshold on the sweep's edge.
        baseline = metrics_from_logits(baseline_valid, baseline_test, sweep, warn_at_edge=False, track=BASELINE_TRACK)
    else:
        logger.warning("The final report has no baseline row: run `kedro run --pipeline baseline` to add it.")
    comparisons = {}
    if baseline is not None:
        from streamguard.evaluation.scoring import compare_to_reference

        comparisons = {track: compare_to_reference(baseline_test, frame) for track, frame in test_logits.items() if frame is not None and len(frame)}
    stacked = stacked_metrics if stacked_metrics and stacked_metrics.get("enabled", True) and "test" in stacked_metrics else None
    if stacked is not None:
        ensembles[STACKED_TRACK], test_logits[STACKED_TRACK] = stacked, stacked_test
        if baseline is not None:
            comparisons[STACKED_TRACK] = stacked.get("vs_baseline") or compare_to_reference(baseline_test, stacked_test)
    table = summary_table(per_seed, ensembles, baseline=baseline, comparisons=comparisons)
    markdown = summary_markdown(table)
    logger.info("Final metrics (valid-chosen threshold applied to test):\n%s", markdown)
    print("\nStreamGuard final metrics (threshold chosen on valid, applied to test)\n" + markdown)
    figure_metrics, figure_logits = dict(ensembles), dict(test_logits)
    if baseline is not None:
        figure_metrics[BASELINE_TRACK], figure_logits[BASELINE_TRACK] = baseline, baseline_test
    return table, markdown, report_figures(figure_metrics, figure_logits)


def line_report(
    ensemble_metrics: dict[str, Any], test_logits: pd.DataFrame, test_functions: pd.DataFrame, params: dict[str, Any],
    *, track: str, seeds: list[int], **checkpoints: Any,
) -> tuple[str, dict[str, Any]]:
    """Which lines? The ``ensemble.line_report.functions`` test functions the track's ensemble ranks
    most likely vulnerable (what a reviewer opens first), each line shaded by the ensemble's line
    scores: an HTML page and one PNG per function (both logged to MLflow by the catalog)."""
    from streamguard.explain.render import line_report as render_line_report

    settings = params.get("line_report") or {}
    count = int(settings.get("functions", 3))
    if count <= 0:
        return "<!doctype html><p>ensemble.line_report.functions is 0: no line report.</p>\n", {}
    packaged = package_model(ensemble_metrics, track=track, seeds=seeds, **checkpoints)
    if packaged["scorer"] is None:
        return f"<!doctype html><p>No line report: {packaged['reason']}</p>\n", {}
    top = test_logits.sort_values("prob", ascending=False, kind="stable").head(count)
    code_of = test_functions.set_index("idx")["func"]
    functions = [
        (f"test idx {int(row.idx)} ({'vulnerable' if int(row.label) else 'safe'} by label)", str(code_of[int(row.idx)]))
        for row in top.itertuples()
    ]
    return render_line_report(packaged["scorer"], functions, settings.get("method"))


def package_model(ensemble_metrics: dict[str, Any], *, track: str, seeds: list[int], **checkpoints: Any) -> dict[str, Any]:
    """The track's servable model: the checkpoints of the seeds the ensemble used and its threshold.

    ``checkpoints`` holds ``checkpoint_<s>`` loaders (read only for the seeds the ensemble used,
    so the served model is exactly the one whose validation metrics were reported).
    """
    from streamguard.serving.consistency import check_track_artefacts
    from streamguard.serving.scorer import EnsembleScorer

    used = [int(seed) for seed in ensemble_metrics.get("seeds_used", seeds)]
    loaded = [checkpoint for checkpoint in (checkpoints[f"checkpoint_{seed}"]() for seed in used) if checkpoint is not None]
    if len(loaded) != len(used):
        return {"scorer": None, "reason": f"{track}: checkpoints missing for some of seeds {used}; train them with `kedro run --pipeline {track}`"}
    check_track_artefacts(track, loaded, ensemble_metrics, f"{track}.ensemble_metrics")  # one configuration, current threshold
    threshold = float(ensemble_metrics["best_threshold_by_f1"])
    description = f"{track} ensemble of seeds {used}, threshold {threshold:.2f} chosen on validation"
    return {"scorer": EnsembleScorer(track, loaded, threshold, description=description), "reason": ""}
