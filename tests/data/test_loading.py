"""Every line of a jsonl split is either accepted or rejected with a named reason."""

import gzip
import json

import numpy as np
import pytest

from streamguard.data.loading import (
    ACCEPTED_COLUMNS,
    REJECT_COLUMNS,
    EmptyDatasetError,
    load_splits,
    read_jsonl,
    validate_records,
)

GOOD = {"idx": 7, "func": "int f(void) { return 0; }", "target": 1, "project": "FFmpeg", "commit_id": "abc"}


def write_lines(path, lines: list[bytes | str | dict], trailing_newline: bool = True):
    encoded = [
        line if isinstance(line, bytes) else (json.dumps(line) if isinstance(line, dict) else line).encode()
        for line in lines
    ]
    path.write_bytes(b"\n".join(encoded) + (b"\n" if trailing_newline else b""))
    return path


def reasons_for(tmp_path, lines, **kwargs) -> list[str]:
    accepted, rejects = read_jsonl(write_lines(tmp_path / "split.jsonl", lines), "train", **kwargs)
    assert len(accepted) + len(rejects) == len(lines)
    return list(rejects["reason"])


def test_good_row_keeps_all_fields(tmp_path):
    accepted, rejects = read_jsonl(write_lines(tmp_path / "a.jsonl", [GOOD]), "valid")
    assert rejects.empty and list(rejects.columns) == list(REJECT_COLUMNS)
    assert list(accepted.columns) == list(ACCEPTED_COLUMNS)
    row = accepted.iloc[0]
    assert (row["idx"], row["target"], row["project"], row["commit_id"], row["split"], row["line"]) == (
        7, 1, "FFmpeg", "abc", "valid", 1,
    )
    assert str(accepted["idx"].dtype) == "int64" and str(accepted["target"].dtype) == "int64"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"func": "int f(void) { return 0; }", "target": 1, "note": "\xff\xfe"}', "undecodable_bytes"),
        ('{"func": "x", "target": ', "malformed_json"),
        ("[1, 2]", "not_an_object"),
        ('"just a string"', "not_an_object"),
        ({"target": 1}, "missing_field:func"),
        ({"func": "int f;"}, "missing_field:target"),
        ({"func": ["int f;"], "target": 1}, "wrong_type:func"),
        ({"func": None, "target": 1}, "wrong_type:func"),
        ({"idx": "seven", "func": "int f;", "target": 1}, "wrong_type:idx"),
        ({"idx": True, "func": "int f;", "target": 1}, "wrong_type:idx"),
        ({"idx": 1.5, "func": "int f;", "target": 1}, "wrong_type:idx"),
        ({"func": "int f;", "target": 2}, "invalid_label"),
        ({"func": "int f;", "target": "yes"}, "invalid_label"),
        ({"func": "int f;", "target": None}, "invalid_label"),
        ({"func": "int f;", "target": 0.5}, "invalid_label"),
        ({"func": "", "target": 0}, "empty_function"),
        ({"func": " \n\t ", "target": 0}, "empty_function"),
    ],
)
def test_each_bad_line_gets_its_reason(tmp_path, line, reason):
    assert reasons_for(tmp_path, [GOOD | {"idx": 0}, line]) == [reason]


def test_oversized_function(tmp_path):
    long_row = {"func": "x" * 101, "target": 0}
    assert reasons_for(tmp_path, [GOOD, long_row], max_chars=100) == ["oversized_function"]


def test_duplicate_idx_keeps_first(tmp_path):
    accepted, rejects = read_jsonl(
        write_lines(tmp_path / "d.jsonl", [GOOD, GOOD | {"target": 0}, GOOD | {"idx": 8}]), "train"
    )
    assert list(accepted["line"]) == [1, 3]
    assert list(rejects["reason"]) == ["duplicate_idx"] and rejects["line"].iloc[0] == 2
    assert "first seen on line 1" in rejects["detail"].iloc[0]


def test_blank_line_inside_file_but_not_trailing_newline(tmp_path):
    assert reasons_for(tmp_path, [GOOD, "", GOOD | {"idx": 9}]) == ["blank_line"]
    accepted, rejects = read_jsonl(write_lines(tmp_path / "t.jsonl", [GOOD]), "train")
    assert (len(accepted), len(rejects)) == (1, 0)


def test_truncated_last_line_is_malformed_json(tmp_path):
    path = write_lines(tmp_path / "cut.jsonl", [GOOD, '{"idx": 9, "func": "int'], trailing_newline=False)
    accepted, rejects = read_jsonl(path, "train")
    assert len(accepted) == 1
    assert list(rejects["reason"]) == ["malformed_json"] and rejects["line"].iloc[0] == 2
    assert rejects["raw"].iloc[0].startswith('{"idx": 9')


def test_bool_and_text_labels_map_to_ints(tmp_path):
    lines = [{"func": "int a;", "target": True}, {"func": "int b;", "target": False}, {"func": "int c;", "target": "1"}]
    accepted, _ = read_jsonl(write_lines(tmp_path / "b.jsonl", lines), "train")
    assert list(accepted["target"]) == [1, 0, 1]


