"""Fault injection for data loading and graph building: every bad line is quarantined with a reason,
no good line is lost (lines in = rows out + rejects), and nothing crashes or recurses on hostile input.

The end-to-end version (a real ``kedro run`` writing rejects.csv and data_report.json) is in
test_faults_pipeline.py; these call the plain functions, so each case costs milliseconds.
"""

from __future__ import annotations

import gzip
import inspect
import json
import random
import sys
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from streamguard.data.loading import (
    DEFAULT_MAX_CHARS,
    EmptyDatasetError,
    load_splits,
    read_jsonl,
    validate_records,
)
from streamguard.graphs import GraphConfig, build_graph
from streamguard.pipelines.data_processing.nodes import load_and_validate

from faults.fault_cases import (
    DEEP,
    FAULT_LINES,
    ONE_MB_FUNCTION,
    good,
    nested_braces,
    nested_else_ifs,
    nested_ifs,
    nested_loops,
    nested_parens,
    physical_lines,
    write_fault_file,
)


@contextmanager
def low_recursion_limit(headroom: int = 60):
    """Only ``headroom`` Python frames above the caller: any recursion per nesting level would fail."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + headroom)
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


# --- jsonl loading ------------------------------------------------------------------------------


def test_every_fault_line_is_quarantined_with_its_reason_and_every_good_row_kept(tmp_path: Path) -> None:
    path = write_fault_file(tmp_path / "train.jsonl")
    accepted, rejects = read_jsonl(path, "train")

    assert len(accepted) + len(rejects) == physical_lines(path.read_bytes()) == len(FAULT_LINES)
    expected_rejects = {line: reason for line, (_, _, reason) in enumerate(FAULT_LINES, start=1) if reason}
    assert dict(zip(rejects["line"], rejects["reason"])) == expected_rejects
    expected_accepted = [line for line, (_, _, reason) in enumerate(FAULT_LINES, start=1) if reason is None]
    assert accepted["line"].tolist() == expected_accepted
    # Every reject says why (detail) and shows what it saw (raw, bounded).
    assert rejects["detail"].str.len().gt(0).all()
    assert rejects["raw"].str.len().le(200).all()
    # Labels that are accepted are normalised to 0/1 ints.
    labels = dict(zip(accepted["idx"], accepted["target"]))
    assert (labels[5], labels[9], labels[10]) == (1, 1, 0)
    assert set(accepted["target"]) <= {0, 1}


def test_accepted_rows_and_rejects_survive_parquet_and_csv(tmp_path: Path) -> None:
    """What the pipeline writes next must not fail on odd text (surrogates, NUL, CR in raw previews)."""
    accepted, rejects = read_jsonl(write_fault_file(tmp_path / "train.jsonl"), "train")
    accepted.to_parquet(tmp_path / "accepted.parquet")
    rejects.to_csv(tmp_path / "rejects.csv", index=False)
    assert len(pd.read_parquet(tmp_path / "accepted.parquet")) == len(accepted)
    back = pd.read_csv(tmp_path / "rejects.csv")
    assert len(back) == len(rejects) and back["reason"].tolist() == rejects["reason"].tolist()


def test_duplicate_idx_keeps_the_first_row_and_names_its_line(tmp_path: Path) -> None:
    accepted, rejects = read_jsonl(write_fault_file(tmp_path / "train.jsonl"), "train")
    assert accepted.loc[accepted["idx"] == 0, "func"].item() == good(0)["func"]
    assert rejects.loc[rejects["reason"] == "duplicate_idx", "detail"].item() == "idx=0 first seen on line 1"


def test_one_mb_function_is_accepted_when_max_chars_allows_it(tmp_path: Path) -> None:
    path = write_fault_file(tmp_path / "big.jsonl", [("big", {"idx": 1, "func": ONE_MB_FUNCTION, "target": 1}, None)])
    accepted, rejects = read_jsonl(path, "train", max_chars=2_000_000)
    assert rejects.empty and accepted["func"].item() == ONE_MB_FUNCTION
    _, rejects = read_jsonl(path, "train")
    assert rejects["detail"].item() == f"func has {len(ONE_MB_FUNCTION)} characters > max_chars={DEFAULT_MAX_CHARS}"


def test_binary_garbage_file_fails_by_name_with_reject_counts(tmp_path: Path) -> None:
    data = random.Random(1).randbytes(300_000)
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(data)
    accepted, rejects = read_jsonl(path, "train")
    assert accepted.empty and len(rejects) == physical_lines(data)
    with pytest.raises(EmptyDatasetError, match=r"split 'train' has 0 usable rows out of \d+ lines in .*garbage\.jsonl"):
        load_splits({"train": path})


def test_garbage_without_newlines_is_one_oversized_line_not_a_memory_blowup(tmp_path: Path) -> None:
    path = tmp_path / "blob.jsonl"
    blob = bytes(random.Random(2).randbytes(3_000_000)).replace(b"\n", b"\x01")
    path.write_bytes(json.dumps(good(1)).encode() + b"\n" + blob + b"\n" + json.dumps(good(2)).encode() + b"\n")
    accepted, rejects = read_jsonl(path, "train", max_chars=10_000)
    assert accepted["idx"].tolist() == [1, 2]
    assert rejects[["line", "reason"]].values.tolist() == [[2, "oversized_line"]]
    assert "3,000,001 bytes" in rejects["detail"].item()


def test_truncated_gzip_keeps_the_rows_before_the_cut_and_rejects_the_rest(tmp_path: Path) -> None:
    payload = b"".join(json.dumps(good(i, i % 2) | {"func": "int f(void) { return 0; }" + " " * 200}).encode() + b"\n" for i in range(3000))
    compressed = gzip.compress(payload)
    path = tmp_path / "train.jsonl.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    accepted, rejects = read_jsonl(path, "train")
    assert 0 < len(accepted) < 3000
    assert rejects["reason"].tolist() == ["truncated_file"]
    assert rejects["line"].item() == len(accepted) + 1  # the cut is where the reading stopped
    assert "Compressed file ended" in rejects["detail"].item()
    assert accepted["idx"].tolist() == list(range(len(accepted)))  # nothing before the cut lost


def test_corrupt_gzip_is_quarantined_not_a_crash(tmp_path: Path) -> None:
    payload = b"".join(json.dumps(good(i)).encode() + b"\n" for i in range(2000))
    compressed = bytearray(gzip.compress(payload))
    compressed[len(compressed) // 2 : len(compressed) // 2 + 40] = b"\x00" * 40
    path = tmp_path / "train.jsonl.gz"
    path.write_bytes(bytes(compressed))
    accepted, rejects = read_jsonl(path, "train")
    assert rejects["reason"].iloc[-1] in {"unreadable_data", "truncated_file"}
    assert len(accepted) + len(rejects) == rejects["line"].iloc[-1]  # every line up to the failure accounted for


def test_gz_suffix_on_a_plain_file_is_read_as_plain_text(tmp_path: Path) -> None:
    path = write_fault_file(tmp_path / "train.jsonl.gz", FAULT_LINES[:2], trailing_newline=True)
    accepted, rejects = read_jsonl(path, "train")
    assert len(accepted) == 2 and rejects.empty


@pytest.mark.parametrize(
    ("paths", "error", "message"),
    [
        ({"train": None}, ValueError, r"split 'train': no path given \(data_processing.paths.train is None\)"),
        ({"train": "  "}, ValueError, r"split 'train': no path given"),
        ({"train": 3}, TypeError, r"data_processing.paths.train must be a file path, got 3"),
        ({"train": "no/such/file.jsonl"}, FileNotFoundError, r"split 'train': file not found: no/such/file.jsonl"),
    ],
)
def test_bad_paths_fail_by_split_name(paths: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        load_splits(paths)


def test_a_directory_as_a_split_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"split 'valid': is a directory, not a file"):
        load_splits({"valid": tmp_path})


def test_empty_file_fails_with_counts(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(EmptyDatasetError, match=r"0 usable rows out of 0 lines"):
        load_splits({"test": tmp_path / "empty.jsonl"})


def test_generated_rows_with_odd_metadata_are_kept_and_writable(tmp_path: Path) -> None:
    """The generated source goes through validate_records too: odd text in optional fields never drops a row."""
    records = [
        (1, {"idx": 1, "func": "int a(void);", "target": 1, "project": "p\ud800", "commit_id": 123}),
        (2, {"idx": 2, "func": "int b(void) { return \"\ud83d\"; }", "target": 0}),
    ]
    accepted, rejects = validate_records(records, "train")
    assert accepted["idx"].tolist() == [1] and rejects["reason"].tolist() == ["invalid_unicode"]
    assert accepted["project"].item() == "p\\ud800" and accepted["commit_id"].item() == "123"
    accepted.to_parquet(tmp_path / "a.parquet")
    rejects.to_csv(tmp_path / "r.csv", index=False)


# --- the data_processing node, called directly ---------------------------------------------------

NODE_PARAMS = {
    "source": "jsonl",
    "max_chars": DEFAULT_MAX_CHARS,
    "sample_per_split": {"train": None, "valid": None, "test": None},
    "sample_seed": 0,
}


def test_node_counts_add_up_for_every_split(tmp_path: Path) -> None:
    paths = {split: str(write_fault_file(tmp_path / f"{split}.jsonl")) for split in ("train", "valid", "test")}
    train, valid, test, rejects, counts = load_and_validate(NODE_PARAMS | {"paths": paths})
    for split, frame in (("train", train), ("valid", valid), ("test", test)):
        split_counts = counts[split]
        assert split_counts["lines"] == len(FAULT_LINES) == split_counts["accepted"] + split_counts["rejected"]
        assert split_counts["accepted"] == split_counts["used"] == len(frame)
        assert sum(split_counts["rejects_by_reason"].values()) == split_counts["rejected"]
        assert (rejects["split"] == split).sum() == split_counts["rejected"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"paths": {"train": "a.jsonl", "valid": "b.jsonl"}}, r"data_processing.paths has no entry for \['test'\]"),
        ({"paths": None}, r"no entry for \['train', 'valid', 'test'\]"),
        ({"source": "csv"}, r"data_processing.source must be 'generated' or 'jsonl', got 'csv'"),
    ],
)
def test_node_rejects_bad_configuration_by_name(override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_and_validate(NODE_PARAMS | {"paths": {}} | override)


# --- graph building: deep nesting and huge functions -------------------------------------------


@pytest.mark.parametrize("shape", [nested_braces, nested_ifs, nested_else_ifs, nested_loops, nested_parens])
@pytest.mark.parametrize("config", [GraphConfig(), GraphConfig(max_nodes=1_000_000), GraphConfig(oversize_policy="skip")])
def test_deep_nesting_builds_without_recursion(shape, config: GraphConfig) -> None:
    code = shape(DEEP)
    with low_recursion_limit():
        graph = build_graph(code, config)
    assert graph.num_nodes >= 1 and graph.edge_index.shape[0] == 2
    if graph.num_edges:
        assert int(graph.edge_index.max()) < graph.num_nodes
    if config.max_nodes == 1_000_000:
        assert not graph.truncated and graph.num_nodes > DEEP  # the whole nest, one node per level at least


def test_one_mb_function_gives_a_truncated_graph() -> None:
    graph = build_graph(ONE_MB_FUNCTION)
    assert graph.truncated and graph.num_nodes == GraphConfig().max_nodes
    assert int(graph.edge_index.max()) < graph.num_nodes


def test_garbage_text_still_gives_a_graph() -> None:
    garbage = random.Random(3).randbytes(20_000).decode("latin-1")
    with low_recursion_limit():
        graph = build_graph(garbage)
    assert graph.num_nodes >= 1 and graph.num_error_nodes > 0
