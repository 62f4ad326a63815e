"""Render a scan for people (text), scripts (JSON) and code-scanning UIs (SARIF 2.1.0).

A function is "over the threshold" when ``score >= threshold``, the same rule the validation-chosen
threshold was picked with; ``--top`` only shortens the listing, never the counts or the exit code.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from streamguard import __version__
from streamguard.data.extract import FileProblem, FunctionRecord

TOOL_NAME = "StreamGuard"
INFORMATION_URI = "https://github.com/streamguard/streamguard"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
RULE_ID = "SG0001"
RULE_NAME = "potentially-vulnerable-function"
FINGERPRINT_KEY = "streamguardFunctionHash/v1"
SOURCE_ROOT_ID = "%SRCROOT%"
ERROR_LEVEL_SCORE = 0.9


@dataclass
class ScanResult:
    """Everything a report needs: functions with their scores, plus what could not be scanned."""

    functions: list[FunctionRecord]
    scores: list[float]
    threshold: float
    track: str
    problems: list[FileProblem] = field(default_factory=list)
    files_scanned: int = 0
    description: str = ""
    seconds: float = 0.0  # extraction and scoring, the model already loaded
    load_seconds: float = 0.0  # loading the model (imports, checkpoints, building, warm-up)
    # Top lines of flagged functions (``--lines``): function -> [{"line" (in the file), "score", "text"}].
    lines: dict[FunctionRecord, list[dict]] = field(default_factory=dict)
    line_method: str = ""
    line_seconds: float = 0.0

    def __post_init__(self) -> None:
        if len(self.functions) != len(self.scores):
            raise ValueError(f"{len(self.scores)} scores for {len(self.functions)} functions")
        self.scores = [float(score) for score in self.scores]  # numpy floats are not JSON-serialisable

    @property
    def over_threshold_count(self) -> int:
        return sum(is_over_threshold(score, self.threshold) for score in self.scores)

    @property
    def functions_per_second(self) -> float:
        return len(self.functions) / self.seconds if self.seconds > 0 else 0.0


def printable(text: str) -> str:
    """``text`` as valid UTF-8 for any report or terminal.

    File names that are not UTF-8 reach Python with surrogate escapes (PEP 383), which a UTF-8
    writer refuses; their raw bytes are shown as ``\\xNN`` instead (``caf\\xe9.c``).
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")
    except UnicodeEncodeError:  # surrogates that are not escaped bytes
        return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def _path_bytes(path: Path) -> bytes:
    """The path's original bytes, for percent-encoding a URI (quote() of a surrogate-escaped str fails)."""
    try:
        return os.fsencode(path)
    except UnicodeEncodeError:
        return str(path).encode("utf-8", errors="backslashreplace")


def is_over_threshold(score: float, threshold: float) -> bool:
    """The flag rule, in one place so text, JSON, SARIF and the exit code agree."""
    return score >= threshold


def ranked(result: ScanResult, top: int | None = None) -> list[tuple[FunctionRecord, float]]:
    """Functions by descending score; ties broken by file, then line, so output is reproducible."""
    pairs = sorted(
        zip(result.functions, result.scores),
        key=lambda pair: (-pair[1], pair[0].file, pair[0].start_line, pair[0].start_column),
    )
    return pairs if top is None else pairs[: max(top, 0)]


def _summary(result: ScanResult) -> dict:
    files_with_functions = len({function.file for function in result.functions})
    return {
        "functions": len(result.functions),
        "files_scanned": result.files_scanned,
        "files_with_functions": files_with_functions,
        "files_with_problems": len({problem.file for problem in result.problems}),
        "over_threshold": result.over_threshold_count,
        "threshold": result.threshold,
        "track": result.track,
        "description": result.description,
        "seconds": round(result.seconds, 3),
        "load_seconds": round(result.load_seconds, 3),
        "functions_per_second": round(result.functions_per_second, 1),
        **(
            {"line_scores": {"method": result.line_method, "functions": len(result.lines), "seconds": round(result.line_seconds, 3)}}
            if result.line_method
            else {}
        ),
    }


