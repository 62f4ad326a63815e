"""The original system's 10 hand-crafted code features (spec §1.6), as C heuristics.

The original computed them for Python/SQL (five came from ``ast.parse``, which always fails on C,
so they were always 0 on this data). Here every slot keeps its name, cap and divisor but counts
the C construct that plays the same role, so each value lies in [0, 1]:

========== ======================================================================== =======
name       what is counted in the function's text                                   divisor
========== ======================================================================== =======
loc        lines                                                                    100
sloc       non-blank lines that are not only a comment (preprocessor lines count)   100
sql_concat string building calls: strcat, strncat, sprintf, snprintf, vsprintf      5
execute    command execution: system, popen, exec*, ShellExecute, WinExec           5
user_input input sources: gets, fgets, scanf family, read, recv*, getenv, fread     5
loops      for, while, do                                                           10
branches   if, switch, case, ternary ?                                              10
calls      identifier followed by ``(`` that is not a keyword                       20
try_blocks error jumps: goto, setjmp, longjmp                                       5
string_ops strcpy/strncpy/memcpy/memmove/memset/strlen/strcmp family                10
========== ======================================================================== =======
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

NAMES = ("loc", "sloc", "sql_concat", "execute", "user_input", "loops", "branches", "calls", "try_blocks", "string_ops")
DIVISORS = (100.0, 100.0, 5.0, 5.0, 5.0, 10.0, 10.0, 20.0, 5.0, 10.0)
NUM_CODE_FEATURES = len(NAMES)

_KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "do", "else", "case", "goto", "defined", "typeof"}
_PATTERNS = {
    "sql_concat": re.compile(r"\b(?:strn?cat|v?sn?printf|wcs(?:n)?cat)\s*\("),
    "execute": re.compile(r"\b(?:system|popen|exec[lv]p?e?|ShellExecute\w*|WinExec|CreateProcess\w*)\s*\("),
    "user_input": re.compile(r"\b(?:gets|fgets|getline|f?scanf|sscanf|read|recv(?:from|msg)?|getenv|fread|getchar|fgetc)\s*\("),
    "loops": re.compile(r"\b(?:for|while|do)\b"),
    "branches": re.compile(r"\b(?:if|switch|case)\b|\?"),
    "try_blocks": re.compile(r"\b(?:goto|setjmp|longjmp|sigsetjmp|siglongjmp)\b"),
    "string_ops": re.compile(r"\b(?:strn?cpy|memcpy|memmove|memset|strlen|strn?cmp|strchr|strrchr|strstr|strdup|strtok)\s*\("),
}
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_COMMENT_ONLY = re.compile(r"^\s*(?://|/\*|\*)")


def code_features(text: str) -> list[float]:
    """The 10 values for one function, each capped at its divisor and divided by it."""
    lines = text.splitlines()
    counts = {
        "loc": len(lines),
        "sloc": sum(1 for line in lines if line.strip() and not _COMMENT_ONLY.match(line)),
        "calls": sum(1 for name in _CALL.findall(text) if name not in _KEYWORDS),
    }
    counts.update({name: len(pattern.findall(text)) for name, pattern in _PATTERNS.items()})
    return [min(float(counts[name]), divisor) / divisor for name, divisor in zip(NAMES, DIVISORS, strict=True)]


def code_feature_matrix(texts: Sequence[str]) -> np.ndarray:
    """[N, 10] float32 features of ``texts`` in order."""
    return np.asarray([code_features(str(text)) for text in texts], dtype=np.float32).reshape(len(texts), NUM_CODE_FEATURES)
