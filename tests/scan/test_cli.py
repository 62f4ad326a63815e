"""``streamguard scan`` end to end with a fake scorer: outputs, exit codes, and bad inputs that must not crash it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import streamguard.console
from streamguard.serving.scan import cli as scan_cli
from streamguard.data.extract import FunctionRecord

PARSER_C = """\
#include <string.h>

int parse_header(char *dst, const char *src)
{
    strcpy(dst, src);
    strcpy(dst + 8, src);
    return 0;
}

size_t safe_len(const char *s) { return s ? strlen(s) : 0; }
"""
UTIL_H = "static inline void copy_name(char *d, const char *s) { strcpy(d, s); }\n"
BROKEN_C = "int fine(void) { return 1; }\nvoid broken( { \nint also_fine(int x) { return x; }\n"
VENDOR_C = "void vendored(char *d, char *s) { strcpy(d, s); strcpy(d, s); strcpy(d, s); }\n"


class FakeScorer:
    """P(vulnerable) = 0.45 per strcpy, capped at 1; remembers the batches it was given."""

    track = "fusion"
    threshold = 0.5
    description = "fake strcpy counter"

    def __init__(self) -> None:
        self.batches: list[int] = []

    def score(self, functions: Sequence[FunctionRecord]) -> np.ndarray:
        self.batches.append(len(functions))
        return np.array([min(1.0, 0.45 * function.code.count("strcpy(")) for function in functions])


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout with good, odd and bad files; the tests run from its root like CI would."""
    root = tmp_path / "repo"
    write(root / "src" / "parser.c", PARSER_C)
    write(root / "src" / "util.h", UTIL_H)
    write(root / "src" / "legacy.c", "/* d\xe9j\xe0 vu */\nint legacy(void) { return 0; }\n".encode("latin-1"))
    write(root / "src" / "blob.c", bytes(range(256)) * 8)
    write(root / "src" / "broken.c", BROKEN_C)
    write(root / "vendor" / "zlib" / "inflate.c", VENDOR_C)
    write(root / "README.md", "# not C\n")
    monkeypatch.chdir(root)
    return root


def run(argv: list[str], scorer: FakeScorer | None = None) -> int:
    scorer = scorer or FakeScorer()
    return scan_cli.main(argv, scorer_factory=lambda project_dir, track, model_uri: scorer)


def test_text_report_ranks_flags_and_lists_problems(tree: Path, capsys) -> None:
    code = run(["src"])
    out, err = capsys.readouterr()

    assert code == 1  # parse_header (0.9) is over the scorer's threshold 0.5
    rows = [line.split() for line in out.splitlines()[1:4]]
    assert rows[0] == ["1", "0.900", "VULN?", "src/parser.c:3", "parse_header"]
    assert rows[1] == ["2", "0.450", "src/util.h:1", "copy_name"]
    assert "legacy" in out and "fine" in out and "also_fine" in out  # non-UTF-8 and broken files still scanned
    assert "6 function(s) in 5 file(s); 1 over threshold 0.500" in out
    assert "fake strcpy counter" in out
    assert "src/legacy.c: not_utf8" in err
    assert "src/blob.c: not_utf8" in err
    assert "src/broken.c: parse_errors" in err
    assert "Traceback" not in err


def test_threshold_override_and_exit_code_zero(tree: Path, capsys) -> None:
    assert run(["src", "--threshold", "0.95"]) == 0
    assert "VULN?" not in capsys.readouterr().out
    assert run(["src", "--threshold", "0.4"]) == 1
    assert capsys.readouterr().out.count("VULN?") == 2


def test_json_top_and_summary(tree: Path, capsys) -> None:
    assert run(["src", "--format", "json", "--top", "2"]) == 1
    document = json.loads(capsys.readouterr().out)

    assert [f["name"] for f in document["functions"]] == ["parse_header", "copy_name"]
    assert [f["rank"] for f in document["functions"]] == [1, 2]
    assert document["functions"][0]["over_threshold"] is True
    assert document["summary"]["functions"] == 6 and document["summary"]["files_scanned"] == 5
    assert document["summary"]["over_threshold"] == 1
    assert {(p["file"], p["kind"]) for p in document["problems"]} == {
        ("src/legacy.c", "not_utf8"),
        ("src/blob.c", "not_utf8"),
        ("src/broken.c", "parse_errors"),
    }


