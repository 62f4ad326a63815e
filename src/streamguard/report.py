"""The final comparison across tracks: per-seed mean +- std against the seed ensemble."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from streamguard.metrics import mean_std

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


def summary_table(
    per_seed: Mapping[str, Sequence[Mapping[str, Any]]], ensembles: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """One row per (track, seeds mean / seeds std / ensemble); numeric columns for CSV and plots."""
    rows = []
    for track, seed_metrics in per_seed.items():
        stats = {column: [_read(m, path) for m in seed_metrics] for column, path in SUMMARY_COLUMNS}
        mean_row = {"track": track, "model": "seeds mean", "num_seeds": len(seed_metrics)}
        std_row = {"track": track, "model": "seeds std", "num_seeds": len(seed_metrics)}
        for column, values in stats.items():
            present = [value for value in values if value is not None]
            mean_row[column], std_row[column] = mean_std(present) if present else (None, None)
        rows += [mean_row, std_row]
        if track in ensembles:
            ensemble = ensembles[track]
            rows.append(
                {"track": track, "model": "ensemble", "num_seeds": ensemble.get("num_seeds_with_logits"),
                 **{column: _read(ensemble, path) for column, path in SUMMARY_COLUMNS}}
            )
    return pd.DataFrame(rows)


def summary_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown with mean +- std cells, for the README, the log and MLflow."""
    columns = [column for column, _ in SUMMARY_COLUMNS]
    lines = [
        "| track | model | seeds | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for track, group in table.groupby("track", sort=False):
        rows = {row["model"]: row for _, row in group.iterrows()}
        mean, std = rows["seeds mean"], rows["seeds std"]
        cells = [_cell(mean[c], std[c]) for c in columns]
        lines.append(f"| {track} | per seed | {int(mean['num_seeds'])} | " + " | ".join(cells) + " |")
        if "ensemble" in rows:
            ensemble = rows["ensemble"]
            cells = [_cell(ensemble[c]) for c in columns]
            lines.append(f"| {track} | ensemble | {int(ensemble['num_seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
    from streamguard.reporting import confusion_matrix_figure, pr_curves_figure, threshold_sweep_figure

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
