"""Exact and normalised duplicate reports across splits.

Devign/CodeXGLUE contains many copies of the same function, sometimes with conflicting
labels (PrimeVul; Croft et al. 2023). A copy of a training function in the test split
inflates the test score, so the pipeline reports such copies and can drop them.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

import pandas as pd

__all__ = [
    "CROSS_SPLIT_PAIRS",
    "code_hashes",
    "drop_cross_split_duplicates",
    "duplicate_report",
    "normalize_code",
]

# (earlier split, later split): rows of the later split are compared against the earlier one.
CROSS_SPLIT_PAIRS: tuple[tuple[str, str], ...] = (("train", "valid"), ("train", "test"), ("valid", "test"))

# One scanner for the whole file: literals are matched first and kept as they are, so a `//`
# or `/*` inside "..." or '...' is never taken for a comment; comments and whitespace runs
# (including several in a row) become a single space, as the C preprocessor does.
_LITERAL_OR_GAP = re.compile(
    r"""(?P<literal>"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?)"""
    r"""|(?P<gap>(?:\s|/\*.*?(?:\*/|\Z)|//[^\n]*)+)""",
    re.DOTALL,
)


def normalize_code(code: str) -> str:
    """Drop comments and layout, so copies that differ only in them hash the same."""

    def replace(match: re.Match[str]) -> str:
        return match.group("literal") if match.group("literal") is not None else " "

    return _LITERAL_OR_GAP.sub(replace, code).strip()


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def code_hashes(funcs: Iterable[str]) -> tuple[list[str], list[str]]:
    """Return (exact, normalised) sha1 hex digests, one pair per function, in order."""
    exact: list[str] = []
    normalized: list[str] = []
    for func in funcs:
        exact.append(_sha1(func))
        normalized.append(_sha1(normalize_code(func)))
    return exact, normalized


def _hashed(frame: pd.DataFrame) -> pd.DataFrame:
    exact, normalized = code_hashes(frame["func"].astype(str))
    return pd.DataFrame(
        {"exact": exact, "normalized": normalized, "target": frame["target"].astype("int64").to_numpy()}
    )


def _labels_by_hash(hashed: pd.DataFrame) -> dict[str, set[int]]:
    labels: dict[str, set[int]] = defaultdict(set)
    for digest, target in zip(hashed["normalized"], hashed["target"]):
        labels[digest].add(int(target))
    return labels


def duplicate_report(splits: Mapping[str, pd.DataFrame]) -> dict:
    """Count duplicates within each split and across split pairs (JSON-serialisable).

    Within a split, duplicates are rows beyond the first of each hash group; conflicting
    labels are normalised groups holding both labels. Across (first, second), counts are
    rows of `second` whose hash occurs in `first`; conflicting counts those of them whose
    label differs from a label of the matching rows in `first`. Cross keys read
    "<first>__<second>" and every value is an int, so the report logs as flat metrics.
    """
    hashed = {name: _hashed(frame) for name, frame in splits.items()}
    within: dict[str, dict[str, int]] = {}
    for name, table in hashed.items():
        labels_per_group = table.groupby("normalized")["target"].nunique()
        within[name] = {
            "rows": int(len(table)),
            "exact_duplicates_within": int(table["exact"].duplicated().sum()),
            "normalized_duplicates_within": int(table["normalized"].duplicated().sum()),
            "conflicting_labels_within": int((labels_per_group > 1).sum()),
        }
    cross: dict[str, dict[str, int]] = {}
    for first, second in CROSS_SPLIT_PAIRS:
        if first not in hashed or second not in hashed:
            continue
        earlier, later = hashed[first], hashed[second]
        earlier_labels = _labels_by_hash(earlier)
        conflicting = sum(
            1
            for digest, target in zip(later["normalized"], later["target"])
            if digest in earlier_labels and earlier_labels[digest] - {int(target)}
        )
        cross[f"{first}__{second}"] = {
            "exact": int(later["exact"].isin(set(earlier["exact"])).sum()),
            "normalized": int(later["normalized"].isin(set(earlier["normalized"])).sum()),
            "conflicting_labels": int(conflicting),
        }
    return {"within": within, "cross": cross}


def drop_cross_split_duplicates(
    splits: Mapping[str, pd.DataFrame],
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Remove valid/test rows whose normalised code already occurs in an earlier split.

    Train is never changed (it is what the model learns from); valid loses copies of train,
    test loses copies of train or valid. Other split names pass through untouched.
    Returns the new splits and the dropped rows with `split`, `idx` and `reason`.
    """
    result = {name: frame for name, frame in splits.items()}
    earlier_hashes: dict[str, set[str]] = {}
    dropped_parts: list[pd.DataFrame] = []
    for name in ("train", "valid", "test"):
        if name not in splits:
            continue
        frame = splits[name]
        _, normalized = code_hashes(frame["func"].astype(str))
        reasons = []
        for digest in normalized:
            owner = next((other for other, seen in earlier_hashes.items() if digest in seen), None)
            reasons.append(None if owner is None else f"cross_split_duplicate:{owner}")
        earlier_hashes[name] = set(normalized)
        is_dropped = pd.Series([reason is not None for reason in reasons], index=frame.index)
        if is_dropped.any():
            dropped_parts.append(
                pd.DataFrame(
                    {
                        "split": name,
                        "idx": frame.loc[is_dropped, "idx"].astype("int64").to_numpy(),
                        "reason": [reason for reason in reasons if reason is not None],
                    }
                )
            )
            result[name] = frame.loc[~is_dropped].reset_index(drop=True)
    if dropped_parts:
        dropped = pd.concat(dropped_parts, ignore_index=True)
    else:
        dropped = pd.DataFrame(
            {"split": pd.Series(dtype=str), "idx": pd.Series(dtype="int64"), "reason": pd.Series(dtype=str)}
        )
    return result, dropped