def summary_line(result: ScanResult) -> str:
    """One line for logs and stderr: the counts a CI reader looks for first."""
    described = f"{result.track}: {result.description}" if result.description else result.track
    return (
        f"{len(result.functions)} function(s) in {result.files_scanned} file(s); "
        f"{result.over_threshold_count} over threshold {result.threshold:.3f}; "
        f"track {described}; model loaded in {result.load_seconds:.1f} s, scored in {result.seconds:.{1 if result.seconds >= 1 else 2}f} s "
        f"({result.functions_per_second:.{0 if result.functions_per_second >= 10 else 1}f} functions/s)"
        + (f", top lines in {result.line_seconds:.1f} s" if result.line_method else "")
    )


def problems_text(problems: list[FileProblem]) -> str:
    """One line per file problem, grouped counts first, for stderr or the end of the text report."""
    if not problems:
        return ""
    counts = ", ".join(f"{count} {kind}" for kind, count in sorted(Counter(p.kind for p in problems).items()))
    lines = [f"File problems ({counts}):"]
    lines += [f"  {printable(problem.file)}: {problem.kind}: {printable(problem.detail)}" for problem in problems]
    return "\n".join(lines)


def to_text(result: ScanResult, top: int | None = None, include_problems: bool = True) -> str:
    """A ranked table to read in a terminal, then the summary and (optionally) the file problems."""
    rows = ranked(result, top)
    headers = ("rank", "score", "flag", "location", "function")
    table = [
        (
            str(rank),
            f"{score:.3f}",
            "VULN?" if is_over_threshold(score, result.threshold) else "",
            f"{printable(function.file)}:{function.start_line}",
            printable(function.name),
        )
        for rank, (function, score) in enumerate(rows, start=1)
    ]
    widths = [max([len(header)] + [len(row[i]) for row in table]) for i, header in enumerate(headers)]
    lines = [_format_row(headers, widths)]
    for row, (function, _) in zip(table, rows):
        lines.append(_format_row(row, widths))
        indent = " " * (widths[0] + 2)
        lines += [f"{indent}line {item['line']:>5}  {item['score']:+.3f}  {printable(item['text'])}" for item in result.lines.get(function, [])]
    if not table:
        lines.append("(no functions found)")
    elif top is not None and top < len(result.functions):
        lines.append(f"... {len(result.functions) - top} more function(s) not shown (--top {top})")
    lines += ["", summary_line(result)]
    if include_problems and result.problems:
        lines += ["", problems_text(result.problems)]
    return "\n".join(lines) + "\n"


def _format_row(cells: tuple[str, ...], widths: list[int]) -> str:
    rank, score, flag, location, name = cells
    return f"{rank:>{widths[0]}}  {score:>{widths[1]}}  {flag:<{widths[2]}}  {location:<{widths[3]}}  {name}".rstrip()


def to_json(result: ScanResult, top: int | None = None) -> str:
    """Stable machine-readable output; ``rank`` is the position in the full ranking (1 = most suspicious)."""
    document = {
        "tool": "streamguard",
        "version": __version__,
        "track": result.track,
        "threshold": result.threshold,
        "summary": _summary(result),
        "functions": [
            {
                "file": printable(function.file),
                "name": printable(function.name),
                "start_line": function.start_line,
                "end_line": function.end_line,
                "start_column": function.start_column,
                "score": score,
                "over_threshold": is_over_threshold(score, result.threshold),
                "rank": rank,
                "sha1": function.sha1,
                **({"lines": result.lines[function]} if function in result.lines else {}),
            }
            for rank, (function, score) in enumerate(ranked(result, top), start=1)
        ],
        "problems": [{"file": printable(p.file), "kind": p.kind, "detail": printable(p.detail)} for p in result.problems],
    }
    return json.dumps(document, indent=2) + "\n"


def artifact_location(file: str, source_root: Path | None = None) -> dict:
    """A SARIF artifactLocation: a relative, percent-encoded URI under %SRCROOT% when the file is inside
    ``source_root`` (default: the working directory), else an absolute ``file://`` URI."""
    root = Path(source_root if source_root is not None else os.getcwd()).resolve()
    path = Path(file)
    absolute = path if path.is_absolute() else root / path
    try:
        relative = Path(os.path.normpath(absolute)).relative_to(root)
    except ValueError:
        normalized = Path(os.path.normpath(absolute))
        try:
            return {"uri": normalized.as_uri()}
        except UnicodeEncodeError:
            return {"uri": "file://" + quote(_path_bytes(normalized))}
    return {"uri": quote(_path_bytes(PurePosixPath(*relative.parts))), "uriBaseId": SOURCE_ROOT_ID}


