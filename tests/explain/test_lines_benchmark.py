"""benchmarks/lines.py: Juliet line labels carried exactly onto func_anon, and the --quick run end to end."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from .planted import juliet_style_rows

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))

from juliet_lines import anon_flaw_lines, flaw_lines, split_code_and_comments  # noqa: E402

FUNC = """void CWE121_bad()
{
    char * data;
    char buf[10] = "/* not a comment */";

    /* POTENTIAL FLAW: Read data from
     * the network */
    data = read_input();
    /* FIX: check the size */
    if (strlen(data) < 10) { /* FLAW: off by one */
        strcpy(buf, data);
    }
    memcpy(buf, data, 11); /* FLAW: too many bytes */
    // INCIDENTAL FLAW: not the target weakness
    free(data);
}
"""
FUNC_ANON = """void id_1()
{
    char * data;
    char buf[10] = "/* not a comment */";
    data = read_input();
    if (strlen(data) < 10) {
        strcpy(buf, data);
    }
    memcpy(buf, data, 11);
    free(data);
}
"""


def test_flaw_comments_mark_the_next_statement_or_their_own_line() -> None:
    assert flaw_lines(FUNC) == {8, 10, 13}  # after a 2-line comment; code before a comment on one line; trailing
    lines, comments = split_code_and_comments(FUNC)
    assert '"/* not a comment */"' in lines[3] and len(comments) == 5


def test_anon_lines_map_exactly_and_mismatches_are_refused() -> None:
    flawed, why = anon_flaw_lines(FUNC, FUNC_ANON)
    assert why == "" and flawed == {5, 6, 9}
    anon_lines = FUNC_ANON.split("\n")
    assert [anon_lines[line - 1].strip() for line in sorted(flawed)] == ["data = read_input();", "if (strlen(data) < 10) {", "memcpy(buf, data, 11);"]
    assert anon_flaw_lines(FUNC, FUNC_ANON.replace("free(data);\n", ""))[0] is None  # a line went missing
    assert anon_flaw_lines(FUNC, FUNC_ANON.replace("11", "1 + 10"))[0] is None  # a line changed shape
    assert anon_flaw_lines(FUNC_ANON, FUNC_ANON) == (None, "no FLAW comment")
    crlf, _ = anon_flaw_lines(FUNC.replace("\n", "\r\n"), FUNC_ANON.replace("\n", "\r\n"))
    assert crlf == flawed


@pytest.fixture(scope="module")
def juliet_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("juliet")
    for split, n, seed in (("train", 160, 11), ("valid", 40, 12), ("test", 40, 13)):
        with gzip.open(directory / f"{split}.jsonl.gz", "wt", encoding="utf-8") as handle:
            for row in juliet_style_rows(n, seed, split):
                handle.write(json.dumps(row) + "\n")
    return directory


def test_quick_benchmark_reports_every_method_beside_random_and_lexical(juliet_dir: Path, tmp_path: Path) -> None:
    import lines as benchmark

    out = tmp_path / "lines.md"
    assert benchmark.main(["--quick", "--data-dir", str(juliet_dir), "--out", str(out), "--workdir", str(tmp_path / "work")]) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    rows = {(row["track"], row["method"]): row for row in results["lines"]["rows"]}
    from streamguard.explain import METHODS

    expected = {("random", "expected"), ("lexical", "heuristic")} | {(t, m) for t in METHODS for m in METHODS[t]}
    assert set(rows) == expected
    test_rows = juliet_style_rows(40, 13, "test")
    vulnerable = [row for row in test_rows if row["target"] == 1][:12]
    assert results["lines"]["functions"] == len(vulnerable)
    # Random order over the body's statement lines, one flawed line per function: Top-1 = mean of 1/n exactly.
    from streamguard.explain.lines import statement_lines

    expected_random = np.mean([1 / statement_lines(row["func_anon"]).sum() for row in vulnerable])
    assert all(statement_lines(row["func_anon"]).sum() == 7 for row in vulnerable)  # 5 fillers, the call, return
    assert rows[("random", "expected")]["top1"]["mean"] == pytest.approx(expected_random, abs=1e-9)
    for row in rows.values():
        assert 0.0 <= row["top1"]["low"] <= row["top1"]["mean"] <= row["top1"]["high"] <= 1.0
        assert row["top1"]["mean"] <= row["top3"]["mean"] <= row["top10"]["mean"]
    report = out.read_text()
    assert "| transformer | integrated_gradients |" in report and "## Detection on the test sample" in report
    page = out.with_name(out.stem + "_examples.html").read_text()
    assert "flaw" in page and "rgba(220, 50, 47" in page
