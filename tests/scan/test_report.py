"""Report rendering: ranking, text table, JSON and the SARIF shape GitHub code scanning accepts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from streamguard import __version__
from streamguard.data.extract import FileProblem, FunctionRecord
from streamguard.serving.scan.report import ScanResult, artifact_location, ranked, to_json, to_sarif, to_text


def record(file: str, name: str, line: int) -> FunctionRecord:
    code = f"int {name}(void) {{ return {line}; }}"
    return FunctionRecord(file, name, line, line + 2, 1, code, hashlib.sha1(code.encode()).hexdigest())


def make_result(tmp_path: Path | None = None) -> ScanResult:
    functions = [
        record("src/a.c", "safe", 10),
        record("src/b.c", "copy_header", 3),
        record("src/a.c", "tie_later", 40),
        record("src/a.c", "tie_earlier", 20),
        record("lib/dir with space/c.c", "parse", 7),
    ]
    return ScanResult(
        functions=functions,
        scores=list(np.array([0.05, 0.97, 0.6, 0.6, 0.55])),  # numpy floats must not break JSON
        threshold=0.58,
        track="fusion",
        problems=[FileProblem("src/bad.c", "not_utf8", "invalid UTF-8 at line 3")],
        files_scanned=4,
        description="fusion ensemble of 3 seeds",
        seconds=0.5,
    )


def test_ranked_orders_by_score_then_file_and_line() -> None:
    names = [function.name for function, _ in ranked(make_result(), None)]
    assert names == ["copy_header", "tie_earlier", "tie_later", "parse", "safe"]
    assert [function.name for function, _ in ranked(make_result(), 2)] == ["copy_header", "tie_earlier"]


def test_mismatched_scores_are_rejected() -> None:
    with pytest.raises(ValueError):
        ScanResult([record("a.c", "f", 1)], [], 0.5, "fusion")


def test_text_has_table_summary_and_problems() -> None:
    text = to_text(make_result(), top=3)
    lines = text.splitlines()
    assert lines[0].split() == ["rank", "score", "flag", "location", "function"]
    assert lines[1].split() == ["1", "0.970", "VULN?", "src/b.c:3", "copy_header"]
    assert "tie_later" in lines[3] and "VULN?" in lines[3]
    assert "2 more function(s) not shown" in text
    assert "5 function(s) in 4 file(s); 3 over threshold 0.580" in text
    assert "fusion ensemble of 3 seeds" in text and "10 functions/s" in text
    assert "src/bad.c: not_utf8: invalid UTF-8 at line 3" in text
    assert "src/bad.c" not in to_text(make_result(), top=None, include_problems=False)


def test_json_document() -> None:
    document = json.loads(to_json(make_result(), top=None))
    assert document["tool"] == "streamguard" and document["version"] == __version__
    assert document["track"] == "fusion" and document["threshold"] == 0.58
    assert document["summary"]["functions"] == 5 and document["summary"]["over_threshold"] == 3
    first = document["functions"][0]
    assert first == {
        "file": "src/b.c",
        "name": "copy_header",
        "start_line": 3,
        "end_line": 5,
        "start_column": 1,
        "score": 0.97,
        "over_threshold": True,
        "rank": 1,
        "sha1": make_result().functions[1].sha1,
    }
    assert [f["over_threshold"] for f in document["functions"]] == [True, True, True, False, False]
    assert document["problems"] == [{"file": "src/bad.c", "kind": "not_utf8", "detail": "invalid UTF-8 at line 3"}]
    assert len(json.loads(to_json(make_result(), top=1))["functions"]) == 1


def test_sarif_has_what_github_code_scanning_requires(tmp_path: Path) -> None:
    sarif = json.loads(to_sarif(make_result(), top=None, source_root=tmp_path))

    assert sarif["version"] == "2.1.0"
    assert sarif["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert len(sarif["runs"]) == 1
    run = sarif["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "StreamGuard" and driver["version"] == __version__
    assert driver["informationUri"].startswith("https://")
    rule_ids = {rule["id"] for rule in driver["rules"]}
    assert rule_ids == {"SG0001"}
    rule = driver["rules"][0]
    assert rule["name"] == "potentially-vulnerable-function"
    assert rule["defaultConfiguration"]["level"] == "warning"
    assert all(rule[key]["text"] for key in ("shortDescription", "fullDescription", "help"))

    results = run["results"]
    assert len(results) == 3  # only functions over the threshold
    for result in results:
        assert result["ruleId"] in rule_ids
        assert result["message"]["text"]
        location = result["locations"][0]["physicalLocation"]
        uri = location["artifactLocation"]["uri"]
        assert not uri.startswith(("/", "./")) and "\\" not in uri
        assert location["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert location["region"]["startLine"] >= 1
        assert location["region"]["endLine"] >= location["region"]["startLine"]
        assert location["region"]["startColumn"] >= 1
        assert len(result["partialFingerprints"]["streamguardFunctionHash/v1"]) == 40
        assert set(result["properties"]) == {"score", "threshold", "track"}

    top = results[0]
    assert top["level"] == "error"  # 0.97 >= max(0.9, threshold)
    assert "copy_header" in top["message"]["text"] and "0.970" in top["message"]["text"]
    assert "0.580" in top["message"]["text"] and "fusion" in top["message"]["text"]
    assert [r["level"] for r in results[1:]] == ["warning", "warning"]
    assert top["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "src/b.c"

    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is True
    assert invocation["toolExecutionNotifications"][0]["message"]["text"].startswith("src/bad.c: not_utf8")


def test_sarif_uris_are_percent_encoded_and_relativised(tmp_path: Path) -> None:
    assert artifact_location("lib/dir with space/c.c", tmp_path) == {
        "uri": "lib/dir%20with%20space/c.c",
        "uriBaseId": "%SRCROOT%",
    }
    assert artifact_location("./src/a.c", tmp_path)["uri"] == "src/a.c"
    assert artifact_location(str(tmp_path / "src" / "a.c"), tmp_path)["uri"] == "src/a.c"
    outside = artifact_location("/elsewhere/x.c", tmp_path)
    assert outside == {"uri": "file:///elsewhere/x.c"}


def test_sarif_level_uses_threshold_when_it_is_above_point_nine(tmp_path: Path) -> None:
    result = make_result()
    result.threshold = 0.95
    results = json.loads(to_sarif(result, top=None, source_root=tmp_path))["runs"][0]["results"]
    assert [(r["properties"]["score"], r["level"]) for r in results] == [(0.97, "error")]


def test_empty_scan_renders() -> None:
    empty = ScanResult([], [], 0.5, "gnn", files_scanned=1)
    assert "(no functions found)" in to_text(empty, None)
    assert json.loads(to_json(empty, None))["functions"] == []
    assert json.loads(to_sarif(empty, None))["runs"][0]["results"] == []
