"""Real data replaces the default data only knowingly: quality limits, the headline, the replaced-data note."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_project_copy, run_kedro

from streamguard.data.quality import DataQualityError, check_quality, headline

LIMITS = {"warn_reject_rate": 0.05, "max_reject_rate": 0.5, "warn_cross_split_duplicate_rate": 0.1, "max_cross_split_duplicate_rate": 0.9}


def report(rejected: int = 0, duplicated: int = 0) -> dict:
    """A data report as the deduplicate node writes it: 100 lines per split, ``duplicated`` valid rows copy train."""
    load = {
        split: {"lines": 100, "accepted": 100 - (rejected if split == "train" else 0),
                "rejected": rejected if split == "train" else 0,
                "rejects_by_reason": {"malformed_json": rejected} if rejected and split == "train" else {}}
        for split in ("train", "valid", "test")
    }
    return {
        "rows": {split: counts["accepted"] for split, counts in load.items()},
        "load": load,
        "duplicates": {
            "within": {split: {"rows": counts["accepted"]} for split, counts in load.items()},
            "cross": {"train__valid": {"exact": duplicated, "normalized": duplicated, "conflicting_labels": 0},
                      "train__test": {"exact": 0, "normalized": 0, "conflicting_labels": 0},
                      "valid__test": {"exact": 0, "normalized": 0, "conflicting_labels": 0}},
        },
        "cross_split_duplicates_dropped": 0,
        "source": "jsonl: train=t.jsonl, valid=v.jsonl, test=s.jsonl",
    }


@pytest.mark.parametrize(
    ("rejected", "duplicated", "warned", "failed"),
    [
        (0, 0, [], []),
        (4, 0, [], []),
        (10, 0, ["train: 10 of 100 lines rejected (10.0%)"], []),
        (69, 0, [], ["train: 69 of 100 lines rejected (69.0%)"]),
        (0, 20, ["valid: 20 of 100 rows (20.0%) duplicate a train function"], []),
        (0, 100, [], ["valid: 100 of 100 rows (100.0%) duplicate a train function"]),
    ],
)
def test_limits_warn_then_fail(rejected: int, duplicated: int, warned: list[str], failed: list[str]) -> None:
    warnings, failures = check_quality(report(rejected, duplicated), LIMITS)
    assert len(warnings) == len(warned) and all(w.startswith(e) for w, e in zip(warnings, warned)), warnings
    assert len(failures) == len(failed) and all(f.startswith(e) for f, e in zip(failures, failed)), failures
    for message in warnings + failures:
        assert "data_processing.quality." in message  # names the parameter to change


def test_headline_counts_rows_rejects_and_duplicates() -> None:
    text = headline(report(rejected=10, duplicated=20))
    assert text.splitlines()[0] == "Data: jsonl: train=t.jsonl, valid=v.jsonl, test=s.jsonl"
    train = next(line.split() for line in text.splitlines() if line.strip().startswith("train"))
    valid = next(line.split() for line in text.splitlines() if line.strip().startswith("valid"))
    assert train == ["train", "100", "90", "10", "90", "-"]
    assert valid == ["valid", "100", "100", "0", "100", "20", "(20.0%)"]
    assert "rejected by reason: malformed_json 10" in text


def write_jsonl(path: Path, rows: list[dict], garbage: int = 0) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + "{broken\n" * garbage)
    return str(path)


@pytest.mark.slow
def test_jsonl_run_says_what_it_replaced_and_fails_past_the_reject_limit(tmp_path: Path, capsys) -> None:
    project = make_project_copy(tmp_path / "project")
    run_kedro(project, "data_processing")  # the generated default data
    printed = capsys.readouterr().out
    assert "Data: generated (seed 3, 160/60/60 rows)" in printed and "data quality warning" not in printed

    rows = [{"idx": i, "func": f"int f{i}(int a) {{ return a + {i}; }}", "target": i % 2} for i in range(40)]
    paths = {split: write_jsonl(tmp_path / f"{split}.jsonl", rows[i::3]) for i, split in enumerate(("train", "valid", "test"))}
    params = {"data_processing": {"source": "jsonl", "paths": paths}}
    run_kedro(project, "data_processing", runtime_params=params)
    printed = capsys.readouterr().out
    assert "they replaced generated (seed 3, 160/60/60 rows)" in printed
    assert len(pd.read_parquet(project / "data/03_primary/train_functions.parquet")) == 14

    # 69 % of the train lines broken: the run stops before training, the previous splits stay.
    paths["train"] = write_jsonl(tmp_path / "train_broken.jsonl", rows[:9], garbage=20)
    with pytest.raises(DataQualityError, match=r"train: 20 of 29 lines rejected \(69.0%\).*max_reject_rate=0.5"):
        run_kedro(project, "data_processing", runtime_params=params)
    assert len(pd.read_parquet(project / "data/03_primary/train_functions.parquet")) == 14
    assert (pd.read_csv(project / "data/02_intermediate/rejects.csv")["reason"] == "malformed_json").sum() == 20