def test_missing_idx_falls_back_to_zero_based_line_number(tmp_path):
    lines = [
        {"func": "int a;", "target": 0},
        {"idx": "42", "func": "int b;", "target": 1},
        {"func": "int c;", "target": 0},
    ]
    accepted, _ = read_jsonl(write_lines(tmp_path / "i.jsonl", lines), "train")
    assert list(accepted["idx"]) == [0, 42, 2]
    assert accepted["project"].isna().all() and accepted["project"].iloc[0] is None


def test_gzip_by_suffix_and_by_magic_bytes(tmp_path):
    payload = (json.dumps(GOOD) + "\n" + json.dumps(GOOD | {"idx": 8}) + "\n").encode()
    (tmp_path / "s.jsonl.gz").write_bytes(gzip.compress(payload))
    (tmp_path / "no_suffix.jsonl").write_bytes(gzip.compress(payload))
    for name in ("s.jsonl.gz", "no_suffix.jsonl"):
        accepted, rejects = read_jsonl(tmp_path / name, "test")
        assert (len(accepted), len(rejects)) == (2, 0)


def test_count_invariant_on_a_mixed_file(tmp_path):
    lines = [GOOD, "", "{bad", {"func": "int f;", "target": 3}, GOOD, b"\xc3\x28", GOOD | {"idx": 1}, "[]"]
    paths = {"train": write_lines(tmp_path / "m.jsonl", lines)}
    splits, rejects, counts = load_splits(paths)
    train = counts["train"]
    assert train["lines"] == len(lines) == train["accepted"] + train["rejected"]
    assert train["accepted"] == len(splits["train"]) == 2
    assert train["rejects_by_reason"] == {
        "blank_line": 1, "duplicate_idx": 1, "invalid_label": 1, "malformed_json": 1,
        "not_an_object": 1, "undecodable_bytes": 1,
    }
    assert list(rejects["line"]) == sorted(rejects["line"])


def test_all_bad_split_raises_empty_dataset_error(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", ["{oops"] * 3)
    with pytest.raises(EmptyDatasetError, match=r"split 'train' has 0 usable rows out of 3 lines.*'malformed_json': 3"):
        load_splits({"train": path})
    assert issubclass(EmptyDatasetError, ValueError)


def test_missing_file_names_split_and_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"split 'valid'.*nope\.jsonl"):
        load_splits({"valid": tmp_path / "nope.jsonl"})


def test_validate_records_shares_checks_with_generated_rows():
    rows = [
        (1, {"idx": np.int64(0), "func": "int f;", "target": np.int64(1), "project": "p"}),
        (2, {"idx": 0, "func": "int g;", "target": 0}),
        (3, 5),
        (4, {"idx": 3, "func": "int h;", "target": np.bool_(False)}),
    ]
    accepted, rejects = validate_records(rows, "train")
    assert list(accepted["idx"]) == [0, 3] and list(accepted["target"]) == [1, 0]
    assert list(accepted["project"]) == ["p", None]
    assert list(rejects["reason"]) == ["duplicate_idx", "not_an_object"]
    empty_accepted, empty_rejects = validate_records([], "train")
    assert list(empty_accepted.columns) == list(ACCEPTED_COLUMNS)
    assert list(empty_rejects.columns) == list(REJECT_COLUMNS)


def test_flaw_lines_are_kept_checked_and_survive_parquet(tmp_path):
    """Rows may name their flawed lines (the transformer's line supervision learns from them)."""
    import pandas as pd

    from streamguard.tracks.transformer import _flaw_lines

    func = "int f(int *p) {\n  p[9] = 1;\n  return 0;\n}"
    lines = [
        {**GOOD, "idx": 1, "func": func, "flaw_lines": [2]},
        {**GOOD, "idx": 2, "func": func, "target": 0},  # none named: no known line
        {**GOOD, "idx": 3, "func": func, "flaw_lines": [2, 2, 3]},  # duplicates collapse
        {**GOOD, "idx": 4, "func": func, "flaw_lines": [9]},  # past the function's 4 lines
        {**GOOD, "idx": 5, "func": func, "flaw_lines": "2"},  # not a list
    ]
    accepted, rejects = read_jsonl(write_lines(tmp_path / "t.jsonl", lines), "train")
    assert list(rejects["reason"]) == ["invalid_field:flaw_lines"] * 2
    assert "4 lines" in rejects["detail"].iloc[0]
    assert accepted["flaw_lines"].tolist() == [[2], None, [2, 3]]
    accepted.to_parquet(tmp_path / "t.parquet")
    assert _flaw_lines(pd.read_parquet(tmp_path / "t.parquet")) == [[2], [], [2, 3]]
    plain, _ = read_jsonl(write_lines(tmp_path / "plain.jsonl", [GOOD]), "train")
    assert list(plain.columns) == list(ACCEPTED_COLUMNS)  # data without flaw lines keeps its columns (and fingerprints)