def test_sarif_to_output_file(tree: Path, capsys) -> None:
    assert run([".", "--format", "sarif", "--output", "scan.sarif", "--threshold", "0.4"]) == 1
    out, err = capsys.readouterr()
    assert out == ""  # the report went to the file; stdout stays clean
    assert "over threshold" in err

    sarif = json.loads((tree / "scan.sarif").read_text())
    run_ = sarif["runs"][0]
    assert sarif["version"] == "2.1.0" and run_["tool"]["driver"]["name"] == "StreamGuard"
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run_["results"]]
    assert uris == ["vendor/zlib/inflate.c", "src/parser.c", "src/util.h"]
    assert all(r["ruleId"] == "SG0001" and r["message"]["text"] for r in run_["results"])
    kinds = {n["descriptor"]["id"] for n in run_["invocations"][0]["toolExecutionNotifications"]}
    assert kinds == {"not_utf8", "parse_errors"}


def test_exclude_skips_a_vendored_folder(tree: Path, capsys) -> None:
    run([".", "--format", "json"])
    assert "vendored" in [f["name"] for f in json.loads(capsys.readouterr().out)["functions"]]

    run([".", "--format", "json", "--exclude", "vendor/*"])
    files = {f["file"] for f in json.loads(capsys.readouterr().out)["functions"]}
    assert files == {"src/parser.c", "src/util.h", "src/legacy.c", "src/broken.c"}


def test_include_replaces_the_default_globs(tree: Path, capsys) -> None:
    run(["src", "--format", "json", "--include", "*.h"])
    assert [f["file"] for f in json.loads(capsys.readouterr().out)["functions"]] == ["src/util.h"]


def test_file_deleted_between_walk_and_read_is_vanished(tree: Path, capsys, monkeypatch) -> None:
    real_walk = scan_cli.iter_source_files

    def walk_then_delete(*args, **kwargs):
        files = list(real_walk(*args, **kwargs))
        (tree / "src" / "util.h").unlink()
        return iter(files)

    monkeypatch.setattr(scan_cli, "iter_source_files", walk_then_delete)
    assert run(["src", "--format", "json"]) == 1
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert {"file": "src/util.h", "kind": "vanished", "detail": "file disappeared before it could be read"} in problems


def test_batches_respect_batch_size(tree: Path, capsys) -> None:
    scorer = FakeScorer()
    run(["src", "--format", "json", "--batch-size", "2"], scorer)
    batched = json.loads(capsys.readouterr().out)
    assert max(scorer.batches) <= 2 and sum(scorer.batches) == 6

    run(["src", "--format", "json"])
    assert json.loads(capsys.readouterr().out)["functions"] == batched["functions"]


def test_unwritable_output_exits_2_naming_the_path(tree: Path, capsys) -> None:
    scorer = FakeScorer()
    assert run(["src", "--output", "no/such/dir/out.sarif"], scorer) == 2
    assert "no/such/dir/out.sarif" in capsys.readouterr().err
    assert scorer.batches == []  # failed before scanning

    (tree / "reports").mkdir()
    assert run(["src", "--output", "reports"]) == 2
    assert "reports" in capsys.readouterr().err

    assert run(["src", "--output", "README.md/out.json"]) == 2  # a file where a directory should be
    assert "README.md/out.json" in capsys.readouterr().err


def test_scorer_that_cannot_load_exits_4_without_traceback(tree: Path, capsys) -> None:
    def no_models(project_dir: Path, track: str, model_uri: str | None):
        raise RuntimeError(f"no trained {track} checkpoints in {project_dir}")

    assert scan_cli.main(["src", "--track", "gnn", "--project-dir", "proj"], scorer_factory=no_models) == scan_cli.EXIT_NO_MODEL == 4
    err = capsys.readouterr().err
    assert "no trained gnn checkpoints in proj" in err and "Traceback" not in err


def test_scorer_factory_receives_the_options(tree: Path, capsys) -> None:
    calls = []

    def factory(project_dir: Path, track: str, model_uri: str | None) -> FakeScorer:
        calls.append((project_dir, track, model_uri))
        return FakeScorer()

    scan_cli.main(["src", "--track", "transformer", "--project-dir", "proj", "--model-uri", "models:/sg/1"], factory)
    assert calls == [(Path("proj"), "transformer", "models:/sg/1")]


def test_bad_scores_exit_4(tree: Path, capsys) -> None:
    class ShortScorer(FakeScorer):
        def score(self, functions):
            return np.zeros(len(functions) - 1)

    assert run(["src"], ShortScorer()) == scan_cli.EXIT_NO_MODEL
    assert "scores for" in capsys.readouterr().err


