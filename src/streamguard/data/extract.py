"""Find the C functions in a source tree, the unit every StreamGuard track scores.

Files are parsed with tree-sitter-c, which recovers from syntax errors, so a file with a macro the
grammar does not understand still yields the functions around it. Nothing here raises on one bad
file: unreadable, vanished, oversized, non-UTF-8 or unparsable files come back as ``FileProblem``s
for the report, next to the functions that could be extracted.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import tree_sitter
import tree_sitter_c

DEFAULT_INCLUDE = ("*.c", "*.h")
DEFAULT_MAX_FILE_BYTES = 5_000_000
ANONYMOUS = "<anonymous>"
PROBLEM_KINDS = ("unreadable", "not_utf8", "parse_errors", "vanished", "too_large")
# Version-control metadata never holds sources worth scanning, and walking .git is slow.
SKIPPED_DIRECTORY_NAMES = frozenset({".git", ".hg", ".svn"})

_IDENTIFIER_TYPES = frozenset({"identifier", "field_identifier"})
# Subtrees of a declarator that name parameters or macro arguments, never the function itself.
_NOT_THE_NAME_TYPES = frozenset({"parameter_list", "argument_list", "attribute_specifier", "attribute_declaration"})
# Well-formed items an ERROR node may swallow whole; the error lies in the children around them.
_COMPLETE_ITEM_TYPES = frozenset(
    {"function_definition", "declaration", "type_definition", "comment", "preproc_include", "preproc_def", "preproc_call"}
)


@dataclass(frozen=True)
class FunctionRecord:
    """One function definition: where it is, its exact text, and a stable hash of that text."""

    file: str
    name: str
    start_line: int
    end_line: int
    start_column: int
    code: str
    sha1: str


@dataclass(frozen=True)
class FileProblem:
    """Why a file was skipped or only partly understood; reported instead of crashing the scan."""

    file: str
    kind: str
    detail: str


@functools.cache
def _c_language() -> tree_sitter.Language:
    return tree_sitter.Language(tree_sitter_c.language())


@functools.cache
def _parser() -> tree_sitter.Parser:
    """One parser per process: building one per file would dominate small-file scans."""
    return tree_sitter.Parser(_c_language())


@functools.cache
def _function_query() -> tree_sitter.Query:
    """Matching in C finds functions at any depth (``#ifdef`` blocks, ERROR nodes) without Python recursion."""
    return tree_sitter.Query(_c_language(), "(function_definition) @function")


def _matches_any(text: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(text, pattern) for pattern in patterns)


def _is_excluded_directory(relative_dir: str, exclude: Sequence[str]) -> bool:
    # "vendor/*" should prune the whole vendor/ folder, and a bare "build" should too.
    return _matches_any(relative_dir, exclude) or _matches_any(relative_dir + "/", exclude)


def iter_source_files(
    paths: Sequence[str],
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    follow_symlinks: bool = False,
    on_error: Callable[[FileProblem], None] | None = None,
) -> Iterator[Path]:
    """The files to scan, in a deterministic order, each once.

    Files named directly are always scanned (the user asked for them). Directories are walked in
    sorted order; a file is kept when its name matches an ``include`` glob and its path relative to
    the walked directory (forward slashes) matches no ``exclude`` glob, e.g. ``vendor/*`` or
    ``*/test/*``. Symlinks inside a walk are skipped unless ``follow_symlinks``, which then guards
    against directory loops. Raises FileNotFoundError for a path that does not exist. A directory
    that cannot be listed (permission denied, deleted during the walk) is passed to ``on_error``
    as a ``FileProblem`` instead of being skipped silently.
    """
    seen: set[Path] = set()

    def walk_error(error: OSError) -> None:
        if on_error is None:
            return
        where = str(error.filename) if error.filename is not None else "?"
        if isinstance(error, FileNotFoundError):
            on_error(FileProblem(where, "vanished", "directory disappeared during the walk; files in it were not scanned"))
        else:
            reason = error.strerror or str(error)
            on_error(FileProblem(where, "unreadable", f"directory could not be listed ({reason}); files in it were not scanned"))

    def first_time(path: Path) -> bool:
        key = path.resolve()
        if key in seen:
            return False
        seen.add(key)
        return True

    for given in paths:
        root = Path(given)
        if not root.is_dir():
            if not root.exists():
                raise FileNotFoundError(f"no such file or directory: {given}")
            if first_time(root):
                yield root
            continue
        visited_directories: set[tuple[int, int]] = set()
        for directory, subdirectories, filenames in os.walk(root, onerror=walk_error, followlinks=follow_symlinks):
            current = Path(directory)
            relative_dir = current.relative_to(root).as_posix()
            if follow_symlinks:
                try:
                    status = current.stat()
                except OSError as error:
                    walk_error(error)
                    subdirectories[:] = []
                    continue
                if (status.st_dev, status.st_ino) in visited_directories:
                    subdirectories[:] = []
                    continue
                visited_directories.add((status.st_dev, status.st_ino))
            prefix = "" if relative_dir == "." else relative_dir + "/"
            subdirectories[:] = sorted(
                name
                for name in subdirectories
                if name not in SKIPPED_DIRECTORY_NAMES
                and (follow_symlinks or not (current / name).is_symlink())
                and not _is_excluded_directory(prefix + name, exclude)
            )
            for name in sorted(filenames):
                path = current / name
                if not _matches_any(name, include) or _matches_any(prefix + name, exclude):
                    continue
                if path.is_symlink() and not follow_symlinks:
                    continue
                if first_time(path):
                    yield path


class NotARegularFileError(OSError):
    """A named pipe, socket or device where a source file was expected: reading it could block forever."""


_FILE_TYPE_NAMES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _read_capped(path: Path, max_file_bytes: int) -> bytes | None:
    """The file's bytes, or None when it is larger than ``max_file_bytes`` (without reading it all).

    Opened non-blocking and checked with fstat before reading, so a FIFO named ``*.c`` in the tree
    (or swapped in after the walk) is reported instead of hanging the scan waiting for a writer.
    """
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            what = next((name for check, name in _FILE_TYPE_NAMES if check(mode)), "not a regular file")
            raise NotARegularFileError(f"{what}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)
        handle = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    with handle:
        data = handle.read(max_file_bytes + 1)
    return None if len(data) > max_file_bytes else data


def _broken_link_target(path: Path) -> str | None:
    """The missing target of a dangling symlink, so it is not reported as a file that vanished."""
    try:
        return os.readlink(path) if os.path.islink(path) else None
    except OSError:
        return None


def _decode(data: bytes, display: str) -> tuple[str, list[FileProblem]]:
    """Text for parsing; invalid UTF-8 is replaced (U+FFFD) so the rest of the file is still scanned."""
    try:
        text = data.decode("utf-8")
        problems = []
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        text = data.decode("utf-8", errors="replace")
        problems = [
            FileProblem(
                display,
                "not_utf8",
                f"invalid UTF-8 at line {line} (byte offset {error.start}); undecodable bytes replaced with U+FFFD",
            )
        ]
    return text.removeprefix("\ufeff"), problems


def _syntax_error_summary(root: tree_sitter.Node) -> tuple[int, int, int | None]:
    """(ERROR nodes, MISSING nodes, first line with either), walking only subtrees that contain errors."""
    errors = missing = 0
    first_line: int | None = None
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            errors += node.is_error
            missing += node.is_missing
            line = _error_line(node)
            first_line = line if first_line is None else min(first_line, line)
        stack.extend(child for child in node.children if child.has_error)
    return errors, missing, first_line


def _error_line(node: tree_sitter.Node) -> int:
    """Where the trouble starts: an ERROR node often wraps whole valid functions before the bad tokens."""
    if node.is_error:
        for child in node.children:
            if child.type not in _COMPLETE_ITEM_TYPES:
                return child.start_point.row + 1
    return node.start_point.row + 1


def _function_name(definition: tree_sitter.Node) -> str:
    """The declared identifier: follows ``declarator`` fields through pointers, parentheses, attributes."""
    declarator = definition.child_by_field_name("declarator")
    node = declarator
    while node is not None and node.type not in _IDENTIFIER_TYPES:
        next_node = node.child_by_field_name("declarator")
        if next_node is None:  # parenthesized_declarator and friends wrap their declarator unnamed
            next_node = next(
                (child for child in node.named_children if child.type.endswith("declarator") or child.type in _IDENTIFIER_TYPES),
                None,
            )
        node = next_node
    if not _is_real_identifier(node) and declarator is not None:
        node = _first_identifier(declarator)
    if not _is_real_identifier(node):
        return ANONYMOUS
    return node.text.decode("utf-8", errors="replace")


def _is_real_identifier(node: tree_sitter.Node | None) -> bool:
    # Error recovery inserts zero-width MISSING identifiers, which name nothing.
    return node is not None and node.type in _IDENTIFIER_TYPES and not node.is_missing and bool(node.text)


def _first_identifier(root: tree_sitter.Node) -> tree_sitter.Node | None:
    """Best effort for declarators the grammar shapes oddly (macros): the first identifier outside the parameters."""
    stack = [root]
    while stack:
        node = stack.pop()
        if _is_real_identifier(node):
            return node
        stack.extend(reversed([child for child in node.named_children if child.type not in _NOT_THE_NAME_TYPES]))
    return None


def extract_functions(
    path: Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, display_path: str | None = None
) -> tuple[list[FunctionRecord], list[FileProblem]]:
    """Every function definition in ``path`` (source order) and whatever went wrong reading it.

    ``display_path`` is the name used in records and problems (default: ``path`` as given). Never
    raises for I/O or encoding trouble; those become problems. Files with NUL bytes are binary (or
    UTF-16) and are skipped rather than parsed into noise.
    """
    display = display_path if display_path is not None else str(path)
    try:
        data = _read_capped(path, max_file_bytes)
    except FileNotFoundError:
        broken_link = _broken_link_target(path)
        if broken_link is not None:
            return [], [FileProblem(display, "unreadable", f"broken symbolic link (target {broken_link!r} does not exist)")]
        return [], [FileProblem(display, "vanished", "file disappeared before it could be read")]
    except NotARegularFileError as error:
        return [], [FileProblem(display, "unreadable", f"is {error}; skipped")]
    except IsADirectoryError:
        return [], [FileProblem(display, "unreadable", "is a directory")]
    except PermissionError as error:
        return [], [FileProblem(display, "unreadable", f"permission denied: {error.strerror or error}")]
    except OSError as error:
        return [], [FileProblem(display, "unreadable", error.strerror or str(error))]
    if data is None:
        return [], [FileProblem(display, "too_large", f"larger than {max_file_bytes:,} bytes; skipped")]
    if b"\x00" in data:
        return [], [FileProblem(display, "not_utf8", "binary content (NUL bytes, or UTF-16 text); skipped")]

    text, problems = _decode(data, display)
    source = text.encode("utf-8")  # what tree-sitter's byte offsets refer to
    tree = _parser().parse(source)
    if tree.root_node.has_error:
        errors, missing, first_line = _syntax_error_summary(tree.root_node)
        count = errors + missing
        problems.append(
            FileProblem(
                display,
                "parse_errors",
                f"{count} syntax error(s) ({errors} unparsable region(s), {missing} missing token(s)), first at line "
                f"{first_line}; functions that parsed were still scanned",
            )
        )

    definitions = _function_query_matches(tree.root_node)
    records = []
    for definition in definitions:
        code = source[definition.start_byte : definition.end_byte].decode("utf-8", errors="replace")
        line_start = definition.start_byte - definition.start_point.column
        column = len(source[line_start : definition.start_byte].decode("utf-8", errors="replace")) + 1
        records.append(
            FunctionRecord(
                file=display,
                name=_function_name(definition),
                start_line=definition.start_point.row + 1,
                end_line=definition.end_point.row + 1,
                start_column=column,
                code=code,
                sha1=hashlib.sha1(code.encode("utf-8"), usedforsecurity=False).hexdigest(),
            )
        )
    return records, problems


def _function_query_matches(root: tree_sitter.Node) -> list[tree_sitter.Node]:
    captures = tree_sitter.QueryCursor(_function_query()).captures(root)
    return sorted(captures.get("function", []), key=lambda node: (node.start_byte, -node.end_byte))
