"""``streamguard scan``: score every C function under some paths and gate CI on the result.

Exit codes (``EXIT_CODES``): 0 nothing over the threshold, 1 at least one function over it (the CI
gate), 2 the scan could not run (bad arguments, missing paths, no C files, unwritable --output),
3 nothing was scored (every file unreadable, or no function definition found), 4 the model could not
be loaded or failed to score. One bad file never stops a scan: it is reported and skipped; a scan
that scored nothing is never a pass. The model stack (torch, Kedro, MLflow) is
imported only when a scorer is loaded, so ``--help`` and argument errors stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TextIO

import numpy as np

from streamguard.data.extract import (
    DEFAULT_INCLUDE,
    DEFAULT_MAX_FILE_BYTES,
    FileProblem,
    FunctionRecord,
    extract_functions,
    iter_source_files,
)
from streamguard.serving.scan.report import ScanResult, problems_text, summary_line, to_json, to_sarif, to_text

TRACKS = ("fusion", "transformer", "gnn")
FORMATS = ("text", "json", "sarif")
EXIT_CLEAN, EXIT_FLAGGED, EXIT_ERROR, EXIT_NOTHING_SCANNED, EXIT_NO_MODEL = 0, 1, 2, 3, 4
#: What each exit code means (``streamguard scan --help`` and the README list the same).
EXIT_CODES = {
    EXIT_CLEAN: "nothing over the threshold",
    EXIT_FLAGGED: "at least one function over the threshold",
    EXIT_ERROR: "the scan could not run (bad arguments, missing paths, no C files, unwritable --output)",
    EXIT_NOTHING_SCANNED: "nothing was scored: every file unreadable or no function definition found",
    EXIT_NO_MODEL: "the model could not be loaded or failed to score",
}
DEFAULT_BATCH_SIZE = 1024
PROGRESS_MIN_FILES = 20  # below this a bar is noise
DEFAULT_LINES = 3  # top lines shown per flagged function (--lines)
LINE_METHODS = ("attention", "integrated_gradients", "gradient_x_input", "occlusion", "gnnexplainer", "supervised", "lexical")


class Scorer(Protocol):
    """What the scan needs from a trained track; ``streamguard.serving.scorer.load_scorer`` provides one."""

    track: str
    threshold: float
    description: str

    def score(self, functions: Sequence[FunctionRecord]) -> np.ndarray:
        """P(vulnerable) per function, same order."""
        ...


ScorerFactory = Callable[[Path, str, str | None], Scorer]


class ScanError(Exception):
    """A reason the scan cannot run at all; its message is printed without a traceback (exit 2 by default)."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def default_scorer_factory(project_dir: Path, track: str, model_uri: str | None) -> Scorer:
    """The real scorer, imported here so the heavy model stack loads only when a scan actually runs."""
    from streamguard.runtime.quiet import silence_known_warnings

    silence_known_warnings()
    from streamguard.serving.scorer import load_scorer

    return load_scorer(project_dir, track, model_uri)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    """0 (the "off" value) or a positive integer."""
    return 0 if text.strip() == "0" else _positive_int(text)


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def add_scan_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Declare the scan options on ``parser`` (the ``streamguard scan`` subparser or a standalone one)."""
    parser.epilog = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + "."
    parser.add_argument("paths", nargs="+", metavar="PATH", help="C files or directories to scan")
    parser.add_argument("--track", choices=TRACKS, default="fusion", help="which trained model to score with (default: fusion)")
    parser.add_argument(
        "--project-dir", type=Path, default=Path("."), metavar="DIR", help="Kedro project holding the trained models (default: .)"
    )
    parser.add_argument(
        "--model-uri", metavar="URI", help="score with an MLflow model (e.g. models:/streamguard/1) instead of the project's"
    )
    parser.add_argument("--format", choices=FORMATS, default="text", help="report format (default: text)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write the report here instead of stdout")
    parser.add_argument(
        "--threshold",
        type=_probability,
        metavar="FLOAT",
        help="flag functions scoring at or above this (default: the model's validation-chosen one)",
    )
    parser.add_argument("--top", type=_positive_int, metavar="N", help="list only the N highest-scoring functions")
    parser.add_argument(
        "--include",
        action="append",
        metavar="GLOB",
        help=f"file-name glob to scan inside directories; repeatable, replaces the default {' '.join(DEFAULT_INCLUDE)}",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="relative-path glob to skip inside directories, e.g. 'vendor/*' or '*/test/*'; repeatable",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"functions per scoring call (default: {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--max-file-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_FILE_BYTES,
        metavar="N",
        help=f"skip larger files, typically generated code (default: {DEFAULT_MAX_FILE_BYTES:,})",
    )
    parser.add_argument("--follow-symlinks", action="store_true", help="follow symbolic links while walking directories")
    parser.add_argument("--no-progress", action="store_true", help="never show the progress bar on stderr")
    parser.add_argument(
        "--lines",
        type=_non_negative_int,
        default=DEFAULT_LINES,
        metavar="K",
        help=f"for each flagged function, its K highest-scored lines (text, JSON; SARIF points at the top one); "
        f"0 turns line scores off (default: {DEFAULT_LINES})",
    )
    parser.add_argument(
        "--line-method",
        choices=LINE_METHODS,
        help="how lines are scored (default: the track's, see README 'Which lines?'); lexical needs no model",
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """A standalone parser for ``streamguard scan`` (the top-level CLI adds the same arguments to a subparser)."""
    parser = argparse.ArgumentParser(prog="streamguard scan", description=__doc__.split("\n\n")[0])
    return add_scan_arguments(parser)


def _check_output_writable(output: str) -> None:
    """Fail before the (slow) scan rather than after it; the message names the path."""
    path = Path(output)
    if path.is_dir():
        raise ScanError(f"cannot write --output {output}: it is a directory")
    parent = path.parent
    if not parent.is_dir():
        reason = "is not a directory" if parent.exists() else "does not exist"
        raise ScanError(f"cannot write --output {output}: {parent} {reason}")
    writable = os.access(path, os.W_OK) if path.exists() else os.access(parent, os.W_OK)
    if not writable:
        raise ScanError(f"cannot write --output {output}: permission denied")


def _source_files(args: argparse.Namespace, walk_problems: list[FileProblem] | None = None) -> list[Path]:
    """The files to scan; directories that could not be listed are appended to ``walk_problems``."""
    missing = [path for path in args.paths if not os.path.exists(path)]
    if missing:
        raise ScanError("no such file or directory: " + ", ".join(missing))
    include = tuple(args.include) if args.include else DEFAULT_INCLUDE
    problems = walk_problems if walk_problems is not None else []
    try:
        files = list(
            iter_source_files(
                args.paths, include, tuple(args.exclude), follow_symlinks=args.follow_symlinks, on_error=problems.append
            )
        )
    except OSError as error:
        raise ScanError(f"cannot list the files to scan: {error}") from error
    if not files:
        excluded = f", excluding {' '.join(args.exclude)}" if args.exclude else ""
        unlisted = f"; {problems_text(problems)}" if problems else ""
        raise ScanError(f"no C files found in {', '.join(args.paths)} (matching {' '.join(include)}{excluded}){unlisted}")
    return files


def _load_scorer(args: argparse.Namespace, scorer_factory: ScorerFactory) -> Scorer:
    try:
        return scorer_factory(Path(args.project_dir), args.track, args.model_uri)
    except Exception as error:  # any loader failure is a "no scorer" exit, reported without a traceback
        raise ScanError(f"cannot load the {args.track} scorer: {error}", EXIT_NO_MODEL) from error


def _score(scorer: Scorer, functions: list[FunctionRecord]) -> list[float]:
    try:
        scores = np.asarray(scorer.score(functions), dtype=float).reshape(-1)
    except Exception as error:
        raise ScanError(f"scoring failed: {type(error).__name__}: {error}", EXIT_NO_MODEL) from error
    if len(scores) != len(functions):
        raise ScanError(f"the scorer returned {len(scores)} scores for {len(functions)} functions", EXIT_NO_MODEL)
    if not np.all(np.isfinite(scores)):
        raise ScanError("the scorer returned non-finite scores", EXIT_NO_MODEL)
    return scores.tolist()


def _extract_safely(path: Path, max_file_bytes: int) -> tuple[list[FunctionRecord], list[FileProblem]]:
    """extract_functions already turns I/O and encoding trouble into problems; this catches the unforeseen."""
    try:
        return extract_functions(path, max_file_bytes=max_file_bytes, display_path=str(path))
    except Exception as error:
        return [], [FileProblem(str(path), "unreadable", f"could not be processed: {type(error).__name__}: {error}")]


def _scan(
    args: argparse.Namespace, files: list[Path], scorer: Scorer, stderr: TextIO
) -> tuple[list[FunctionRecord], list[float], list[FileProblem]]:
    """Extract and score file by file, scoring in batches so memory and progress track the walk."""
    from tqdm import tqdm

    functions: list[FunctionRecord] = []
    scores: list[float] = []
    problems: list[FileProblem] = []
    pending: list[FunctionRecord] = []
    show_progress = not args.no_progress and len(files) >= PROGRESS_MIN_FILES
    with tqdm(files, desc="scanning", unit="file", file=stderr, disable=None if show_progress else True, leave=False) as bar:
        for path in bar:
            records, file_problems = _extract_safely(path, args.max_file_bytes)
            problems.extend(file_problems)
            pending.extend(records)
            while len(pending) >= args.batch_size:
                batch, pending = pending[: args.batch_size], pending[args.batch_size :]
                scores.extend(_score(scorer, batch))
                functions.extend(batch)
    if pending:
        scores.extend(_score(scorer, pending))
        functions.extend(pending)
    return functions, scores, problems


def _add_line_scores(result: ScanResult, args: argparse.Namespace, scorer: Scorer) -> None:
    """Top ``--lines`` lines of each flagged function that the report lists, timed apart from the scan.

    Only flagged functions are explained, after scoring, so the scan's functions/s is the same
    with line scores on or off; their cost is ``summary.line_scores.seconds``.
    """
    if args.lines <= 0:
        return
    from streamguard.serving.scan.report import is_over_threshold, ranked

    flagged = [function for function, score in ranked(result, args.top) if is_over_threshold(score, result.threshold)]
    if not flagged:
        return
    line_scores = getattr(scorer, "line_scores", None)
    if line_scores is None and args.line_method != "lexical":
        return  # a custom scorer without line scores (every trained track has them)
    from streamguard.explain import lexical_line_scores, top_lines

    started = time.perf_counter()
    try:
        if args.line_method == "lexical":
            per_function = [lexical_line_scores(function.code) for function in flagged]
        else:
            per_function = line_scores([function.code for function in flagged], method=args.line_method)
    except Exception as error:
        raise ScanError(f"line scores failed: {type(error).__name__}: {error}", EXIT_NO_MODEL) from error
    for function, scores in zip(flagged, per_function):
        result.lines[function] = [item.as_dict(function.start_line - 1) for item in top_lines(function.code, scores, args.lines)]
    result.line_method = args.line_method or getattr(scorer, "default_line_method", "") or "default"
    result.line_seconds = time.perf_counter() - started


def _render(result: ScanResult, args: argparse.Namespace, to_stdout: bool) -> str:
    if args.format == "json":
        return to_json(result, args.top)
    if args.format == "sarif":
        return to_sarif(result, args.top)
    # On a terminal the file problems go to stderr instead, so the table stays clean.
    return to_text(result, args.top, include_problems=not to_stdout)


def _write_report(report: str, output: str | None, stdout: TextIO) -> None:
    if output is None or output == "-":
        try:
            stdout.write(report)
            stdout.flush()
        except BrokenPipeError:  # `streamguard scan . | head`: the reader left; keep the exit code meaningful
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())  # no second error at interpreter exit
        return
    try:
        Path(output).write_text(report, encoding="utf-8")
    except (OSError, UnicodeError) as error:
        raise ScanError(f"cannot write --output {output}: {getattr(error, 'strerror', None) or error}") from error


def _report_to_stderr(result: ScanResult, args: argparse.Namespace, to_stdout: bool, stderr: TextIO) -> None:
    if args.format == "text":
        if result.problems:
            stderr.write(problems_text(result.problems) + "\n")
        if not to_stdout:
            stderr.write(f"streamguard scan: {summary_line(result)}\n")
        return
    problem_note = f"; {len(result.problems)} file problem(s), listed in the report" if result.problems else ""
    stderr.write(f"streamguard scan: {summary_line(result)}{problem_note}\n")


def run_scan(
    args: argparse.Namespace,
    scorer_factory: ScorerFactory | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run a parsed ``scan`` command and return its exit code; ``scorer_factory`` replaces the model loader in tests."""
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    to_stdout = args.output is None or args.output == "-"
    try:
        walk_problems: list[FileProblem] = []
        files = _source_files(args, walk_problems)
        if not to_stdout:
            _check_output_writable(args.output)
        loading = time.perf_counter()
        scorer = _load_scorer(args, scorer_factory or default_scorer_factory)
        load_seconds = time.perf_counter() - loading
        threshold = float(args.threshold if args.threshold is not None else scorer.threshold)
        started = time.perf_counter()
        functions, scores, problems = _scan(args, files, scorer, stderr)
        result = ScanResult(
            functions=functions,
            scores=scores,
            threshold=threshold,
            track=getattr(scorer, "track", args.track),
            problems=walk_problems + problems,
            files_scanned=len(files),
            description=getattr(scorer, "description", ""),
            seconds=time.perf_counter() - started,
            load_seconds=load_seconds,
        )
        _add_line_scores(result, args, scorer)
        _write_report(_render(result, args, to_stdout), args.output, stdout)
    except ScanError as error:
        stderr.write(f"streamguard scan: error: {error}\n")
        return error.exit_code
    _report_to_stderr(result, args, to_stdout, stderr)
    if not result.functions:  # a CI gate must not pass on a scan that looked at nothing
        why = "every file was unreadable" if len({p.file for p in result.problems}) >= len(files) else "no function definition found"
        stderr.write(f"streamguard scan: error: nothing was scored in {len(files)} file(s): {why} (exit {EXIT_NOTHING_SCANNED})\n")
        return EXIT_NOTHING_SCANNED
    return EXIT_FLAGGED if result.over_threshold_count else EXIT_CLEAN


def main(argv: Sequence[str] | None = None, scorer_factory: ScorerFactory | None = None) -> int:
    """``streamguard scan ...`` as a function: parse, run, return the exit code (argparse errors give 2)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_request:  # --help (0) or a usage error (2)
        return exit_request.code if isinstance(exit_request.code, int) else EXIT_ERROR
    return run_scan(args, scorer_factory=scorer_factory)
