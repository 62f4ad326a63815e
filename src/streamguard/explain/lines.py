"""Exact character/byte -> source line mapping, and turning per-token / per-node scores into line scores.

Lines are split the way editors and SARIF number them: ``\\n``, ``\\r\\n`` and a lone ``\\r`` each
end a line (1-based numbers, the first line of ``code`` is line 1). A token or graph node belongs
to the line of its first non-whitespace character, so the whitespace tokens a byte-level BPE
makes of ``"\\n    "`` never carry score to a line, and a token that spans lines (a block
comment, a string with a line continuation) counts once, where it starts.

Lines that no token / node reaches (blank lines, lines cut off by the model's ``max_length``)
get ``NaN``: "no evidence", ranked after every scored line by :func:`rank_lines`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamguard.data.source_lines import LineIndex, token_lines  # noqa: F401  (re-exported: the line mapping lives in data/)


def char_offsets_from_bytes(code: str) -> np.ndarray:
    """``result[b]`` = character offset of UTF-8 byte ``b`` of ``code`` (length ``len(bytes) + 1``).

    Graph node spans are byte ranges of ``code.encode("utf-8", errors="replace")``; this makes
    them character ranges for :class:`LineIndex`.
    """
    offsets: list[int] = []
    for position, char in enumerate(code):
        offsets.extend([position] * len(char.encode("utf-8", errors="replace")))
    offsets.append(len(code))
    return np.asarray(offsets, dtype=np.int64)


def aggregate_to_lines(
    num_lines: int, item_lines: Sequence[int | None], item_scores: Sequence[float], reduce: str = "sum"
) -> np.ndarray:
    """Sum (``reduce="max"``: maximum) of item (token / node) scores per line; lines no item reaches are NaN.

    Attributions add up over a line's tokens; a per-token probability (the transformer's supervised
    line head) does not, so it takes the line's most confident token instead.
    """
    if reduce not in ("sum", "max"):
        raise ValueError(f"reduce must be 'sum' or 'max', got {reduce!r}")
    combine = max if reduce == "max" else (lambda a, b: a + b)
    scores = np.full(num_lines, np.nan)
    for line, score in zip(item_lines, item_scores):
        if line is None or not np.isfinite(score):
            continue
        position = line - 1
        scores[position] = float(score) if np.isnan(scores[position]) else combine(scores[position], float(score))
    return scores


def span_lines(code: str, spans: Sequence[tuple[int, int]], byte_spans: bool = True) -> list[list[int]]:
    """The lines each (byte or char) span covers that hold non-whitespace text of the span."""
    index = LineIndex.of(code)
    char_of = char_offsets_from_bytes(code) if byte_spans else None
    result = []
    for start, end in spans:
        if char_of is not None:
            start, end = int(char_of[min(start, len(char_of) - 1)]), int(char_of[min(end, len(char_of) - 1)])
        if end <= start:
            result.append([])
            continue
        first, last = index.line_of_char(start), index.line_of_char(max(start, end - 1))
        covered = []
        for line in range(first, last + 1):
            lo, hi = max(start, index.starts[line - 1]), min(end, index.ends[line - 1])
            if hi > lo and index.code[lo:hi].strip():
                covered.append(line)
        result.append(covered)
    return result


def spread_to_lines(num_lines: int, item_lines: Sequence[Sequence[int]], item_scores: Sequence[float]) -> np.ndarray:
    """Each item's score split equally over the lines it covers (graph nodes: a statement node that
    spans five lines gives each a fifth), summed per line; lines no item covers are NaN."""
    scores = np.full(num_lines, np.nan)
    for lines, score in zip(item_lines, item_scores):
        if not lines or not np.isfinite(score):
            continue
        share = float(score) / len(lines)
        for line in lines:
            position = line - 1
            scores[position] = share if np.isnan(scores[position]) else scores[position] + share
    return scores


def rank_lines(scores: Sequence[float]) -> list[int]:
    """1-based line numbers, highest score first; NaN (no evidence) last; ties keep source order."""
    values = np.asarray(scores, dtype=float)
    keyed = np.where(np.isnan(values), -np.inf, values)
    order = sorted(range(len(values)), key=lambda i: (-keyed[i], np.isnan(values[i]), i))
    return [i + 1 for i in order]


def normalise(scores: Sequence[float]) -> np.ndarray:
    """Scores divided by their L1 norm over scored lines (NaN kept), so seeds and branches weigh alike."""
    values = np.asarray(scores, dtype=float)
    total = np.nansum(np.abs(values))
    return values / total if total > 0 else values.copy()


def mean_scores(per_member: Sequence[Sequence[float]]) -> np.ndarray:
    """Mean of normalised line scores (seeds of an ensemble); a line is NaN only if every member has it NaN."""
    stacked = np.vstack([normalise(scores) for scores in per_member])
    with np.errstate(invalid="ignore"):
        counted = np.sum(~np.isnan(stacked), axis=0)
        total = np.nansum(stacked, axis=0)
    return np.where(counted > 0, total / np.maximum(counted, 1), np.nan)


_PUNCTUATION = set("{}();,")


def statement_lines(code: str) -> np.ndarray:
    """Which lines can hold a flawed statement: inside the function body, with some text that is
    neither a comment nor bare punctuation (``{``, ``}``, ``);``...).

    Line scores are reported for these lines only (others are NaN, ranked last): ranking every
    line put the signature line (``void f(...)``, whose tokens every transformer attends to and
    every gradient touches) first in most Juliet functions, and a brace is never the answer to
    "which line?". Parsed with the graph builder's tree-sitter-c; code it cannot place in a
    function keeps every line with non-punctuation text.
    """
    from streamguard.graphs import parse

    index = LineIndex.of(code)
    source_chars = char_offsets_from_bytes(code)
    tree = parse(code)
    body_start, comments = 0, []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "comment":
            comments.append((int(source_chars[node.start_byte]), int(source_chars[node.end_byte])))
            continue
        if node.type == "function_definition" and body_start == 0:
            body = node.child_by_field_name("body")
            if body is not None:
                body_start = int(source_chars[body.start_byte]) + 1
        stack.extend(reversed(node.children))
    hidden = np.zeros(len(code) + 1, dtype=bool)
    hidden[:body_start] = True
    for start, end in comments:
        hidden[start:end] = True
    keep = np.zeros(index.num_lines, dtype=bool)
    for position, (start, end) in enumerate(zip(index.starts, index.ends)):
        keep[position] = any(
            not hidden[offset] and not char.isspace() and char not in _PUNCTUATION
            for offset, char in enumerate(code[start:end], start=start)
        )
    return keep


def only_statement_lines(code: str, scores: Sequence[float]) -> np.ndarray:
    """``scores`` with every line :func:`statement_lines` rules out set to NaN."""
    values = np.asarray(scores, dtype=float).copy()
    values[~statement_lines(code)] = np.nan
    return values
