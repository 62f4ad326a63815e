"""CodeXGLUE/Devign jsonl loading with validation: every line is accepted or rejected with a reason.

The old preprocessing skipped bad lines with a print and turned a missing label into 0; here
each line ends up in exactly one of two frames (accepted rows, rejects with a reason), so
`lines read == accepted + rejected` always holds and nothing is silently dropped.
"""

from __future__ import annotations

import gzip
import json
import logging
import numbers
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = [
    "ACCEPTED_COLUMNS",
    "DEFAULT_MAX_CHARS",
    "REJECT_COLUMNS",
    "EmptyDatasetError",
    "load_splits",
    "read_jsonl",
    "validate_records",
]

DEFAULT_MAX_CHARS = 100_000
_ACCEPTED_DTYPES: dict[str, object] = {
    "idx": "int64", "func": str, "target": "int64", "project": object, "commit_id": object,
    "split": str, "line": "int64",
}
_REJECT_DTYPES: dict[str, object] = {"split": str, "line": "int64", "reason": str, "detail": str, "raw": str}
ACCEPTED_COLUMNS = tuple(_ACCEPTED_DTYPES)
# Optional per row: the 1-based lines of ``func`` that hold the flaw (e.g. from Juliet's FLAW comments);
# the transformer's line supervision (transformer.line_supervision) learns from them.
FLAW_LINES = "flaw_lines"
REJECT_COLUMNS = tuple(_REJECT_DTYPES)
RAW_PREVIEW_CHARS = 200
_GZIP_MAGIC = b"\x1f\x8b"
_INT_TEXT = re.compile(r"[+-]?\d+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# JSON "\ud800" escapes decode to lone surrogates: valid Python text that UTF-8 (parquet, CSV) cannot hold.
_SURROGATE = re.compile("[\ud800-\udfff]")
# JSON label spellings seen in the official files (0/1) and the HF copy (true/false).
_LABEL_TEXT: dict[str, int] = {"0": 0, "1": 1}


class EmptyDatasetError(ValueError):
    """A split has no usable row: training on it would fail later with a less helpful error."""


def _preview(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return _printable(text[:RAW_PREVIEW_CHARS])


def _printable(text: str) -> str:
    """Text any UTF-8 writer accepts: lone surrogates become ``\\udXXX`` escapes."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_label(value: object) -> int | None:
    """Map 0/1, true/false and "0"/"1" to 0/1; anything else (2, 0.5, "yes", null) is invalid."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        return _LABEL_TEXT.get(value)
    return None


def _parse_idx(value: object) -> int | None:
    """Accept ints, integral floats and digit strings; bools and everything else are not ids."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, numbers.Integral):  # also numpy integers from generated frames
        number = int(value)
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        return None
    # Ids are stored as int64; a larger one would crash the frame build and lose every row.
    return number if _INT64_MIN <= number <= _INT64_MAX else None


def _frame(rows: list[dict], dtypes: dict[str, object]) -> pd.DataFrame:
    """Build column by column, so optional text columns keep None (not NaN) and empty frames keep dtypes."""
    return pd.DataFrame({name: pd.Series([row[name] for row in rows], dtype=dtype) for name, dtype in dtypes.items()})


def _accepted_frame(rows: list[dict]) -> pd.DataFrame:
    frame = _frame(rows, _ACCEPTED_DTYPES)
    # Only when some row names its flawed lines: data without them keeps exactly its old columns.
    if any(row.get(FLAW_LINES) is not None for row in rows):
        frame[FLAW_LINES] = pd.Series([row.get(FLAW_LINES) for row in rows], dtype=object)
    return frame


def _parse_flaw_lines(value: object, func: str) -> list[int] | None:
    """``flaw_lines``: distinct 1-based line numbers of ``func`` (sorted), or None when not such a list."""
    if not isinstance(value, list) or not all(isinstance(line, int) and not isinstance(line, bool) for line in value):
        return None
    n_lines = len(func.splitlines()) or 1
    if not all(1 <= line <= n_lines for line in value):
        return None
    return sorted(set(value))


def _rejects_frame(rows: list[dict]) -> pd.DataFrame:
    return _frame(rows, _REJECT_DTYPES)


def _optional_text(value: object) -> object:
    """Metadata text (project, commit_id); never fails a row, so odd characters are escaped."""
    return None if value is None else _printable(value if isinstance(value, str) else str(value))


def validate_records(
    records: Iterable[tuple[int, object]], split: str, max_chars: int = DEFAULT_MAX_CHARS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate parsed rows; return (accepted, rejects) with one reason per rejected row.

    Each item is (line_number, parsed_value), line numbers 1-based. The same checks serve
    jsonl files and generated rows, so both reach training through one gate. A missing
    `idx` falls back to the 0-based line number; the first row with a given idx wins.
    """
    accepted: list[dict] = []
    rejects: list[dict] = []
    seen_idx: dict[int, int] = {}

    def reject(line: int, value: object, reason: str, detail: str) -> None:
        rejects.append({"split": split, "line": line, "reason": reason, "detail": detail, "raw": _preview(value)})

    for line, value in records:
        if not isinstance(value, dict):
            reject(line, value, "not_an_object", f"got {type(value).__name__}")
            continue
        if "func" not in value:
            reject(line, value, "missing_field:func", f"keys: {sorted(value)[:10]}")
            continue
        if "target" not in value:
            reject(line, value, "missing_field:target", f"keys: {sorted(value)[:10]}")
            continue
        func = value["func"]
        if not isinstance(func, str):
            reject(line, value, "wrong_type:func", f"func is {type(func).__name__}, expected str")
            continue
        if "idx" in value:
            idx = _parse_idx(value["idx"])
            if idx is None:
                reject(
                    line, value, "wrong_type:idx", f"idx={_short(value['idx'])} is not an integer in the int64 range"
                )
                continue
        else:
            idx = line - 1
        target = _parse_label(value["target"])
        if target is None:
            reject(line, value, "invalid_label", f"target={_short(value['target'])}, expected 0, 1, true or false")
            continue
        if not func.strip():
            reject(line, value, "empty_function", f"func has {len(func)} characters, all whitespace")
            continue
        if len(func) > max_chars:
            reject(line, value, "oversized_function", f"func has {len(func)} characters > max_chars={max_chars}")
            continue
        surrogate = _SURROGATE.search(func)
        if surrogate is not None:
            reject(
                line, value, "invalid_unicode",
                f"func has an unpaired surrogate {surrogate.group()!r} at character {surrogate.start()} "
                "(a lone \\uD800-\\uDFFF escape); it cannot be stored as UTF-8",
            )
            continue
        flaw_lines = None
        if value.get(FLAW_LINES) is not None:
            flaw_lines = _parse_flaw_lines(value[FLAW_LINES], func)
            if flaw_lines is None:
                reject(
                    line, value, f"invalid_field:{FLAW_LINES}",
                    f"{FLAW_LINES}={_short(value[FLAW_LINES])}, expected a list of 1-based line numbers of func "
                    f"(it has {len(func.splitlines())} lines)",
                )
                continue
        if idx in seen_idx:
            reject(line, value, "duplicate_idx", f"idx={idx} first seen on line {seen_idx[idx]}")
            continue
        seen_idx[idx] = line
        accepted.append(
            {
                "idx": idx,
                "func": func,
                "target": target,
                "project": _optional_text(value.get("project")),
                "commit_id": _optional_text(value.get("commit_id")),
                "split": split,
                "line": line,
                FLAW_LINES: flaw_lines,
            }
        )
    return _accepted_frame(accepted), _rejects_frame(rejects)


def _open_binary(path: Path) -> IO[bytes]:
    """Open plain or gzip files; gzip is recognised by its magic bytes (the suffix alone can lie)."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rb")
    if path.suffix == ".gz":
        logger.warning("%s ends in .gz but is not gzip-compressed; reading it as plain text", path)
    return path.open("rb")


def _line_cap(max_chars: int) -> int:
    """Longest line worth decoding: a max_chars function, every character JSON-escaped (12 bytes), plus fields."""
    return max(max_chars, 1) * 12 + 65_536


def _physical_lines(handle: IO[bytes], cap: int) -> Iterator[tuple[bytes, int]]:
    """(line bytes up to ``cap``, full length) per line; an overlong line is skipped, not held in memory.

    Read errors (a truncated or corrupt gzip stream, an I/O error) propagate to the caller, which
    quarantines them as one reject and keeps the lines already read.
    """
    while True:
        chunk = handle.readline(cap)
        if not chunk:
            return
        length = len(chunk)
        if length == cap and not chunk.endswith(b"\n"):
            while True:  # binary garbage without newlines, or a huge record: skip to the next line
                more = handle.readline(1 << 20)
                length += len(more)
                if not more or more.endswith(b"\n"):
                    break
        yield chunk, length


def read_jsonl(
    path: str | os.PathLike, split: str, max_chars: int = DEFAULT_MAX_CHARS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read one `.jsonl` / `.jsonl.gz` split line by line; return (accepted, rejects).

    Byte-level problems (bad UTF-8, broken JSON, blank lines, overlong lines, a truncated or
    corrupt gzip stream) are rejected here; row-level checks are `validate_records`. The file's
    final newline does not make an extra line, so the line count matches `wc -l` (plus one for an
    unterminated last line). A read error ends the file: the lines before it are kept and the
    error is one reject (``truncated_file`` / ``unreadable_data``) at the line where it happened.
    """
    path = Path(path)
    line_rejects: list[dict] = []
    raw_by_line: dict[int, str] = {}
    cap = _line_cap(max_chars)

    def parsed_lines(handle: IO[bytes]) -> Iterator[tuple[int, object]]:
        lines = _physical_lines(handle, cap)
        line_number = 0
        while True:
            line_number += 1
            try:
                raw, length = next(lines)
            except StopIteration:
                return
            except (EOFError, OSError, zlib.error) as error:
                reason = "truncated_file" if isinstance(error, EOFError) else "unreadable_data"
                detail = f"{type(error).__name__}: {error}; lines from here on could not be read"
                logger.warning("%s: %s at line %d: %s", path, reason, line_number, detail)
                line_rejects.append(_line_reject(split, line_number, reason, detail, ""))
                return
            body = raw.rstrip(b"\r\n")
            if line_number == 1 and body.startswith(b"\xef\xbb\xbf"):
                body = body[3:]  # a UTF-8 byte order mark is not part of the first record
            preview = body[: RAW_PREVIEW_CHARS * 4].decode("utf-8", errors="replace")[:RAW_PREVIEW_CHARS]
            if length > len(raw):
                detail = f"line has {length:,} bytes > {cap:,} (max_chars={max_chars} fully escaped); not parsed"
                line_rejects.append(_line_reject(split, line_number, "oversized_line", detail, preview))
                continue
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as error:
                line_rejects.append(_line_reject(split, line_number, "undecodable_bytes", str(error), preview))
                continue
            if not text.strip():
                detail = "empty line inside the file"
                line_rejects.append(_line_reject(split, line_number, "blank_line", detail, preview))
                continue
            try:
                value = json.loads(text)
            except (ValueError, RecursionError) as error:
                line_rejects.append(_line_reject(split, line_number, "malformed_json", str(error)[:200], preview))
                continue
            raw_by_line[line_number] = preview
            yield line_number, value

    with _open_binary(path) as handle:
        accepted, rejects = validate_records(parsed_lines(handle), split, max_chars=max_chars)
    # Show the file's own text in `raw`, not the re-serialised JSON value.
    row_rejects = rejects.to_dict("records")
    for row in row_rejects:
        row["raw"] = raw_by_line.get(row["line"], row["raw"])
    return accepted, _rejects_frame(sorted(line_rejects + row_rejects, key=lambda row: row["line"]))


def _line_reject(split: str, line: int, reason: str, detail: str, raw: str) -> dict:
    return {"split": split, "line": line, "reason": reason, "detail": detail, "raw": raw}


def load_splits(
    paths: Mapping[str, str | os.PathLike], max_chars: int = DEFAULT_MAX_CHARS
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, dict]:
    """Read every split; return (accepted per split, all rejects, counts per split).

    Fails early and by name: a missing file raises FileNotFoundError, a split with no
    usable row raises EmptyDatasetError with the reject reasons, so a wrong path or a
    wrong format is never discovered halfway through training.
    """
    splits: dict[str, pd.DataFrame] = {}
    all_rejects: list[dict] = []
    counts: dict[str, dict] = {}
    for split, raw_path in paths.items():
        if raw_path is None or (isinstance(raw_path, str) and not raw_path.strip()):
            raise ValueError(
                f"split '{split}': no path given (data_processing.paths.{split} is {raw_path!r}); "
                "set it to a .jsonl or .jsonl.gz file"
            )
        if not isinstance(raw_path, (str, os.PathLike)):
            raise TypeError(f"split '{split}': data_processing.paths.{split} must be a file path, got {_short(raw_path)}")
        path = Path(raw_path)
        if not path.is_file():
            what = "is a directory, not a file" if path.is_dir() else "file not found"
            raise FileNotFoundError(f"split '{split}': {what}: {path}")
        accepted, rejects = read_jsonl(path, split, max_chars=max_chars)
        lines = len(accepted) + len(rejects)
        by_reason = {reason: int(n) for reason, n in sorted(Counter(rejects["reason"]).items())}
        if accepted.empty:
            raise EmptyDatasetError(
                f"split '{split}' has 0 usable rows out of {lines} lines in {path}; "
                f"rejects by reason: {by_reason}. "
                "Expected UTF-8 JSON lines (plain or gzip) with idx, func, target; "
                "fix the file or point data_processing.paths at another one."
            )
        splits[split] = accepted
        all_rejects.extend(rejects.to_dict("records"))
        counts[split] = {
            "lines": lines,
            "accepted": int(len(accepted)),
            "rejected": int(len(rejects)),
            "rejects_by_reason": by_reason,
        }
    return splits, _rejects_frame(all_rejects), counts
