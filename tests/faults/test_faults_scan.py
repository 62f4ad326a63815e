"""Fault injection for ``streamguard scan``: hostile source trees, files and directories that vanish or
change kind mid-scan, outputs that cannot be written, an unreachable MLflow server.

Each case ends in a report that accounts for every file (scored, or listed as a problem with a
reason) or in exit code 2 with a one-line message; never a hang, never a bare traceback. A fake
scorer stands in for the models, so the cases run in milliseconds.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from conftest import make_project_copy
from faults.fault_cases import DEEP, ONE_MB_FUNCTION
from streamguard.serving.scan import cli as scan_cli
from streamguard.data import extract
from streamguard.data.extract import FunctionRecord, extract_functions

NON_UTF8_NAME = os.fsdecode(b"caf\xe9.c")


class FakeScorer:
    track = "fusion"
    threshold = 0.5
    description = "fake"

    def __init__(self, on_batch=None) -> None:
        self.scored = 0
        self.on_batch = on_batch

    def score(self, functions: Sequence[FunctionRecord]) -> np.ndarray:
        self.scored += len(functions)
        if self.on_batch is not None:
            self.on_batch(functions)
        return np.array([0.9 if "strcpy" in f.code else 0.1 for f in functions])


def scan(argv: list[str], scorer: FakeScorer | None = None) -> int:
    scorer = scorer if scorer is not None else FakeScorer()
    return scan_cli.main(argv, scorer_factory=lambda project_dir, track, model_uri: scorer)


@contextmanager
def deadline(seconds: int):
    """Turn a hang (the bug a FIFO used to cause) into a failure instead of a stuck test run."""
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds}s: the scan hangs")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def build_tree(root: Path, heavy: bool) -> Path:
    """Good, odd and bad files; ``heavy`` adds the parser-stress ones (5,000-deep nests, a 1 MB function)."""
    write(root / "good.c", "int ok(void) { return 0; }\nvoid bad(char *d, char *s) { strcpy(d, s); }\n")
    write(root / "latin1.c", "/* d\xe9j\xe0 vu */\nint legacy(void) { return 0; }\n".encode("latin-1"))
    write(root / NON_UTF8_NAME, "void named(char *d, char *s) { strcpy(d, s); }\n")
    write(root / "empty.c", b"")
    if heavy:
        write(root / "deep.c", "int deep(int x) {" + "if (x > 0) {" * DEEP + "x--;" + "}" * DEEP + " return x; }\n")
        write(root / "braces.c", "void braces(void) " + "{" * DEEP + "}" * DEEP + "\n")
        write(root / "huge.c", ONE_MB_FUNCTION)
        write(root / "garbage.c", random.Random(0).randbytes(50_000))  # has NUL bytes: binary
        write(root / "garbage_text.c", bytes(b for b in random.Random(1).randbytes(20_000) if b not in (0, 10)))
        os.mkfifo(root / "pipe.c")
        (root / "dangling.c").symlink_to(root / "missing.c")
    return root


@pytest.fixture
def hostile_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(build_tree(tmp_path / "repo", heavy=True))
    return tmp_path / "repo"


@pytest.fixture
def small_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(build_tree(tmp_path / "repo", heavy=False))
    return tmp_path / "repo"


EXPECTED_FUNCTIONS = {"good.c": 2, "deep.c": 1, "braces.c": 1, "huge.c": 1, "latin1.c": 1, NON_UTF8_NAME: 1}
SMALL_TREE_FUNCTIONS = 4


def printable(name: str) -> str:
    return os.fsencode(name).decode("utf-8", "backslashreplace")


@pytest.mark.parametrize("follow_symlinks", [False, True])
def test_hostile_tree_every_file_is_scored_or_reported(hostile_tree: Path, capsys, follow_symlinks: bool) -> None:
    argv = [".", "--format", "json"] + (["--follow-symlinks"] if follow_symlinks else [])
    with deadline(60):
        code = scan(argv)
    captured = capsys.readouterr()
    assert code == 1, captured.err  # bad() is over the threshold
    report = json.loads(captured.out)
    assert "Traceback" not in captured.err
    per_file: dict[str, int] = {}
    for function in report["functions"]:
        per_file[function["file"]] = per_file.get(function["file"], 0) + 1
    assert per_file == {printable(name): n for name, n in EXPECTED_FUNCTIONS.items()}
    problems = {problem["file"]: (problem["kind"], problem["detail"]) for problem in report["problems"]}
    assert problems["garbage.c"][0] == "not_utf8"
    assert problems["latin1.c"][0] == "not_utf8" and "line 1" in problems["latin1.c"][1]
    assert problems["pipe.c"] == ("unreadable", "is a named pipe (FIFO), not a regular file; skipped")
    assert problems["garbage_text.c"][0] == "parse_errors"
    if follow_symlinks:
        assert problems["dangling.c"][0] == "unreadable" and "broken symbolic link" in problems["dangling.c"][1]
    # Every file is accounted for: with functions, with a problem, or parsed and empty.
    listed = set(per_file) | set(problems)
    walked = report["summary"]["files_scanned"]
    assert listed | {"empty.c"} == {printable(p.name) for p in hostile_tree.iterdir() if follow_symlinks or not p.is_symlink()}
    assert walked == len(listed | {"empty.c"})


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_reports_with_odd_file_names_are_valid_utf8(small_tree: Path, capsys, fmt: str) -> None:
    """A non-UTF-8 file name used to crash --output with UnicodeEncodeError (and SARIF's relative URIs)."""
    output = small_tree.parent / f"report.{fmt}"
    with deadline(60):
        code = scan([".", "--format", fmt, "--output", str(output)])
    err = capsys.readouterr().err
    assert code == 1, err
    text = output.read_bytes().decode("utf-8")  # strict: no surrogates, no raw non-UTF-8 bytes
    if fmt == "text":
        assert "caf\\xe9.c:1" in text
    if fmt == "sarif":
        uris = [
            location["physicalLocation"]["artifactLocation"]["uri"]
            for result in json.loads(text)["runs"][0]["results"]
            for location in result["locations"]
        ]
        assert uris == ["caf%E9.c", "good.c"]  # the name's raw bytes, percent-encoded
        notifications = json.loads(text)["runs"][0]["invocations"][0]["toolExecutionNotifications"]
        assert any(n["descriptor"]["id"] == "not_utf8" for n in notifications)
    if fmt == "json":
        assert any(f["file"] == "caf\\xe9.c" for f in json.loads(text)["functions"])


def test_fifo_named_directly_is_reported_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "stream.c")
    with deadline(20):
        functions, problems = extract_functions(tmp_path / "stream.c")
    assert functions == [] and [p.kind for p in problems] == ["unreadable"]
    assert "named pipe" in problems[0].detail


