"""Line labels from the Juliet suite's own comments, carried exactly onto the comment-free ``func_anon``.

In a vulnerable Juliet function the statement after a ``/* FLAW ...`` or ``/* POTENTIAL FLAW ...``
comment is the flaw (a comment that ends a line of code marks that line). ``func`` keeps those
comments; ``func_anon`` (what models see) drops comments and blank lines and renames some
identifiers. The mapping keeps ``func``'s lines that still hold code once comments are removed,
in order, and is accepted only when it pairs them one to one with ``func_anon``'s lines, every pair
having the same shape (the text with identifiers and whitespace erased); otherwise the function is
left out and counted.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_FLAW = re.compile(r"^\s*(?:POTENTIAL\s+)?FLAW\b")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Comment:
    start_line: int  # 1-based, in func
    end_line: int
    text: str


def split_code_and_comments(code: str) -> tuple[list[str], list[Comment]]:
    """Each line of ``code`` with its comments removed (strings and char literals respected), and the comments."""
    lines: list[str] = [""]
    comments: list[Comment] = []
    i, n, line = 0, len(code), 1
    while i < n:
        char = code[i]
        if code.startswith("/*", i) or code.startswith("//", i):
            block = code.startswith("/*", i)
            end = code.find("*/", i + 2) if block else code.find("\n", i)
            end = n if end < 0 else (end + 2 if block else end)
            text = code[i:end]
            comments.append(Comment(line, line + text.count("\n"), text[2:-2] if block else text[2:]))
            for _ in range(text.count("\n")):
                lines.append("")
                line += 1
            i = end
            continue
        if char in "\"'":
            j = i + 1
            while j < n and code[j] != char and code[j] != "\n":
                j += 2 if code[j] == "\\" else 1
            literal = code[i : min(j + 1, n)]
            lines[-1] += literal
            i = min(j + 1, n)
            continue
        if char == "\n":
            lines.append("")
            line += 1
        else:
            lines[-1] += char
        i += 1
    return lines, comments


def shape(text: str) -> str:
    """A line with identifiers and whitespace erased: equal for a line and its anonymised twin."""
    return _WHITESPACE.sub("", _IDENTIFIER.sub("I", text))


def flaw_lines(func: str) -> set[int]:
    """1-based lines of ``func`` that hold a flawed statement, from FLAW / POTENTIAL FLAW comments."""
    code_lines, comments = split_code_and_comments(func.replace("\r\n", "\n").replace("\r", "\n"))
    flawed: set[int] = set()
    for comment in comments:
        if not _FLAW.match(comment.text):
            continue
        if code_lines[comment.start_line - 1].strip() and comment.start_line == comment.end_line:
            candidates = [comment.start_line]  # a trailing comment marks its own line when code precedes it
        else:
            candidates = [line for line in range(comment.end_line, len(code_lines) + 1) if code_lines[line - 1].strip()]
        if candidates:
            flawed.add(candidates[0])
    return flawed


def anon_line_map(func: str, func_anon: str) -> dict[int, int] | None:
    """``func`` line -> ``func_anon`` line (1-based) for every line that holds code; None when they do not pair up."""
    code_lines, _ = split_code_and_comments(func.replace("\r\n", "\n").replace("\r", "\n"))
    kept = [(number, text) for number, text in enumerate(code_lines, start=1) if text.strip()]
    anon = [text for text in func_anon.replace("\r\n", "\n").replace("\r", "\n").split("\n") if text.strip()]
    if len(kept) != len(anon):
        return None
    if any(shape(text) != shape(twin) for (_, text), twin in zip(kept, anon)):
        return None
    anon_numbers = [number for number, text in enumerate(func_anon.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1) if text.strip()]
    return {number: anon_numbers[position] for position, (number, _) in enumerate(kept)}


def anon_flaw_lines(func: str, func_anon: str) -> tuple[set[int] | None, str]:
    """(flawed lines of ``func_anon``, "") or (None, why the function is left out)."""
    flawed = flaw_lines(func)
    if not flawed:
        return None, "no FLAW comment"
    mapping = anon_line_map(func, func_anon)
    if mapping is None:
        return None, "lines do not pair with func_anon"
    missing = [line for line in flawed if line not in mapping]
    if missing:
        return None, "flawed line not in func_anon"
    return {mapping[line] for line in flawed}, ""


def read_rows(path: Path) -> Iterator[dict]:
    """Rows of a Juliet functions jsonl(.gz) file."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
