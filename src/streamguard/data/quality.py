"""The data report's headline and its quality limits: bad data is said out loud, and stops the run past a limit.

A jsonl file with 69 % rejected lines, or valid/test splits that copy train, used to go through
with exit 0 and a note in ``data_report.json`` only. ``check_quality`` turns the report into
warnings (printed at the end of the run) and failures (``DataQualityError`` before any training);
``headline`` is the few lines a user reads first: rows in, accepted, rejected by reason, duplicates
across splits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

SPLITS = ("train", "valid", "test")
REJECTS_FILE = "data/02_intermediate/rejects.csv"
#: Used when ``data_processing.quality`` is absent (an older conf/local): the conf/base defaults.
DEFAULT_LIMITS = {
    "warn_reject_rate": 0.05,
    "max_reject_rate": 0.5,
    "warn_cross_split_duplicate_rate": 0.1,
    "max_cross_split_duplicate_rate": 0.9,
}


class DataQualityError(ValueError):
    """The data is past a configured quality limit; training on it would waste hours and mislead."""


def source_description(params: Mapping[str, Any]) -> str:
    """``generated (seed 7, 2000/400/400)`` or ``jsonl: train=a.jsonl, valid=...``: what the splits were made from."""
    if params.get("source") == "jsonl":
        paths = params.get("paths") or {}
        return "jsonl: " + ", ".join(f"{split}={paths.get(split)}" for split in SPLITS)
    generator = params.get("generator") or {}
    sizes = "/".join(str(generator.get(f"n_{split}", "?")) for split in SPLITS)
    return f"generated (seed {generator.get('seed', '?')}, {sizes} rows)"


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def cross_split_duplicates(report: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """Per valid/test split: (rows whose normalised text is in train, rows), before any drop."""
    cross = (report.get("duplicates") or {}).get("cross") or {}
    within = (report.get("duplicates") or {}).get("within") or {}
    found = {}
    for split in SPLITS[1:]:
        pair = cross.get(f"train__{split}")
        if pair is not None:
            found[split] = (int(pair["normalized"]), int((within.get(split) or {}).get("rows", 0)))
    return found


def check_quality(report: Mapping[str, Any], limits: Mapping[str, Any] | None) -> tuple[list[str], list[str]]:
    """(warnings, failures) for a data report; each message names the split, the share and the limit."""
    limits = {**DEFAULT_LIMITS, **dict(limits or {})}
    warnings: list[str] = []
    failures: list[str] = []
    for split, counts in (report.get("load") or {}).items():
        lines, rejected = int(counts.get("lines", 0)), int(counts.get("rejected", 0))
        rate = _rate(rejected, lines)
        message = (
            f"{split}: {rejected:,} of {lines:,} lines rejected ({rate:.1%}); see {REJECTS_FILE} for the line numbers and reasons"
        )
        if rate > float(limits["max_reject_rate"]):
            failures.append(f"{message} (above data_processing.quality.max_reject_rate={limits['max_reject_rate']})")
        elif rate > float(limits["warn_reject_rate"]):
            warnings.append(f"{message} (above data_processing.quality.warn_reject_rate={limits['warn_reject_rate']})")
    for split, (duplicated, rows) in cross_split_duplicates(report).items():
        rate = _rate(duplicated, rows)
        message = f"{split}: {duplicated:,} of {rows:,} rows ({rate:.1%}) duplicate a train function (after normalising layout and comments)"
        if rate > float(limits["max_cross_split_duplicate_rate"]):
            failures.append(
                f"{message}: its metrics would measure memorisation "
                f"(above data_processing.quality.max_cross_split_duplicate_rate={limits['max_cross_split_duplicate_rate']})"
            )
        elif rate > float(limits["warn_cross_split_duplicate_rate"]):
            hint = "" if report.get("cross_split_duplicates_dropped") else "; data_processing.drop_cross_split_duplicates=true drops them"
            warnings.append(
                f"{message}{hint} (above data_processing.quality.warn_cross_split_duplicate_rate="
                f"{limits['warn_cross_split_duplicate_rate']})"
            )
    for split, rows in (report.get("rows") or {}).items():
        if int(rows) == 0:
            failures.append(f"{split}: no rows left after dropping cross-split duplicates")
    return warnings, failures


def headline(report: Mapping[str, Any]) -> str:
    """Rows in, accepted, rejected by reason, used, and duplicates of train, per split; then the source."""
    load = report.get("load") or {}
    duplicates = cross_split_duplicates(report)
    rows = report.get("rows") or {}
    header = ("split", "lines in", "accepted", "rejected", "used", "dup. of train")
    table = [header]
    for split in SPLITS:
        counts = load.get(split) or {}
        duplicated, total = duplicates.get(split, (None, 0))
        table.append(
            (
                split,
                f"{int(counts.get('lines', 0)):,}",
                f"{int(counts.get('accepted', 0)):,}",
                f"{int(counts.get('rejected', 0)):,}",
                f"{int(rows.get(split, counts.get('used', 0))):,}",
                "-" if duplicated is None else f"{duplicated:,} ({_rate(duplicated, total):.1%})",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  " + "  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths))) for row in table]
    reasons: Counter[str] = Counter()
    for counts in load.values():
        reasons.update({str(k): int(v) for k, v in (counts.get("rejects_by_reason") or {}).items()})
    if reasons:
        listed = ", ".join(f"{reason} {count:,}" for reason, count in reasons.most_common())
        lines.append(f"  rejected by reason: {listed} ({REJECTS_FILE})")
    dropped = int(report.get("cross_split_duplicates_dropped", 0) or 0)
    if dropped:
        lines.append(f"  {dropped:,} valid/test row(s) duplicating an earlier split were dropped")
    source = report.get("source")
    title = f"Data: {source}" if source else "Data"
    return "\n".join([title] + lines)
