"""Fault injection through real Kedro runs of the data_processing pipeline (a tiny project copy):
bad jsonl rows end up in rejects.csv and data_report.json with counts that add up, an unreachable
MLflow server stops the run in seconds with the URI in the message, and an unwritable data
directory is named before any node runs.

Kedro runs cost seconds each, so there are three; the cases behind them are unit-tested in
test_faults_data.py. The tracking probe itself is unit-tested here against local sockets.
"""

from __future__ import annotations

import gzip
import http.server
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from conftest import TINY_LOCAL_PARAMETERS, make_project_copy, run_kedro
from faults.fault_cases import FAULT_LINES, encode, good, physical_lines, write_fault_file
from streamguard.tracking.runs import TrackingServerUnreachableError, probe_tracking_uri, redact_uri
from streamguard.hooks.tracking import OutputLocationError, tracking_uri_from_context, why_unwritable

SPLITS = ("train", "valid", "test")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory) -> Path:
    """An initialised MLflow sqlite store, copied into each project: creating one costs ~5-15 s of migrations."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def project_copy_with_db(destination: Path, mlflow_db: Path, local_parameters: str = TINY_LOCAL_PARAMETERS) -> Path:
    project = make_project_copy(destination, local_parameters)
    shutil.copy(mlflow_db, project / "mlflow.db")
    return project


# --- data_processing end to end ------------------------------------------------------------------

VALID_CASES = [("good", good(100 + i, i % 2), None) for i in range(6)] + [
    ("label_yes", {"idx": 200, "func": "int y(void);", "target": "yes"}, "invalid_label"),
    ("empty", {"idx": 201, "func": "", "target": 0}, "empty_function"),
    ("dup", good(100, 1), "duplicate_idx"),
]


def test_data_processing_run_quarantines_every_fault_and_loses_no_row(tmp_path: Path, mlflow_db: Path, capsys) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    # train: every fault, unterminated last line; valid: gzip; test: every fault plus a final newline.
    write_fault_file(raw / "train.jsonl")
    (raw / "valid.jsonl.gz").write_bytes(gzip.compress(b"\n".join(encode(line) for _, line, _ in VALID_CASES) + b"\n"))
    write_fault_file(raw / "test.jsonl", trailing_newline=True)
    cases = {"train": FAULT_LINES, "valid": VALID_CASES, "test": FAULT_LINES}
    files = {"train": raw / "train.jsonl", "valid": raw / "valid.jsonl.gz", "test": raw / "test.jsonl"}
    local = TINY_LOCAL_PARAMETERS.replace(
        "data_processing:\n",
        "data_processing:\n  source: jsonl\n  quality: {max_reject_rate: 1.0, max_cross_split_duplicate_rate: 1.0}\n  paths: {"
        + ", ".join(f"{split}: '{path}'" for split, path in files.items())
        + "}\n",
        1,
    )
    project = project_copy_with_db(tmp_path / "project", mlflow_db, local)

    run_kedro(project, "data_processing")
    # The limit is raised for this test, so the run goes through, saying so loudly at its end.
    printed = capsys.readouterr().out
    assert f"WARNING: train: 25 of {len(FAULT_LINES)} lines rejected (78.1%)" in printed

    rejects = pd.read_csv(project / "data/02_intermediate/rejects.csv")
    report = read_json(project / "data/08_reporting/data_processing/data_report.json")
    for split in SPLITS:
        expected_reasons = Counter(reason for _, _, reason in cases[split] if reason)
        expected_rows = sum(reason is None for _, _, reason in cases[split])
        frame = pd.read_parquet(project / f"data/03_primary/{split}_functions.parquet")
        split_rejects = rejects[rejects["split"] == split]
        load = report["load"][split]

        lines_in = physical_lines(gzip.decompress(files[split].read_bytes()) if split == "valid" else files[split].read_bytes())
        assert load["lines"] == lines_in == len(cases[split])
        assert lines_in == len(frame) + len(split_rejects)  # count in = count out + rejects
        assert len(frame) == load["accepted"] == report["rows"][split] == expected_rows
        assert load["rejected"] == len(split_rejects) == sum(expected_reasons.values())
        assert load["rejects_by_reason"] == dict(expected_reasons) == dict(Counter(split_rejects["reason"]))
        # Each accepted row is the line we expect (the line numbers of the valid rows).
        assert sorted(frame["line"]) == [n for n, (_, _, reason) in enumerate(cases[split], start=1) if reason is None]
        assert split_rejects["detail"].notna().all()


# --- MLflow server unreachable ---------------------------------------------------------------------


def test_kedro_run_with_unreachable_mlflow_fails_fast_naming_the_uri(tmp_path: Path) -> None:
    """Before the probe: ~4 min of silent mlflow retries, then an error deep in kedro-mlflow's setup."""
    project = make_project_copy(tmp_path / "project")
    uri = f"http://127.0.0.1:{closed_port()}"
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, OMP_NUM_THREADS="1", COLUMNS="200")
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "kedro", "run", "--pipeline", "data_processing"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )
    elapsed = time.monotonic() - started
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "TrackingServerUnreachableError" in output
    assert f"MLflow tracking server {uri} is unreachable" in " ".join(output.split())
    assert elapsed < 60, f"{elapsed:.0f}s"
    assert not (project / "data" / "03_primary").exists()  # failed before any node ran


