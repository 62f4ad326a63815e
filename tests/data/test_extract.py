"""Function extraction: names, positions, exact text, and every way a file can be bad without crashing."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from streamguard.data import extract
from streamguard.data.extract import ANONYMOUS, extract_functions, iter_source_files

SAMPLE = """\
#include <string.h>

static int *lookup(int key) { return 0; }

#ifdef HAVE_SIGNAL
int (*install(int sig, void (*handler)(int)))(int)
{
    return 0;
}
#else
int fallback(void) { return 1; }
#endif

int PHP_FUNCTION(str_repeat) { return 2; }

int knr(a, b) int a; char *b; { return a; }

__attribute__((noinline)) void attributed(void) {}

struct point make_point(int x, int y)
{
    struct point p = {x, y};
    return p;
}
"""


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_names_positions_and_exact_text(tmp_path: Path) -> None:
    path = write(tmp_path / "sample.c", SAMPLE)
    functions, problems = extract_functions(path)

    assert problems == []
    assert [f.name for f in functions] == [
        "lookup",
        "install",
        "fallback",
        "PHP_FUNCTION",
        "knr",
        "attributed",
        "make_point",
    ]
    install = functions[1]
    assert (install.start_line, install.end_line, install.start_column) == (6, 9, 1)
    assert install.code == "int (*install(int sig, void (*handler)(int)))(int)\n{\n    return 0;\n}"
    assert install.sha1 == hashlib.sha1(install.code.encode()).hexdigest()
    assert all(f.file == str(path) for f in functions)
    for function in functions:  # the code is exactly the source lines it claims
        lines = SAMPLE.splitlines()[function.start_line - 1 : function.end_line]
        assert function.code.splitlines()[0] in lines[0] and function.code.endswith(lines[-1].strip()[-1])


def test_display_path_is_used_in_records(tmp_path: Path) -> None:
    path = write(tmp_path / "a.c", "int f(void) { return 0; }\n")
    functions, _ = extract_functions(path, display_path="src/a.c")
    assert functions[0].file == "src/a.c"


def test_non_ascii_text_keeps_byte_offsets_right(tmp_path: Path) -> None:
    source = '/* café — ünïcödé */ int first(void) { return "é"[0]; }\nint second(void) { return 1; }\n'
    path = write(tmp_path / "utf8.c", "\ufeff" + source)  # a BOM too
    functions, problems = extract_functions(path)

    assert problems == []
    assert [f.code for f in functions] == ['int first(void) { return "é"[0]; }', "int second(void) { return 1; }"]
    assert functions[0].start_column == len("/* café — ünïcödé */ ") + 1  # characters, not bytes


def test_non_utf8_bytes_are_reported_and_still_extracted(tmp_path: Path) -> None:
    path = write(tmp_path / "latin1.c", "/* caf\xe9 */\nint f(void) { return 0; }\n".encode("latin-1"))
    functions, problems = extract_functions(path)

    assert [f.name for f in functions] == ["f"]
    assert functions[0].start_line == 2
    assert [(p.kind, p.file) for p in problems] == [("not_utf8", str(path))]
    assert "line 1" in problems[0].detail


def test_binary_garbage_is_skipped_not_parsed(tmp_path: Path) -> None:
    path = write(tmp_path / "garbage.c", bytes(range(256)) * 40)
    functions, problems = extract_functions(path)
    assert functions == []
    assert [p.kind for p in problems] == ["not_utf8"]


def test_parse_errors_keep_the_functions_that_parsed(tmp_path: Path) -> None:
    source = "int good(void) { return 1; }\nvoid broken( { \nint also_good(int x) { return x; }\n"
    path = write(tmp_path / "broken.c", source)
    functions, problems = extract_functions(path)

    assert "good" in [f.name for f in functions]
    assert "also_good" in [f.name for f in functions]
    assert [p.kind for p in problems] == ["parse_errors"]
    assert "syntax error" in problems[0].detail and "line 2" in problems[0].detail


def test_functions_with_no_recognisable_name_are_anonymous(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.c", "int ()(x) { return 0; }\nint (*)(void) { return 1; }\n")
    functions, problems = extract_functions(path)
    assert [f.name for f in functions] == [ANONYMOUS, ANONYMOUS]
    assert [p.kind for p in problems] == ["parse_errors"]


def test_vanished_unreadable_and_too_large_files_are_problems(tmp_path: Path, monkeypatch) -> None:
    missing = extract_functions(tmp_path / "gone.c")
    assert missing[0] == [] and [p.kind for p in missing[1]] == ["vanished"]

    directory = tmp_path / "dir.c"
    directory.mkdir()
    assert [p.kind for p in extract_functions(directory)[1]] == ["unreadable"]

    big = write(tmp_path / "big.c", "int f(void) { return 0; }\n" * 100)
    assert [p.kind for p in extract_functions(big, max_file_bytes=100)[1]] == ["too_large"]

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(extract, "_read_capped", deny)
    problems = extract_functions(big)[1]
    assert [p.kind for p in problems] == ["unreadable"] and "permission" in problems[0].detail


def test_deep_nesting_does_not_crash(tmp_path: Path) -> None:
    depth = 20_000
    source = (
        f"void deep(void) {'{' * depth}{'}' * depth}\n"
        f"int expr(void) {{ return {'(' * depth}1{')' * depth}; }}\n"
    )
    functions, problems = extract_functions(write(tmp_path / "deep.c", source))
    assert [f.name for f in functions] == ["deep", "expr"]
    assert problems == []

    unbalanced = "void open(void) " + "{" * depth + "\n"
    functions, problems = extract_functions(write(tmp_path / "open.c", unbalanced))
    assert [p.kind for p in problems] == ["parse_errors"]


def test_extracting_2000_functions_is_fast(tmp_path: Path) -> None:
    body = "".join(
        f"static int copy_{i}(char *dst, const char *src, int n)\n{{\n    int k = 0;\n"
        f"    for (int j = 0; j < n; j++) {{ if (src[j] == 'x') k++; dst[j] = src[j]; }}\n"
        f"    strcpy(dst, src);\n    return k + {i};\n}}\n\n"
        for i in range(2000)
    )
    path = write(tmp_path / "many.c", body)
    started = time.perf_counter()
    functions, problems = extract_functions(path)
    elapsed = time.perf_counter() - started
    assert len(functions) == 2000 and problems == []
    assert elapsed < 2.0, f"{elapsed:.2f}s for 2000 functions"


def make_tree(root: Path) -> None:
    write(root / "main.c", "int main(void) { return 0; }\n")
    write(root / "include" / "api.h", "static inline int api(void) { return 0; }\n")
    write(root / "README.md", "not C\n")
    write(root / "vendor" / "lib" / "zlib.c", "int deflate(void) { return 0; }\n")
    write(root / "src" / "test" / "t.c", "int t(void) { return 0; }\n")
    write(root / "src" / "core.c", "int core(void) { return 0; }\n")
    write(root / ".git" / "hooks" / "x.c", "int hidden(void) { return 0; }\n")


def relative(paths, root: Path) -> list[str]:
    return [path.relative_to(root).as_posix() for path in paths]


def test_walk_is_sorted_filtered_and_deduplicated(tmp_path: Path) -> None:
    make_tree(tmp_path)
    assert relative(iter_source_files([str(tmp_path)]), tmp_path) == [
        "main.c",
        "include/api.h",
        "src/core.c",
        "src/test/t.c",
        "vendor/lib/zlib.c",
    ]
    walked = iter_source_files([str(tmp_path)], exclude=["vendor/*", "*/test/*"])
    assert relative(walked, tmp_path) == ["main.c", "include/api.h", "src/core.c"]
    only_headers = iter_source_files([str(tmp_path)], include=["*.h"])
    assert relative(only_headers, tmp_path) == ["include/api.h"]
    twice = iter_source_files([str(tmp_path / "main.c"), str(tmp_path), str(tmp_path / "main.c")], exclude=["*"])
    assert relative(twice, tmp_path) == ["main.c"]  # given directly: always scanned, once


def test_files_given_directly_ignore_filters(tmp_path: Path) -> None:
    readme = write(tmp_path / "notes.txt", "int f(void) { return 0; }\n")
    assert list(iter_source_files([str(readme)], exclude=["*"])) == [readme]


def test_missing_path_raises_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        list(iter_source_files([str(tmp_path / "nope")]))


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinks_are_skipped_unless_followed_and_loops_terminate(tmp_path: Path) -> None:
    write(tmp_path / "real" / "a.c", "int a(void) { return 0; }\n")
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "real" / "alias.c").symlink_to(tmp_path / "real" / "a.c")

    assert relative(iter_source_files([str(tmp_path / "real")]), tmp_path) == ["real/a.c"]
    followed = relative(iter_source_files([str(tmp_path / "real")], follow_symlinks=True), tmp_path)
    assert followed == ["real/a.c"]  # alias.c and loop/a.c are the same file: scanned once
