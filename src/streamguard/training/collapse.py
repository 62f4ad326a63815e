"""Collapse detection: a model that predicts only one class on validation, epoch after epoch, is stopped.

As the original trainers did: from epoch ``collapse_check_from_epoch`` on (2 by default), an epoch
whose validation predictions at 0.5 are all "vulnerable" or all "safe" is a collapse signal, and
``collapse_consecutive_epochs`` signals in a row (2) stop the seed with :class:`TrainingCollapseError`.
The error carries a report (what happened, the settings that usually cause it, the remedies) that
the training node writes as a catalog dataset (JSON + text) and logs to MLflow before failing with
a message naming the files. ``collapse_check_from_epoch: 0`` turns the check off.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

#: The epoch record key the loop fills: share of validation rows predicted vulnerable at P >= 0.5.
RATE_KEY = "valid_predicted_positive_rate"


class TrainingCollapseError(RuntimeError):
    """Training predicted one class only for ``collapse_consecutive_epochs`` epochs; ``report`` says what to do."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


def _one_class(record: Mapping[str, Any]) -> str | None:
    rate = record.get(RATE_KEY)
    if rate is None:
        return None
    if rate <= 0.0:
        return "safe"
    if rate >= 1.0:
        return "vulnerable"
    return None


def remedies(config: Any, predicted: str) -> list[str]:
    """What to change, most likely first, given the settings the run used."""
    items = []
    if config.weighted_sampler and config.class_weighting == "balanced":
        items.append("weighted_sampler and class_weighting=balanced both correct the imbalance: turn one off.")
    if config.vulnerable_weight_multiplier > 1.0 and predicted == "vulnerable":
        items.append(f"lower vulnerable_weight_multiplier (now {config.vulnerable_weight_multiplier}) towards 1.0.")
    if config.loss == "focal":
        items.append(f"use loss=ce, or a smaller focal_gamma (now {config.focal_gamma}).")
    items += [
        f"change the learning rate (lr now {config.lr}): too high and the model jumps to one class, too low and it "
        f"stays at its initial bias (lr=auto runs a range test); or raise warmup_ratio (now {config.warmup_ratio}).",
        "check the labels: both classes must be present in train and valid, with the right meaning of 1.",
        "train longer before judging (raise collapse_check_from_epoch), or set collapse_check_from_epoch=0 to turn "
        "the check off when the validation ROC-AUC shows the ranking is still improving.",
    ]
    if predicted == "safe" and not config.weighted_sampler and config.class_weighting == "none":
        items.insert(0, "correct the class imbalance: class_weighting=balanced or weighted_sampler=true.")
    return items


def check_collapse(history: Sequence[Mapping[str, Any]], config: Any) -> None:
    """Raise :class:`TrainingCollapseError` when the last ``collapse_consecutive_epochs`` epochs (all at or after
    ``collapse_check_from_epoch``) predicted one class only."""
    start, needed = int(config.collapse_check_from_epoch), int(config.collapse_consecutive_epochs)
    if start <= 0 or len(history) < needed:
        return
    recent = list(history[-needed:])
    if int(recent[0]["epoch"]) < start:
        return
    classes = [_one_class(record) for record in recent]
    if None in classes:
        return
    # As the original: any one-class epoch is a signal, even when the class flips between epochs.
    predicted = classes[0] if len(set(classes)) == 1 else "one class per epoch (" + ", ".join(classes) + ")"
    epochs = [int(record["epoch"]) for record in recent]
    report = {
        "collapsed": True,
        "predicted_class": predicted,
        "epochs": epochs,
        "per_epoch": [
            {key: record.get(key) for key in ("epoch", "train_loss", "valid_loss", "valid_f1", "valid_roc_auc", RATE_KEY)}
            for record in recent
        ],
        "rule": f"from epoch {start}, {needed} consecutive epochs predicting a single class at threshold 0.5",
        "settings": {
            key: getattr(config, key)
            for key in ("lr", "warmup_ratio", "loss", "focal_gamma", "class_weighting", "vulnerable_weight_multiplier",
                        "weighted_sampler", "label_smoothing", "collapse_check_from_epoch", "collapse_consecutive_epochs")
        },
        "remedies": remedies(config, predicted),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    raise TrainingCollapseError(
        f"training collapsed: epochs {', '.join(map(str, epochs))} predicted {predicted!r} only on validation", report
    )


def report_text(report: Mapping[str, Any], label: str = "") -> str:
    """The human-readable collapse report (the .txt next to the JSON)."""
    lines = [
        f"Training collapse{f' in {label}' if label else ''}: {report['rule']}.",
        "",
        "epoch  train_loss  valid_loss  valid_f1  valid_roc_auc  predicted vulnerable",
    ]
    for row in report["per_epoch"]:
        lines.append(
            f"{row['epoch']:>5}  {row['train_loss']:>10.4f}  {row['valid_loss']:>10.4f}  {row['valid_f1']:>8.4f}  "
            f"{row['valid_roc_auc']:>13.4f}  {row[RATE_KEY]:>19.1%}"
        )
    lines += ["", "Settings: " + ", ".join(f"{k}={v}" for k, v in report["settings"].items()), "", "Remedies:"]
    lines += [f"  {number}. {item}" for number, item in enumerate(report["remedies"], start=1)]
    return "\n".join(lines) + "\n"


def raise_with_report(error: TrainingCollapseError, writer: Any, label: str) -> None:
    """Write ``error.report`` through ``writer`` (a CollapseReportDataset's writer) and fail naming the files."""
    report = {**error.report, "run": label}
    paths = writer.write(report, report_text(report, label)) if writer is not None else []
    where = " and ".join(str(path) for path in paths) if paths else "(no report location configured)"
    raise TrainingCollapseError(
        f"{label}: {error}. Stopped, as the original trainers did; the collapse report with the remedies is in {where}.",
        report,
    ) from error