def test_file_deleted_mid_scan_is_vanished_and_the_rest_is_scored(small_tree: Path, capsys) -> None:
    """The scorer deletes a file that was listed but not read yet: it becomes a problem, nothing else changes."""
    victim = small_tree / "latin1.c"

    def delete_after_first_batch(functions):
        if victim.exists():
            victim.unlink()

    scorer = FakeScorer(on_batch=delete_after_first_batch)
    assert scan([".", "--format", "json", "--batch-size", "1"], scorer) == 1
    report = json.loads(capsys.readouterr().out)
    problems = {p["file"]: p["kind"] for p in report["problems"]}
    assert problems["latin1.c"] == "vanished"
    assert len(report["functions"]) == scorer.scored == SMALL_TREE_FUNCTIONS - 1


def test_file_swapped_for_a_fifo_mid_scan_does_not_hang(small_tree: Path, capsys) -> None:
    victim = small_tree / "latin1.c"

    def swap(functions):
        if victim.is_file():
            victim.unlink()
            os.mkfifo(victim)

    with deadline(30):
        assert scan([".", "--format", "json", "--batch-size", "1"], FakeScorer(on_batch=swap)) == 1
    problems = {p["file"]: p["detail"] for p in json.loads(capsys.readouterr().out)["problems"]}
    assert "named pipe" in problems["latin1.c"]


def test_file_swapped_for_a_directory_mid_scan(small_tree: Path, capsys) -> None:
    victim = small_tree / "latin1.c"

    def swap(functions):
        if victim.is_file():
            victim.unlink()
            victim.mkdir()

    assert scan([".", "--format", "json", "--batch-size", "1"], FakeScorer(on_batch=swap)) == 1
    problems = {p["file"]: (p["kind"], p["detail"]) for p in json.loads(capsys.readouterr().out)["problems"]}
    assert problems["latin1.c"][0] == "unreadable" and "directory" in problems["latin1.c"][1]