def _sarif_rule() -> dict:
    return {
        "id": RULE_ID,
        "name": RULE_NAME,
        "shortDescription": {"text": "Function predicted to be vulnerable"},
        "fullDescription": {
            "text": "A learned model scored this C function's probability of containing a vulnerability "
            "at or above the validation-chosen threshold. The score ranks functions for review; it is not a proof."
        },
        "help": {
            "text": "Review the function for memory-safety and input-validation bugs (bounds checks, string "
            "copies, integer overflow, use after free). The score is P(vulnerable) from the StreamGuard model.",
            "markdown": "Review the function for memory-safety and input-validation bugs (bounds checks, string "
            "copies, integer overflow, use after free). The score is **P(vulnerable)** from the StreamGuard model.",
        },
        "defaultConfiguration": {"level": "warning"},
        "properties": {"tags": ["security"], "precision": "medium"},
    }


def _sarif_level(score: float, threshold: float) -> str:
    return "error" if score >= max(ERROR_LEVEL_SCORE, threshold) else "warning"


def _line_region(item: dict) -> dict:
    return {"startLine": item["line"], "endLine": item["line"]}


def to_sarif(result: ScanResult, top: int | None = None, source_root: Path | None = None) -> str:
    """SARIF 2.1.0 as GitHub code scanning accepts it: one result per function over the threshold.

    URIs are relative to ``source_root`` (default: the working directory, i.e. the checkout in CI);
    file problems become tool execution notifications so they show up without failing the upload.
    """
    root = Path(source_root if source_root is not None else os.getcwd()).resolve()
    results = []
    for function, score in ranked(result, top):
        if not is_over_threshold(score, result.threshold):
            continue
        location = artifact_location(function.file, root)
        function_region = {"startLine": function.start_line, "endLine": function.end_line, "startColumn": function.start_column}
        top_lines = result.lines.get(function, [])
        lead = f" Most suspicious line: {top_lines[0]['line']}." if top_lines else ""
        entry = {
            "ruleId": RULE_ID,
            "ruleIndex": 0,
            "level": _sarif_level(score, result.threshold),
            "message": {
                "text": f"Function '{printable(function.name)}' scored {score:.3f} (threshold {result.threshold:.3f}, "
                f"track {result.track}): review it for vulnerabilities.{lead}"
            },
            # With line scores the result points at the top line (code-scanning UIs annotate it); the
            # function and the other top lines become related locations.
            "locations": [
                {"physicalLocation": {"artifactLocation": location, "region": _line_region(top_lines[0]) if top_lines else function_region}}
            ],
            "partialFingerprints": {FINGERPRINT_KEY: function.sha1},
            "properties": {"score": score, "threshold": result.threshold, "track": result.track},
        }
        if top_lines:
            entry["relatedLocations"] = [
                {
                    "id": 0,
                    "physicalLocation": {"artifactLocation": location, "region": function_region},
                    "message": {"text": f"function '{printable(function.name)}'"},
                }
            ] + [
                {
                    "id": position,
                    "physicalLocation": {"artifactLocation": location, "region": _line_region(item)},
                    "message": {"text": f"line score {item['score']:+.3f} (rank {position + 1} in the function, {result.line_method})"},
                }
                for position, item in enumerate(top_lines[1:], start=1)
            ]
            entry["properties"]["lines"] = top_lines
        results.append(entry)
    notifications = [
        {
            "level": "warning",
            "message": {"text": f"{printable(problem.file)}: {problem.kind}: {printable(problem.detail)}"},
            "descriptor": {"id": problem.kind},
            "locations": [{"physicalLocation": {"artifactLocation": artifact_location(problem.file, root)}}],
        }
        for problem in result.problems
    ]
    run = {
        "tool": {
            "driver": {
                "name": TOOL_NAME,
                "informationUri": INFORMATION_URI,
                "version": __version__,
                "semanticVersion": __version__,
                "rules": [_sarif_rule()],
            }
        },
        "originalUriBaseIds": {SOURCE_ROOT_ID: {"uri": root.as_uri().rstrip("/") + "/"}},
        "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notifications}],
        "results": results,
        "properties": {"summary": _summary(result)},
    }
    document = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(document, indent=2) + "\n"
