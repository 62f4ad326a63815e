"""The final comparison across tracks: per-seed mean +- std against the seed ensemble, beside the
lexical baseline (TF-IDF + logistic regression); deep rows say whether they beat it on test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from streamguard.evaluation.metrics import mean_std

# (column, how to read it from a metrics dict)
SUMMARY_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("valid_f1_at_best", ("f1_at_best_threshold",)),
    ("threshold", ("best_threshold_by_f1",)),
    ("test_accuracy", ("test", "accuracy")),
    ("test_precision", ("test", "precision")),
    ("test_recall", ("test", "recall")),
    ("test_f1", ("test", "f1")),
    ("test_roc_auc", ("test", "roc_auc")),
    ("test_pr_auc", ("test", "pr_auc")),
)


def _read(metrics: Mapping[str, Any], path: Sequence[str]) -> float | None:
    value: Any = metrics
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return None if value is None else float(value)


BASELINE_TRACK = "baseline"
BASELINE_MODEL = "tf-idf + logreg"
# Test metrics a deep model must beat the baseline on (strictly higher); column -> label.
BEAT_COLUMNS: tuple[tuple[str, str], ...] = (("test_roc_auc", "ROC-AUC"), ("test_f1", "F1"))


def summary_table(
    per_seed: Mapping[str, Sequence[Mapping[str, Any]]],
    ensembles: Mapping[str, Mapping[str, Any]],
    baseline: Mapping[str, Any] | None = None,
    comparisons: Mapping[str, Mapping[str, float]] | None = None,
) -> pd.DataFrame:
    """One row per (track, seeds mean / seeds std / ensemble); numeric columns for CSV and plots.

    With ``baseline`` (the baseline's metrics dict) the first row is the baseline, and every deep
    ``seeds mean`` / ``ensemble`` row gets ``beats_baseline_roc_auc`` / ``beats_baseline_f1``
    (True when its test value is strictly higher than the baseline's). ``comparisons`` (per track:
    the paired-bootstrap ``delta``/``low``/``high`` of test ROC-AUC against the baseline) adds
    ``roc_auc_delta``, ``roc_auc_delta_low`` and ``roc_auc_delta_high`` to the ensemble rows.
    Tracks with an ensemble but no seeds (the stacked meta-model) get the ensemble row only.
    """
    rows = []
    if baseline is not None:
        rows.append(
            {"track": BASELINE_TRACK, "model": BASELINE_MODEL, "num_seeds": 1,
             **{column: _read(baseline, path) for column, path in SUMMARY_COLUMNS}}
        )
    comparisons = comparisons or {}
    for track in [*per_seed, *(track for track in ensembles if track not in per_seed)]:
        seed_metrics = per_seed.get(track, [])
        if seed_metrics:
            stats = {column: [_read(m, path) for m in seed_metrics] for column, path in SUMMARY_COLUMNS}
            mean_row = {"track": track, "model": "seeds mean", "num_seeds": len(seed_metrics)}
            std_row = {"track": track, "model": "seeds std", "num_seeds": len(seed_metrics)}
            for column, values in stats.items():
                present = [value for value in values if value is not None]
                mean_row[column], std_row[column] = mean_std(present) if present else (None, None)
            rows += [mean_row, std_row]
        if track in ensembles:
            ensemble = ensembles[track]
            row = {"track": track, "model": "ensemble", "num_seeds": ensemble.get("num_seeds_with_logits", len(seed_metrics)),
                   **{column: _read(ensemble, path) for column, path in SUMMARY_COLUMNS}}
            if track in comparisons:
                delta = comparisons[track]
                row |= {"roc_auc_delta": delta["delta"], "roc_auc_delta_low": delta["low"], "roc_auc_delta_high": delta["high"]}
            rows.append(row)
    if baseline is not None:
        reference = rows[0]
        for row in rows[1:]:
            for column, _ in BEAT_COLUMNS:
                flag = f"beats_baseline_{column.removeprefix('test_')}"
                comparable = row["model"] != "seeds std" and row.get(column) is not None and reference[column] is not None
                row[flag] = bool(row[column] > reference[column]) if comparable else None
    return pd.DataFrame(rows)


def has_baseline(table: pd.DataFrame) -> bool:
    return bool((table["track"] == BASELINE_TRACK).any())


def _beats_cell(row: Mapping[str, Any]) -> str:
    cells = []
    for column, _ in BEAT_COLUMNS:
        value = row.get(f"beats_baseline_{column.removeprefix('test_')}")
        cells.append("n/a" if value is None or pd.isna(value) else ("yes" if value else "**NO**"))
    return " / ".join(cells)


def baseline_verdicts(table: pd.DataFrame) -> list[str]:
    """One plain sentence per deep track: does it beat the lexical baseline on test ROC-AUC and F1?

    The track's ensemble row is judged (its per-seed mean when it has no ensemble).
    """
    if not has_baseline(table):
        return []
    reference = table[table["track"] == BASELINE_TRACK].iloc[0]
    sentences = []
    for track, group in table[table["track"] != BASELINE_TRACK].groupby("track", sort=False):
        rows = {row["model"]: row for _, row in group.iterrows()}
        row = rows.get("ensemble", rows.get("seeds mean"))
        if row is None:
            continue
        label = f"{track} ({'ensemble' if 'ensemble' in rows else 'per-seed mean'})"
        won, lost = [], []
        for column, name in BEAT_COLUMNS:
            mine, theirs = row[column], reference[column]
            if mine is None or theirs is None or pd.isna(mine) or pd.isna(theirs):
                continue
            digits = 3 if round(mine, 3) != round(theirs, 3) else 5  # show why a "tie" at 3 decimals is won or lost
            (won if mine > theirs else lost).append(f"{name} ({mine:.{digits}f} vs {theirs:.{digits}f})")
        interval = ""
        delta = row.get("roc_auc_delta")
        if delta is not None and not pd.isna(delta):
            low, high = row["roc_auc_delta_low"], row["roc_auc_delta_high"]
            reading = "above zero" if low > 0 else ("below zero" if high < 0 else "includes zero: not a significant difference")
            interval = f" ROC-AUC difference {delta:+.3f}, paired-bootstrap 95 % interval [{low:+.3f}, {high:+.3f}], {reading}."
        if not lost:
            sentences.append(f"{label} beats the lexical baseline on test {' and '.join(won)}.{interval}")
        else:
            also = f"; it does beat it on {' and '.join(won)}" if won else ""
            sentences.append(f"**{label} does NOT beat the lexical baseline** on test {' or '.join(lost)}{also}.{interval}")
    return sentences


def summary_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown with mean +- std cells, for the README, the log and MLflow."""
    columns = [column for column, _ in SUMMARY_COLUMNS]
    with_baseline = has_baseline(table)
    beat_header = (
        " | beats baseline (" + " / ".join(name for _, name in BEAT_COLUMNS) + ") | ROC-AUC - baseline [95 % CI]"
        if with_baseline else ""
    )
    lines = [
        "| track | model | seeds | " + " | ".join(columns) + beat_header + " |",
        "|---|---|---|" + "---|" * (len(columns) + 2 * int(with_baseline)),
    ]
    for track, group in table.groupby("track", sort=False):
        rows = {row["model"]: row for _, row in group.iterrows()}
        if track == BASELINE_TRACK:
            row = rows[BASELINE_MODEL]
            cells = [_cell(row[c]) for c in columns]
            lines.append(f"| {track} | {BASELINE_MODEL} | 1 | " + " | ".join(cells) + " | (reference) | |")
            continue
        if "seeds mean" in rows:
            mean, std = rows["seeds mean"], rows["seeds std"]
            cells = [_cell(mean[c], std[c]) for c in columns] + ([_beats_cell(mean), ""] if with_baseline else [])
            lines.append(f"| {track} | per seed | {int(mean['num_seeds'])} | " + " | ".join(cells) + " |")
        if "ensemble" in rows:
            ensemble = rows["ensemble"]
            cells = [_cell(ensemble[c]) for c in columns] + ([_beats_cell(ensemble), _delta_cell(ensemble)] if with_baseline else [])
            seeds = ensemble["num_seeds"]
            lines.append(f"| {track} | ensemble | {'n/a' if seeds is None or pd.isna(seeds) else int(seeds)} | " + " | ".join(cells) + " |")
    verdicts = baseline_verdicts(table)
    if verdicts:
        lines += ["", "Against the lexical baseline (TF-IDF + logistic regression, same splits, same validation-chosen threshold rule):", ""]
        lines += [f"- {sentence}" for sentence in verdicts]
    return "\n".join(lines) + "\n"


def _delta_cell(row: Mapping[str, Any]) -> str:
    """``+0.012 [+0.003, +0.021]``: the paired-bootstrap ROC-AUC difference to the baseline."""
    delta = row.get("roc_auc_delta")
    if delta is None or pd.isna(delta):
        return "n/a"
    low, high = row["roc_auc_delta_low"], row["roc_auc_delta_high"]
    verdict = " (above 0)" if low > 0 else (" (below 0)" if high < 0 else "")
    return f"{delta:+.3f} [{low:+.3f}, {high:+.3f}]{verdict}"


def _cell(value: Any, std: Any = None) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    return f"{value:.3f} ± {std:.3f}" if std is not None and not pd.isna(std) else f"{value:.3f}"


def report_figures(
    ensembles: Mapping[str, Mapping[str, Any]], test_logits: Mapping[str, pd.DataFrame | None]
) -> dict[str, Any]:
    """The report's plots as ``{name: Figure}`` (saved as PNGs and MLflow artifacts by the catalog).

    Validation threshold sweeps of every track's ensemble on one chart, test PR curves on another,
    and one test confusion matrix per track at its validation-chosen threshold.
    """
    from streamguard.evaluation.figures import confusion_matrix_figure, pr_curves_figure, threshold_sweep_figure

    figures: dict[str, Any] = {}
    sweeps = {track: metrics["threshold_sweep"] for track, metrics in ensembles.items() if metrics.get("threshold_sweep")}
    if sweeps:
        figures["threshold_sweep_valid"] = threshold_sweep_figure(sweeps, title="Ensemble threshold sweep (valid)")
    curves = {
        track: (frame["label"].to_numpy(), frame["prob"].to_numpy())
        for track, frame in test_logits.items()
        if frame is not None and len(frame)
    }
    if curves:
        figures["pr_curves_test"] = pr_curves_figure(curves, title="Ensemble precision-recall (test)")
    for track, metrics in ensembles.items():
        test = metrics.get("test") or {}
        if "confusion_matrix" in test:
            figures[f"confusion_matrix_test_{track}"] = confusion_matrix_figure(
                test["confusion_matrix"], title=f"{track} ensemble, test @ {test['threshold']:.2f} (chosen on valid)"
            )
    return figures