def test_probe_refused_port_names_uri_and_remedy() -> None:
    uri = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(TrackingServerUnreachableError) as caught:
        probe_tracking_uri(uri, timeout=2)
    assert time.monotonic() - started < 2
    message = str(caught.value)
    assert uri in message and "Connection refused" in message and "unset MLFLOW_TRACKING_URI" in message


def test_probe_silent_server_times_out_quickly() -> None:
    """A port that accepts connections but never answers HTTP (a hung server) fails within the timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(TrackingServerUnreachableError, match="accepts connections but does not answer HTTP"):
            probe_tracking_uri(uri, timeout=0.5)
        assert time.monotonic() - started < 5


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("status", [200, 404])
def test_probe_passes_a_live_server(status: int, caplog) -> None:
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.WARNING, logger="streamguard.tracking.runs"):
            probe_tracking_uri(f"http://user:secret@127.0.0.1:{server.server_address[1]}/", timeout=2)
    finally:
        server.shutdown()
        server.server_close()
    if status == 404:  # answered, so not fatal, but said
        assert "answered 404 on /health" in caplog.text and "secret" not in caplog.text
    else:
        assert caplog.text == ""


@pytest.mark.parametrize("uri", [None, "", "sqlite:///mlflow.db", "file:///tmp/mlruns", "databricks", "mlruns"])
def test_probe_ignores_local_stores(uri) -> None:
    probe_tracking_uri(uri, timeout=0.1)


def test_probe_can_be_skipped_and_redacts_passwords(monkeypatch) -> None:
    uri = f"http://alice:hunter2@127.0.0.1:{closed_port()}"
    with pytest.raises(TrackingServerUnreachableError) as caught:
        probe_tracking_uri(uri, timeout=1)
    assert "hunter2" not in str(caught.value) and "alice:***@127.0.0.1" in str(caught.value)
    assert redact_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    monkeypatch.setenv("STREAMGUARD_SKIP_MLFLOW_PROBE", "1")
    probe_tracking_uri(uri, timeout=1)


def test_hook_reads_the_uri_kedro_mlflow_will_use(monkeypatch) -> None:
    class Loader(dict):
        config_patterns: dict = {}

    class Context:
        config_loader = Loader(mlflow={"server": {"mlflow_tracking_uri": "http://10.0.0.1:5000"}})

    assert tracking_uri_from_context(Context()) == "http://10.0.0.1:5000"
    assert "mlflow" in Context.config_loader.config_patterns

    class Broken:
        @property
        def config_loader(self):
            raise RuntimeError("no conf")

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:1")
    assert tracking_uri_from_context(Broken()) == "http://env:1"


# --- data directory unwritable ----------------------------------------------------------------------


def test_kedro_run_with_data_under_a_regular_file_fails_before_any_node(tmp_path: Path, mlflow_db: Path) -> None:
    """Kedro alone calls this 'Cannot save versioned dataset ... a file with the same name already exists'."""
    project = project_copy_with_db(tmp_path / "project", mlflow_db)
    (project / "data").write_text("a regular file where the data directory should be\n")
    with pytest.raises(OutputLocationError) as caught:
        run_kedro(project, "data_processing")
    message = str(caught.value)
    assert "nothing was run" in message
    assert f"{project / 'data'} is a regular file, not a directory" in message
    assert "rejects -> " in message and "rejects.csv" in message
    assert (project / "data").is_file()


def test_read_only_data_directory_is_named(tmp_path: Path) -> None:
    locked = tmp_path / "data"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root (or with CAP_DAC_OVERRIDE): chmod cannot make a directory unwritable; "
                        "the regular-file case above forces the error instead")
        assert why_unwritable(locked / "02_intermediate" / "rejects.csv") == f"{locked} is not writable (permission denied)"
    finally:
        locked.chmod(0o700)


def test_writable_locations_pass(tmp_path: Path) -> None:
    assert why_unwritable(tmp_path / "new" / "deeper" / "file.csv") is None
    (tmp_path / "existing.csv").write_text("x\n")
    assert why_unwritable(tmp_path / "existing.csv") is None