def _scandir_hook(monkeypatch: pytest.MonkeyPatch, name: str, action) -> None:
    real_scandir = os.scandir

    def scandir(path="."):
        if isinstance(path, (str, os.PathLike)) and os.fspath(path).endswith(os.sep + name):
            action(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_directory_deleted_during_the_walk_is_reported(tmp_path: Path, monkeypatch, capsys) -> None:
    write(tmp_path / "src" / "a.c", "int a(void) { return 0; }\n")
    write(tmp_path / "src" / "gone" / "b.c", "int b(void) { return 0; }\n")
    monkeypatch.chdir(tmp_path)
    _scandir_hook(monkeypatch, "gone", lambda path: shutil.rmtree(path))
    assert scan(["src", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["name"] for f in report["functions"]] == ["a"]
    assert report["problems"] == [
        {"file": os.path.join("src", "gone"), "kind": "vanished",
         "detail": "directory disappeared during the walk; files in it were not scanned"}
    ]


def test_unlistable_directory_is_reported_not_silently_skipped(tmp_path: Path, monkeypatch, capsys) -> None:
    """Before: os.walk dropped the directory without a word (chmod 000 as a normal user does this)."""
    write(tmp_path / "src" / "a.c", "int a(void) { return 0; }\n")
    write(tmp_path / "src" / "secret" / "b.c", "int b(void) { return 0; }\n")
    monkeypatch.chdir(tmp_path)

    def deny(path):
        raise PermissionError(13, "Permission denied", os.fspath(path))

    _scandir_hook(monkeypatch, "secret", deny)
    assert scan(["src", "--format", "json"]) == 0
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [(p["file"], p["kind"]) for p in problems] == [(os.path.join("src", "secret"), "unreadable")]
    assert "Permission denied" in problems[0]["detail"]

    # When nothing else is left, the error says why instead of a bare "no C files found".
    assert scan([os.path.join("src", "secret")]) == 2
    err = capsys.readouterr().err
    assert "no C files found" in err and "Permission denied" in err and "Traceback" not in err


# --- outputs that cannot be written ------------------------------------------------------------


def test_output_into_read_only_directory_exits_2(small_tree: Path, capsys) -> None:
    locked = small_tree.parent / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root (or with CAP_DAC_OVERRIDE): a read-only directory is still writable; "
                        "test_output_under_a_regular_file_exits_2 forces the error instead")
        scorer = FakeScorer()
        assert scan([".", "--output", str(locked / "out.json")], scorer) == 2
        err = capsys.readouterr().err
        assert f"cannot write --output {locked / 'out.json'}: permission denied" in err
        assert scorer.scored == 0  # failed before the slow part
    finally:
        locked.chmod(0o700)


def test_output_under_a_regular_file_exits_2(small_tree: Path, capsys) -> None:
    scorer = FakeScorer()
    assert scan([".", "--output", "good.c/report.json"], scorer) == 2
    err = capsys.readouterr().err
    assert err.startswith("streamguard scan: error: cannot write --output good.c/report.json: ")
    assert "is not a directory" in err and scorer.scored == 0


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to simulate a full disk")
def test_output_on_a_full_disk_exits_2_after_the_scan(small_tree: Path, capsys) -> None:
    """The pre-check passes, the write itself fails (ENOSPC): still exit 2 with the OS reason."""
    with deadline(60):
        assert scan([".", "--output", "/dev/full"]) == 2
    err = capsys.readouterr().err
    assert "cannot write --output /dev/full: No space left on device" in err and "Traceback" not in err


def test_real_cli_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    """The console script itself (a subprocess): unwritable output and a missing path, exit 2, one message line."""
    write(tmp_path / "a.c", "int a(void) { return 0; }\n")
    write(tmp_path / "plain.txt", "not a directory\n")
    for argv, expected in [
        ([str(tmp_path), "--output", str(tmp_path / "plain.txt" / "out.json")], "is not a directory"),
        ([str(tmp_path / "nowhere")], "no such file or directory"),
    ]:
        completed = subprocess.run(
            [sys.executable, "-m", "streamguard.console", "scan", *argv],
            capture_output=True, text=True, timeout=60,
        )
        assert completed.returncode == 2
        assert completed.stderr.startswith("streamguard scan: error: ") and expected in completed.stderr
        assert "Traceback" not in completed.stderr and completed.stdout == ""


# --- the real scorer loader against an unreachable MLflow server --------------------------------


def closed_port() -> int:
    """A local port nobody listens on (bound then released): connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_scan_does_not_depend_on_the_mlflow_server(tmp_path: Path, monkeypatch, capsys) -> None:
    """The scan used to open a Kedro session, whose kedro-mlflow hook retried a dead server for ~4 minutes
    (then, with the probe, failed on it). It now reads the catalog without a session: MLflow is never
    imported, and what it reports is about the project itself."""
    project = make_project_copy(tmp_path / "project")
    write(tmp_path / "a.c", "int a(void) { return 0; }\n")
    uri = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    with deadline(120):
        code = scan_cli.main([str(tmp_path / "a.c"), "--project-dir", str(project), "--track", "gnn"])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == scan_cli.EXIT_NO_MODEL
    assert "no trained gnn checkpoints" in err and uri not in err
    assert elapsed < 60, f"took {elapsed:.0f}s"


def test_extract_never_raises_on_unforeseen_errors(tmp_path: Path, monkeypatch, capsys) -> None:
    """A bug deep in extraction (here: the parser) is one file's problem, not the scan's end."""
    write(tmp_path / "a.c", "int a(void) { return 0; }\n")
    write(tmp_path / "b.c", "int b(void) { return 0; }\n")
    monkeypatch.chdir(tmp_path)
    real = extract._function_query_matches

    def flaky(root):
        if b"int a" in root.text:
            raise RecursionError("maximum recursion depth exceeded")
        return real(root)

    monkeypatch.setattr(extract, "_function_query_matches", flaky)
    assert scan([".", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [f["name"] for f in report["functions"]] == ["b"]
    assert report["problems"][0]["kind"] == "unreadable"
    assert "RecursionError: maximum recursion depth exceeded" in report["problems"][0]["detail"]
