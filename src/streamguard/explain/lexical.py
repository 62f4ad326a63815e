"""The bars every learned line ranking must clear: a lexical heuristic and random line order.

The heuristic is what a reviewer grepping for trouble would look at first: unbounded string and
memory calls, allocation and release, format strings that are not literals, indexing with a
variable, arithmetic inside size arguments, input sources (what Juliet's "POTENTIAL FLAW" lines
often are), and ``<=`` loop bounds. A line's score is the sum of the weights of the patterns it
matches; ties keep source order.

Random order is given exactly, not sampled: for a function of ``n`` scored lines of which ``f``
are flawed, P(a flawed line in the top k) = 1 - C(n-f, k) / C(n, k), and the expected number of
clean lines ranked above the first flawed one is (n - f) / (f + 1).
"""

from __future__ import annotations

import re
from math import comb

import numpy as np

from streamguard.explain.lines import LineIndex, statement_lines

_CALL = r"\b(?:{})\s*\("
RISKY_PATTERNS: tuple[tuple[str, float], ...] = (
    (_CALL.format("strcpy|strcat|sprintf|vsprintf|gets|wcscpy|wcscat|swprintf|_mbscpy|lstrcpy\\w*|strcpy\\w*"), 3.0),
    (_CALL.format("memcpy|memmove|strncpy|strncat|wcsncpy|wcsncat|snprintf|_snprintf|vsnprintf|memset|wmemset|wmemcpy"), 3.0),
    (_CALL.format("malloc|calloc|realloc|alloca|_alloca|free|delete|strdup|wcsdup"), 2.0),
    (r"\bdelete\b\s*(?:\[\s*\])?\s*\w", 2.0),
    (r"\bnew\b\s+\w+\s*\[", 2.0),
    (r"\b(?:printf|wprintf|vprintf)\s*\(\s*[A-Za-z_]", 2.0),  # format argument is not a literal
    (r"\b(?:fprintf|fwprintf|sprintf|snprintf|syslog)\s*\([^,]*,\s*[A-Za-z_]\w*\s*\)", 2.0),
    (r"[A-Za-z_]\w*\s*\[[^\]]*[A-Za-z_][^\]]*\]\s*(?:=[^=]|\+\+|--|[-+*/|&^]=)", 2.0),  # write through a variable index
    (r"[A-Za-z_]\w*\s*\[[^\]]*[A-Za-z_][^\]]*\]", 1.0),  # any variable index
    (r"\b(?:malloc|calloc|realloc|alloca|memcpy|memmove|memset|strncpy|strncat)\s*\([^;]*[-+*]", 1.0),  # size arithmetic
    (_CALL.format("fgets|fgetws|recv|recvfrom|fscanf|scanf|sscanf|swscanf|getenv|atoi|atol|strtol|strtoul|rand|read|fread"), 1.5),
    (r"\bfor\s*\([^;]*;[^;]*<=", 1.0),
    (r"\*\s*[A-Za-z_]\w*\s*=[^=]", 0.5),  # write through a pointer
    (r"[-+*]\s*=|\+\+|--", 0.25),  # integer arithmetic
)
_COMPILED = tuple((re.compile(pattern), weight) for pattern, weight in RISKY_PATTERNS)


def lexical_line_scores(code: str) -> np.ndarray:
    """Heuristic risk per line (0 for lines that match nothing; NaN for lines that hold no statement,
    as for every learned method: :func:`~streamguard.explain.lines.statement_lines`)."""
    index = LineIndex.of(code)
    scores = np.full(index.num_lines, np.nan)
    for position, (text, keep) in enumerate(zip(index.lines(), statement_lines(code))):
        if keep:
            scores[position] = sum(weight for pattern, weight in _COMPILED if pattern.search(text))
    return scores


def random_topk_probability(num_lines: int, num_flawed: int, k: int) -> float:
    """P(at least one of ``num_flawed`` flawed lines is among the top ``k`` of a random order)."""
    if num_flawed <= 0:
        return 0.0
    k = min(k, num_lines)
    return 1.0 - comb(num_lines - num_flawed, k) / comb(num_lines, k)


def random_expected_ifa(num_lines: int, num_flawed: int) -> float:
    """Expected clean lines ranked above the first flawed one in a random order."""
    return (num_lines - num_flawed) / (num_flawed + 1)
