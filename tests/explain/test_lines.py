"""Exact token/node -> line mapping: comments, tabs, CRLF, lone CR, very long lines, non-ASCII text."""

from __future__ import annotations

import numpy as np
import pytest

from streamguard.explain.lines import (
    LineIndex,
    aggregate_to_lines,
    char_offsets_from_bytes,
    mean_scores,
    rank_lines,
    span_lines,
    spread_to_lines,
    token_lines,
)

EDGE_CASES = {
    "comments": "int f(char *s)\n{\n    /* a block\n       comment */ char b[8];  // trailing\n    strcpy(b, s); /* x */\n    return 0;\n}\n",
    "tabs": "int f(int n)\n{\n\tint a[4];\n\t\tfor (int i = 0; i <= n; i++)\n\t\t\ta[i] = i;\n\treturn a[0];\n}",
    "crlf": "int f(char *p)\r\n{\r\n    free(p);\r\n\r\n    return *p;\r\n}\r\n",
    "lone_cr": "int f(int x)\r{\r    x = x + 1;\r    return x;\r}",
    "long_line": "int f(int x)\n{\n    int y = " + " + ".join(f"x{i}" for i in range(700)) + ";\n    return y;\n}\n",
    "unicode": "int f(char *s)\n{\n    /* café — naïve */ printf(s);\n    return 0; // ünïcödé\n}\n",
}


def _expected_lines(code: str) -> list[str]:
    """Lines as editors number them: \\n, \\r\\n and a lone \\r each end one."""
    return code.replace("\r\n", "\n").replace("\r", "\n").split("\n")


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_line_index_splits_like_an_editor(name: str) -> None:
    code = EDGE_CASES[name]
    index = LineIndex.of(code)
    assert index.lines() == _expected_lines(code)
    for number, text in enumerate(_expected_lines(code), start=1):
        if text:
            assert index.line_of_char(code.index(text, index.starts[number - 1])) == number


@pytest.fixture(scope="module")
def project_tokenizer():
    """The project's own tokenizer: byte-level BPE trained on C code (what tiny/small models use)."""
    from streamguard.models.transformer import train_bpe_tokenizer

    corpus = [code for code in EDGE_CASES.values()] * 5
    return train_bpe_tokenizer(corpus, vocab_size=400, min_frequency=1, model_max_length=4096)


@pytest.fixture(scope="module")
def roberta_tokenizer(project_tokenizer, tmp_path_factory):
    """A RoBERTa-family tokenizer class (RobertaTokenizerFast, as CodeBERT/GraphCodeBERT ship) over the same BPE."""
    import json

    from transformers import RobertaTokenizerFast

    directory = tmp_path_factory.mktemp("roberta_tokenizer")
    model = json.loads(project_tokenizer.backend_tokenizer.to_str())["model"]
    (directory / "vocab.json").write_text(json.dumps(model["vocab"]))
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return RobertaTokenizerFast(str(directory / "vocab.json"), str(directory / "merges.txt"), model_max_length=4096)


@pytest.mark.parametrize("which", ["project_tokenizer", "roberta_tokenizer"])
@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_every_visible_character_lands_on_its_own_line(which: str, name: str, request) -> None:
    """Rebuild each line's non-whitespace text from the tokens mapped to it: it must equal the line's."""
    tokenizer = request.getfixturevalue(which)
    code = EDGE_CASES[name]
    encoded = tokenizer(code, return_offsets_mapping=True, truncation=True, max_length=4096)
    offsets = encoded["offset_mapping"]
    lines = token_lines(code, offsets)
    index = LineIndex.of(code)
    rebuilt = {number: "" for number in range(1, index.num_lines + 1)}
    seen_end = 0
    for (start, end), line in zip(offsets, lines):
        if line is None:
            assert not code[start:end].strip()  # only special and whitespace tokens go unassigned
            continue
        start = max(start, seen_end)  # byte-level BPE may give several tokens one multi-byte character
        rebuilt[line] += "".join(code[start:end].split())
        seen_end = max(seen_end, end)
    for number in rebuilt:
        assert rebuilt[number] == "".join(index.line_text(number).split()), (number, index.line_text(number))


def test_truncated_tail_and_blank_lines_have_no_score(project_tokenizer) -> None:
    code = EDGE_CASES["long_line"] + "\nint tail;\n"
    encoded = project_tokenizer(code, return_offsets_mapping=True, truncation=True, max_length=64)
    lines = token_lines(code, encoded["offset_mapping"])
    scores = aggregate_to_lines(LineIndex.of(code).num_lines, lines, np.ones(len(lines)))
    assert scores[0] > 0 and np.isnan(scores[-2])  # "int tail;" is past max_length
    assert rank_lines(scores)[-1] == LineIndex.of(code).num_lines  # NaN lines rank last


def test_byte_spans_map_through_multibyte_characters() -> None:
    code = EDGE_CASES["unicode"]
    source = code.encode("utf-8")
    start = source.index(b"printf")
    spans = [(start, start + len(b"printf(s);")), (0, len(source)), (len(source), len(source))]
    covered = span_lines(code, spans)
    assert covered[0] == [3]
    assert covered[1] == [1, 2, 3, 4, 5]
    assert covered[2] == []
    assert char_offsets_from_bytes(code)[start] == code.index("printf")


def test_graph_node_spans_cover_the_right_lines() -> None:
    """Node spans from the graph builder land on the line of the code each node stands for."""
    from streamguard.explain.gnn import graph_with_spans
    from streamguard.graphs import node_texts

    code = EDGE_CASES["crlf"]
    graph, spans = graph_with_spans(code, {})
    texts = node_texts(graph, code)
    covered = span_lines(code, spans)
    lines = LineIndex.of(code).lines()
    for text, node_lines in zip(texts, covered):
        if text.strip() and "\n" not in text and "\r" not in text:
            assert node_lines and text.strip() in lines[node_lines[0] - 1]


def test_spread_and_mean_scores() -> None:
    scores = spread_to_lines(4, [[1, 2], [2], []], [2.0, 1.0, 5.0])
    assert np.allclose(scores[:2], [1.0, 2.0]) and np.isnan(scores[2:]).all()
    mean = mean_scores([[1.0, 3.0, np.nan], [2.0, 2.0, np.nan]])
    assert np.allclose(mean[:2], [0.375, 0.625]) and np.isnan(mean[2])
    assert rank_lines([0.1, np.nan, 0.5, 0.5]) == [3, 4, 1, 2]


def test_statement_lines_leave_out_signature_braces_and_comments() -> None:
    from streamguard.explain.lines import only_statement_lines, statement_lines

    code = "static int f(int a,\n             int b) /* doc */\n{\n    // note\n    if (a) {\n        a = b; /* x */\n    } else {\n    }\n    return a; }\n"
    assert statement_lines(code).tolist() == [False, False, False, False, True, True, True, False, True, False]
    assert statement_lines("void g(void) { int x = 1; }").tolist() == [True]  # one-liners keep their line
    masked = only_statement_lines(code, np.arange(10, dtype=float))
    assert np.isnan(masked[[0, 1, 2, 3, 7, 9]]).all() and masked[4] == 4.0
