"""Exact character -> source line mapping, shared by training (line labels per token) and ``explain``.

Lines are split the way editors and SARIF number them: ``\\n``, ``\\r\\n`` and a lone ``\\r`` each
end a line (1-based numbers, the first line of ``code`` is line 1). A token belongs to the line of
its first non-whitespace character, so the whitespace tokens a byte-level BPE makes of
``"\\n    "`` never belong to a line, and a token that spans lines counts once, where it starts.

It lives in the data layer so that the transformer's token-level line supervision
(:class:`streamguard.models.transformer.TokenizedDataset`) labels tokens with exactly the mapping
the line scores use (:mod:`streamguard.explain.lines` re-exports it).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class LineIndex:
    """Character offsets of every line of one piece of source."""

    code: str
    starts: tuple[int, ...]  # character offset where each line starts
    ends: tuple[int, ...]  # character offset where each line's text ends (before its line break)

    @classmethod
    def of(cls, code: str) -> LineIndex:
        starts, ends = [0], []
        for match in _LINE_BREAK.finditer(code):
            ends.append(match.start())
            starts.append(match.end())
        ends.append(len(code))
        return cls(code, tuple(starts), tuple(ends))

    @property
    def num_lines(self) -> int:
        return len(self.starts)

    def line_text(self, line: int) -> str:
        """Text of 1-based ``line`` without its line break."""
        return self.code[self.starts[line - 1] : self.ends[line - 1]]

    def lines(self) -> list[str]:
        return [self.code[start:end] for start, end in zip(self.starts, self.ends)]

    def line_of_char(self, offset: int) -> int:
        """1-based line holding character ``offset`` (a line break belongs to the line it ends)."""
        if not 0 <= offset <= len(self.code):
            raise ValueError(f"offset {offset} outside 0..{len(self.code)}")
        return bisect.bisect_right(self.starts, offset)

    def line_of_span(self, start: int, end: int) -> int | None:
        """Line of the first non-whitespace character in ``code[start:end]``; None for whitespace only."""
        text = self.code[start:end]
        stripped = len(text) - len(text.lstrip())
        if stripped == len(text):
            return None
        return self.line_of_char(start + stripped)


def token_lines(code: str, offsets: Sequence[tuple[int, int]]) -> list[int | None]:
    """Line (1-based) of each token from a fast tokenizer's ``offset_mapping``; None for special
    tokens (empty offsets) and whitespace-only tokens."""
    index = LineIndex.of(code)
    return [None if end <= start else index.line_of_span(int(start), int(end)) for start, end in offsets]
