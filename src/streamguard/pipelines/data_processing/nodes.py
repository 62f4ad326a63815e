"""data_processing nodes: load (generated or jsonl), validate, sample, de-duplicate, report."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from streamguard.data.dedup import drop_cross_split_duplicates, duplicate_report
from streamguard.data.generator import generate_dataset
from streamguard.data.loading import EmptyDatasetError, load_splits, validate_records
from streamguard.data.quality import DataQualityError, check_quality, headline, source_description

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


def load_and_validate(
    params: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Rows from the generator or from jsonl, all through the same validator; rejects kept."""
    if params["source"] == "generated":
        generated = generate_dataset(**params["generator"])
        frames, rejects, counts = {}, [], {}
        for split in SPLITS:
            records = enumerate(generated[split].to_dict("records"), start=1)
            accepted, rejected = validate_records(records, split, max_chars=params["max_chars"])
            frames[split], counts[split] = accepted, _split_counts(len(generated[split]), accepted, rejected)
            rejects.append(rejected)
            if accepted.empty:
                raise EmptyDatasetError(f"generated split {split!r} has 0 usable rows; raise data_processing.generator sizes")
        all_rejects = pd.concat(rejects, ignore_index=True)
    elif params["source"] == "jsonl":
        paths = params.get("paths") or {}
        missing = [split for split in SPLITS if split not in paths]
        if missing:
            raise ValueError(f"data_processing.paths has no entry for {missing}; give one .jsonl file per split {list(SPLITS)}")
        frames, all_rejects, counts = load_splits({split: paths[split] for split in SPLITS}, max_chars=params["max_chars"])
    else:
        raise ValueError(f"data_processing.source must be 'generated' or 'jsonl', got {params['source']!r}")
    frames = {split: _sample(frames[split], params["sample_per_split"].get(split), params["sample_seed"]) for split in SPLITS}
    for split in SPLITS:
        counts[split]["used"] = len(frames[split])
        logger.info("%s: %s", split, counts[split])
    return frames["train"], frames["valid"], frames["test"], all_rejects, counts


def deduplicate(
    train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, load_counts: dict, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Report exact/normalised duplicates; optionally drop valid/test rows already seen in train."""
    splits = {"train": train, "valid": valid, "test": test}
    report = duplicate_report(splits)
    dropped = pd.DataFrame(columns=["split", "idx", "reason"])
    if params["drop_cross_split_duplicates"]:
        splits, dropped = drop_cross_split_duplicates(splits)
        logger.info("dropped %d cross-split duplicates from valid/test", len(dropped))
    summary = {
        "rows": {split: int(len(frame)) for split, frame in splits.items()},
        "positive_rate": {split: round(float(frame["target"].mean()), 4) for split, frame in splits.items()},
        "load": load_counts,
        "duplicates": report,
        "cross_split_duplicates_dropped": int(len(dropped)),
        "source": source_description(params),
    }
    warnings, failures = check_quality(summary, params.get("quality"))
    summary["quality_warnings"] = warnings
    if failures:  # before any training: the splits are not written, the previous ones stay in place
        raise DataQualityError(
            "the data is past a quality limit, so nothing was trained on it:\n  "
            + "\n  ".join(failures)
            + "\n"
            + headline(summary)
            + "\nFix the input, or raise the limit in data_processing.quality (conf/local/parameters.yml or --params)."
        )
    return splits["train"], splits["valid"], splits["test"], dropped, summary


def _split_counts(lines: int, accepted: pd.DataFrame, rejected: pd.DataFrame) -> dict:
    return {
        "lines": int(lines),
        "accepted": int(len(accepted)),
        "rejected": int(len(rejected)),
        "rejects_by_reason": {str(k): int(v) for k, v in rejected["reason"].value_counts().items()},
    }


def _sample(frame: pd.DataFrame, size: int | None, seed: int) -> pd.DataFrame:
    if size is None or size >= len(frame):
        return frame.reset_index(drop=True)
    return frame.sample(n=int(size), random_state=seed).sort_index().reset_index(drop=True)
