"""benchmarks/lines.py: Juliet line labels carried exactly onto func_anon, and the --quick run end to end."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
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

    # `supervised` only with --line-supervision (it reads the line head): test below.
    expected = {("random", "expected"), ("lexical", "heuristic")} | {(t, m) for t in METHODS for m in METHODS[t] if m != "supervised"}
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


def test_quick_benchmark_with_line_supervision_trains_on_train_flaw_lines_only(juliet_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import lines as benchmark

    from streamguard.tracks import transformer as transformer_track

    seen: list[pd.DataFrame] = []
    original = transformer_track.train_transformer

    def recording(train, valid, params, **kwargs):
        seen.append(train)
        assert "flaw_lines" not in valid and params["line_supervision"] == 0.5
        return original(train, valid, params, **kwargs)

    monkeypatch.setattr(transformer_track, "train_transformer", recording)
    out, work = tmp_path / "lines.md", tmp_path / "work"
    argv = ["--quick", "--data-dir", str(juliet_dir), "--out", str(out), "--workdir", str(work), "--scan-functions", "0"]
    with pytest.raises(SystemExit, match="--line-supervision"):
        benchmark.main([*argv, "--methods", "attention,supervised"])
    assert benchmark.main([*argv, "--line-supervision", "0.5", "--methods", "attention,supervised"]) == 0
    results = json.loads(out.with_suffix(".json").read_text())
    rows = {(row["track"], row["method"]) for row in results["lines"]["rows"]}
    assert {("transformer", "supervised"), ("fusion", "supervised"), ("transformer", "attention"), ("fusion", "attention")} <= rows
    # Every vulnerable train row carries its planted line (the FLAW comment mapped onto func_anon); nothing else does.
    train = seen[0]
    vulnerable = train["target"] == 1
    assert results["info"]["train_flaw_functions"] == int(vulnerable.sum()) > 0
    assert all(len(lines) == 1 for lines in train.loc[vulnerable, "flaw_lines"])
    assert not any(len(lines) for lines in train.loc[~vulnerable, "flaw_lines"])
    by_text = {row["func_anon"]: row["planted_line"] for row in juliet_style_rows(160, 11, "train")}
    assert all(lines == [by_text[func]] for func, lines in zip(train.loc[vulnerable, "func"], train.loc[vulnerable, "flaw_lines"]))
    # The line-supervised checkpoints are cached apart from the plain ones; the GNN's is shared.
    names = {path.name for path in work.rglob("*.pt")}
    assert {"transformer_ls0.5_seed_0.pt", "fusion_ls0.5_seed_0.pt", "gnn_seed_0.pt"} <= names
    assert "transformer_seed_0.pt" not in names
    assert "weight 0.5" in out.read_text()
