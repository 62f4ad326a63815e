"""Copies that differ only in comments or layout are the same function."""

import json

import pandas as pd

from streamguard.data.dedup import code_hashes, drop_cross_split_duplicates, duplicate_report, normalize_code

BASE = "int f(int a)\n{\n    return a + 1;\n}\n"
COMMENTED = "/* header */ int f(int a) // entry\n{\n\treturn a +   1; /* done\n */\n}"
OTHER = 'int g(void) { puts("a // b /* c */"); return 0; }'


def frame(funcs: list[str], targets: list[int], start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"idx": range(start, start + len(funcs)), "func": funcs, "target": targets})


def test_normalize_removes_comments_and_layout_only():
    assert normalize_code(COMMENTED) == normalize_code(BASE) == "int f(int a) { return a + 1; }"
    assert normalize_code(OTHER) == OTHER
    assert normalize_code("char c = '/'; // x\nint d = '\"';") == "char c = '/'; int d = '\"';"
    assert normalize_code("a/**/b") == "a b"


def test_code_hashes_exact_and_normalized():
    exact, normalized = code_hashes([BASE, COMMENTED, BASE])
    assert exact[0] == exact[2] != exact[1]
    assert normalized[0] == normalized[1] == normalized[2]
    assert len(exact[0]) == 40


def test_duplicate_report_within_and_across():
    splits = {
        "train": frame([BASE, BASE, COMMENTED, OTHER], [1, 1, 0, 0]),
        "valid": frame([COMMENTED, "int h;"], [1, 0], start=10),
        "test": frame([BASE, "int h;", "int k;"], [0, 0, 1], start=20),
    }
    report = duplicate_report(splits)
    json.dumps(report)
    assert report["within"]["train"] == {
        "rows": 4, "exact_duplicates_within": 1, "normalized_duplicates_within": 2, "conflicting_labels_within": 1,
    }
    assert report["cross"]["train__valid"] == {"exact": 1, "normalized": 1, "conflicting_labels": 1}
    assert report["cross"]["train__test"] == {"exact": 1, "normalized": 1, "conflicting_labels": 1}
    assert report["cross"]["valid__test"] == {"exact": 1, "normalized": 2, "conflicting_labels": 1}


def test_drop_cross_split_duplicates_never_touches_train():
    splits = {
        "train": frame([BASE, OTHER], [1, 0]),
        "valid": frame([COMMENTED, "int h;"], [1, 0], start=10),
        "test": frame(["int  h;", BASE, "int k;"], [0, 0, 1], start=20),
    }
    cleaned, dropped = drop_cross_split_duplicates(splits)
    assert cleaned["train"] is splits["train"]
    assert list(cleaned["valid"]["idx"]) == [11]
    assert list(cleaned["test"]["idx"]) == [22]
    assert dropped.to_dict("records") == [
        {"split": "valid", "idx": 10, "reason": "cross_split_duplicate:train"},
        {"split": "test", "idx": 20, "reason": "cross_split_duplicate:valid"},
        {"split": "test", "idx": 21, "reason": "cross_split_duplicate:train"},
    ]


def test_drop_with_nothing_to_drop_returns_typed_empty_frame():
    cleaned, dropped = drop_cross_split_duplicates({"train": frame([BASE], [1]), "test": frame([OTHER], [0], 5)})
    assert dropped.empty and list(dropped.columns) == ["split", "idx", "reason"]
    assert len(cleaned["test"]) == 1
