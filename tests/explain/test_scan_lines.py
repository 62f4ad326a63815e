"""`streamguard scan --lines K`: flagged functions carry their top lines in text, JSON and SARIF."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from .planted import planted_function

from streamguard.serving.scan import cli as scan_cli


@pytest.fixture
def scanned_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, int]]:
    """One C file: a safe function, then two with the planted call; returns the planted calls' file lines."""
    rng = random.Random(7)
    parts, planted_lines, line = [], {}, 1
    for index, vulnerable in ((100, False), (101, True), (102, True)):
        code, planted = planted_function(index, vulnerable, rng)
        if vulnerable:
            planted_lines[f"f_{index}"] = line + planted - 1
        parts.append(code + "\n")
        line += code.count("\n") + 1
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "planted.c").write_text("".join(parts))
    monkeypatch.chdir(tmp_path)
    return tmp_path, planted_lines


@pytest.fixture(params=["transformer", "fusion"])
def scorer(request, planted_models):
    from streamguard.serving.scorer import EnsembleScorer

    return EnsembleScorer(request.param, [planted_models[request.param]], 0.5)


def run(argv: list[str], scorer, capsys) -> tuple[int, str]:
    code = scan_cli.main(argv, scorer_factory=lambda project_dir, track, model_uri: scorer)
    return code, capsys.readouterr().out


def test_sarif_points_at_the_planted_line(scanned_tree, scorer, capsys) -> None:
    _, planted = scanned_tree
    code, out = run(["src", "--format", "sarif", "--lines", "3"], scorer, capsys)
    assert code == scan_cli.EXIT_FLAGGED
    results = json.loads(out)["runs"][0]["results"]
    assert len(results) == 2
    for result in results:
        name = result["message"]["text"].split("'")[1]
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region == {"startLine": planted[name], "endLine": planted[name]}
        related = result["relatedLocations"]
        assert related[0]["message"]["text"] == f"function '{name}'"  # the whole function stays reachable
        assert len(related) == 3 and {r["id"] for r in related} == {0, 1, 2}
        assert result["properties"]["lines"][0]["text"] == "planted_sink(s);"


def test_json_and_text_carry_the_lines(scanned_tree, scorer, capsys) -> None:
    _, planted = scanned_tree
    _, out = run(["src", "--format", "json", "--lines", "2"], scorer, capsys)
    document = json.loads(out)
    flagged = [f for f in document["functions"] if f["over_threshold"]]
    assert all(f["lines"][0]["line"] == planted[f["name"]] and len(f["lines"]) == 2 for f in flagged)
    assert all("lines" not in f for f in document["functions"] if not f["over_threshold"])
    assert document["summary"]["line_scores"]["functions"] == 2
    _, text = run(["src", "--lines", "1"], scorer, capsys)
    for line in planted.values():
        assert any(row.strip().startswith(f"line {line:>5}") and "planted_sink(s);" in row for row in text.splitlines())


def test_lines_off_keeps_the_function_region(scanned_tree, scorer, capsys) -> None:
    _, out = run(["src", "--format", "sarif", "--lines", "0"], scorer, capsys)
    for result in json.loads(out)["runs"][0]["results"]:
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["endLine"] > region["startLine"] and "relatedLocations" not in result
    _, out = run(["src", "--format", "json", "--lines", "0"], scorer, capsys)
    assert "line_scores" not in json.loads(out)["summary"]
