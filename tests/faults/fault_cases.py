"""Bad jsonl lines shared by the fault tests (test_faults_data, test_faults_pipeline): each with the
reject reason the loader must give it, or None when the row is valid and must come through."""

from __future__ import annotations

import json
import random
from pathlib import Path

DEEP = 5_000


def good(idx: int, target: int = 0) -> dict:
    return {"idx": idx, "func": f"int f{idx}(int x) {{ return x + {idx}; }}", "target": target}


def encode(row: dict | bytes | str) -> bytes:
    if isinstance(row, bytes):
        return row
    if isinstance(row, str):
        return row.encode("utf-8")
    return json.dumps(row).encode("utf-8")


def nested_braces(depth: int) -> str:
    return "int deep(int x) {" + "{" * depth + "x++;" + "}" * depth + " return x; }"


def nested_ifs(depth: int) -> str:
    return "int deep(int x) {" + "if (x > 0) {" * depth + "x--;" + "}" * depth + " return x; }"


def nested_else_ifs(depth: int) -> str:
    return "int chain(int x) { " + "if (x == 1) x++; else " * depth + "x--; return x; }"


def nested_loops(depth: int) -> str:
    return "int loops(int x) {" + "while (x) { do {" * depth + "x--; break;" + "} while (x); continue; }" * depth + " return x; }"


def nested_parens(depth: int) -> str:
    return "int parens(int x) { return " + "(" * depth + "x" + ")" * depth + "; }"


ONE_MB_FUNCTION = "int huge(int x) {\n" + "    x = x * 3 + 1; if (x > 7) { x -= 2; }\n" * 25_000 + "    return x;\n}\n"
assert len(ONE_MB_FUNCTION) > 1_000_000

# (name, line as written, expected reject reason or None when the row must be accepted)
FAULT_LINES: list[tuple[str, dict | bytes | str, str | None]] = [
    ("good_0", good(0, 0), None),
    ("good_1", good(1, 1), None),
    ("func_number", {"idx": 2, "func": 12345, "target": 1}, "wrong_type:func"),
    ("func_list", {"idx": 3, "func": ["int f(void);"], "target": 1}, "wrong_type:func"),
    ("func_null", {"idx": 4, "func": None, "target": 0}, "wrong_type:func"),
    ("target_string_1", {"idx": 5, "func": "int a(void) { return 1; }", "target": "1"}, None),
    ("target_string_yes", {"idx": 6, "func": "int b(void) { return 1; }", "target": "yes"}, "invalid_label"),
    ("target_float_half", {"idx": 7, "func": "int c(void) { return 1; }", "target": 0.5}, "invalid_label"),
    ("target_float_one", {"idx": 8, "func": "int c1(void) { return 1; }", "target": 1.0}, "invalid_label"),
    ("target_bool_true", {"idx": 9, "func": "int d(void) { return 1; }", "target": True}, None),
    ("target_bool_false", {"idx": 10, "func": "int e(void) { return 0; }", "target": False}, None),
    ("target_2", {"idx": 11, "func": "int g(void) { return 2; }", "target": 2}, "invalid_label"),
    ("target_minus_1", {"idx": 12, "func": "int h(void) { return -1; }", "target": -1}, "invalid_label"),
    ("target_null", {"idx": 13, "func": "int i(void) { return 0; }", "target": None}, "invalid_label"),
    ("target_nan", b'{"idx": 14, "func": "int j(void) { return 0; }", "target": NaN}', "invalid_label"),
    ("duplicate_idx", {"idx": 0, "func": "int dup(void) { return 0; }", "target": 1}, "duplicate_idx"),
    ("idx_beyond_int64", {"idx": 2**70, "func": "int k(void) { return 0; }", "target": 0}, "wrong_type:idx"),
    ("idx_infinite", b'{"idx": 1e400, "func": "int l(void) { return 0; }", "target": 0}', "wrong_type:idx"),
    ("empty_function", {"idx": 15, "func": "", "target": 0}, "empty_function"),
    ("whitespace_function", {"idx": 16, "func": " \n\t ", "target": 0}, "empty_function"),
    ("one_mb_function", {"idx": 17, "func": ONE_MB_FUNCTION, "target": 1}, "oversized_function"),
    ("deeply_nested_function", {"idx": 18, "func": nested_braces(DEEP), "target": 1}, None),
    ("deeply_nested_json", b'{"idx": 19, "func": "int m(void);", "target": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "malformed_json"),
    ("binary_garbage", bytes(random.Random(0).randbytes(400)).replace(b"\n", b"\x00"), "undecodable_bytes"),
    ("non_utf8_in_string", b'{"idx": 20, "func": "int n(void) { return \'\xe9\'; }", "target": 0}', "undecodable_bytes"),
    ("control_chars_in_raw", b'{"idx": 21, "func": "int o(void) {\r\x00}", "target": 0}', "malformed_json"),
    ("lone_surrogate", b'{"idx": 22, "func": "int p(void) { char *s = \\"\\ud800\\"; }", "target": 0}', "invalid_unicode"),
    ("not_an_object", b"[1, 2, 3]", "not_an_object"),
    ("missing_target", {"idx": 23, "func": "int q(void);"}, "missing_field:target"),
    ("blank_line", b"   ", "blank_line"),
    ("good_after_faults", good(24, 1), None),
    # Last: the record is cut mid-way and the file has no final newline (an interrupted download).
    ("truncated_last_line", json.dumps(good(25, 0)).encode()[:30], "malformed_json"),
]


def write_fault_file(path: Path, cases=FAULT_LINES, trailing_newline: bool = False) -> Path:
    path.write_bytes(b"\n".join(encode(line) for _, line, _ in cases) + (b"\n" if trailing_newline else b""))
    return path


def physical_lines(data: bytes) -> int:
    """What `wc -l` says, plus one for an unterminated last line: the loader's line count must match."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