def test_no_c_files_and_missing_paths_exit_2(tree: Path, capsys) -> None:
    (tree / "docs").mkdir()
    write(tree / "docs" / "guide.md", "# guide\n")
    assert run(["docs"]) == 2
    err = capsys.readouterr().err
    assert "no C files found in docs" in err and "*.c *.h" in err

    assert run(["src", "does-not-exist"]) == 2
    err = capsys.readouterr().err
    assert "does-not-exist" in err and "Traceback" not in err


def test_c_files_without_functions_exit_3(tree: Path, capsys) -> None:
    """A CI gate must not pass on a scan that scored nothing (it used to exit 0)."""
    write(tree / "decls" / "types.h", "typedef int handle_t;\nint declared_only(void);\n")
    assert run(["decls"]) == scan_cli.EXIT_NOTHING_SCANNED == 3
    out, err = capsys.readouterr()
    assert "(no functions found)" in out
    assert "nothing was scored in 1 file(s): no function definition found" in err


def test_every_file_unreadable_exits_3_with_the_report(tree: Path, capsys) -> None:
    write(tree / "bad" / "blob.c", bytes(range(256)) * 8)
    write(tree / "bad" / "latin.c", "/* d\xe9j\xe0 */\n".encode("latin-1"))
    assert run(["bad", "--format", "json", "--threshold", "0.0"]) == 3  # even a threshold of 0 cannot pass it
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["functions"] == [] and {p["kind"] for p in report["problems"]} == {"not_utf8"}
    assert "every file was unreadable" in err


def test_exit_codes_are_listed_in_help(capsys) -> None:
    assert streamguard.console.main(["scan", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for code, meaning in scan_cli.EXIT_CODES.items():
        assert f"{code} {' '.join(meaning.split())}" in help_text


@pytest.mark.parametrize(
    "argv",
    [["src", "--top", "0"], ["src", "--threshold", "1.5"], ["src", "--track", "svm"], ["src", "--batch-size", "x"], []],
)
def test_usage_errors_exit_2(tree: Path, capsys, argv: list[str]) -> None:
    assert run(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_many_files_keep_stdout_machine_readable(tree: Path, capsys) -> None:
    for index in range(30):
        write(tree / "many" / f"f{index:02}.c", f"int f{index}(void) {{ return {index}; }}\n")
    assert run(["many", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["files_scanned"] == 30


def test_top_level_command_dispatches_scan(tree: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(scan_cli, "default_scorer_factory", lambda project_dir, track, model_uri: FakeScorer())
    assert streamguard.console.main(["scan", "src", "--format", "json", "--no-progress"]) == 1
    assert json.loads(capsys.readouterr().out)["functions"][0]["name"] == "parse_header"
    assert streamguard.console.main([]) == 2
    assert streamguard.console.main(["--version"]) == 0


def test_help_does_not_import_the_model_stack() -> None:
    probe = (
        "import sys; from streamguard.console import main\n"
        "code = main(['scan', '--help'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'kedro', 'mlflow', 'pandas') if m in sys.modules]\n"
        "assert code == 0 and not heavy, heavy\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert "--threshold" in completed.stdout


def test_model_load_time_is_reported_apart_from_scoring(tree: Path, capsys, monkeypatch) -> None:
    """"2.1 functions/s, 3.2 s" used to hide the model loading; now both figures are shown."""
    clock = {"now": 100.0}
    monkeypatch.setattr(scan_cli.time, "perf_counter", lambda: clock["now"])

    def slow_loader(project_dir: Path, track: str, model_uri: str | None) -> FakeScorer:
        clock["now"] += 12.5  # loading the model
        return FakeScorer()

    class TimedScorer(FakeScorer):
        def score(self, functions):
            clock["now"] += 0.25  # scoring
            return super().score(functions)

    assert scan_cli.main(["src", "--format", "json", "--lines", "0"], scorer_factory=slow_loader) == 1
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["load_seconds"] == 12.5 and summary["seconds"] == 0.0
    assert scan_cli.main(["src", "--lines", "0"], scorer_factory=lambda *_: (clock.__setitem__("now", clock["now"] + 12.5), TimedScorer())[1]) == 1
    out = capsys.readouterr().out
    assert "model loaded in 12.5 s, scored in 0.25 s (24 functions/s)" in out
