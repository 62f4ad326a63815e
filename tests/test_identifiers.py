"""streamguard.data.identifiers: user-defined names -> VAR_n / FUNC_n, everything meaningful kept."""

from __future__ import annotations

import pytest

from streamguard.data.identifiers import KEPT_NAMES, IdentifierNormalizer, normalize_identifiers

COPY = """\
static int copy_name(struct packet *pkt, const char *src, size_t len)
{
    char buf[BUF_SIZE];   /* local copy of src */
    int total = 0;
    if (src == NULL || len > sizeof(buf))
        return -EINVAL;
    memcpy(buf, src, len);
    total = checksum(buf, len) + pkt->size;
    strcpy(pkt->name, "copy: é");
    free(pkt->data);
    return total;
}
"""


def test_renames_variables_and_functions_by_first_appearance():
    out = normalize_identifiers(COPY)
    assert out.startswith("static int FUNC_1(struct packet *VAR_1, const char *VAR_2, size_t VAR_3)")
    assert "char VAR_4[BUF_SIZE];" in out
    assert "int VAR_5 = 0;" in out
    assert "VAR_5 = FUNC_2(VAR_4, VAR_3) + VAR_1->size;" in out  # user callee -> FUNC_n, field kept
    assert "return VAR_5;" in out
    for name in ("copy_name", "pkt", "src", "len", "buf", "total", "checksum"):
        assert f" {name}" not in out.split("/*")[0] + out.split("*/")[1]


def test_keeps_keywords_types_fields_macros_library_calls_literals_and_comments():
    out = normalize_identifiers(COPY)
    for kept in ("static int", "struct packet", "const char", "size_t", "sizeof(VAR_4)", "BUF_SIZE", "NULL", "-EINVAL",
                 "memcpy(VAR_4, VAR_2, VAR_3)", "strcpy(VAR_1->name, \"copy: é\")", "free(VAR_1->data)",
                 "/* local copy of src */", "return"):
        assert kept in out, kept
    assert {"memcpy", "strcpy", "malloc", "free", "av_malloc", "g_free"} <= KEPT_NAMES


def test_same_name_same_placeholder_and_layout_unchanged():
    code = "void f(int a) {\n  int b = a;\n  b += a * a;\n  g(b, a);\n}\n"
    out = normalize_identifiers(code)
    assert out == "void FUNC_1(int VAR_1) {\n  int VAR_2 = VAR_1;\n  VAR_2 += VAR_1 * VAR_1;\n  FUNC_2(VAR_2, VAR_1);\n}\n"
    assert IdentifierNormalizer().mapping(code) == {"f": "FUNC_1", "a": "VAR_1", "b": "VAR_2", "g": "FUNC_2"}


def test_functions_differing_only_in_names_normalise_to_the_same_text():
    one = "int sum(int *xs, int n) { int s = 0; for (int i = 0; i < n; i++) s += xs[i]; return s; }"
    two = "int total(int *values, int count) { int acc = 0; for (int k = 0; k < count; k++) acc += values[k]; return acc; }"
    assert normalize_identifiers(one) == normalize_identifiers(two)


def test_idempotent():
    once = normalize_identifiers(COPY)
    assert normalize_identifiers(once) == once


def test_options_keep_and_macros():
    code = "int f(void) { return helper(MAX_LEN) + counter; }"
    assert normalize_identifiers(code) == "int FUNC_1(void) { return FUNC_2(MAX_LEN) + VAR_1; }"
    custom = IdentifierNormalizer(keep={"helper"}, keep_macros=False, var_prefix="V", func_prefix="F")
    assert custom(code) == "int F_1(void) { return helper(V_1) + V_2; }"


@pytest.mark.parametrize(
    "code",
    [
        "",
        "   \n",
        "this is not C at all ((( {{",
        "static av_cold int init(AVCodecContext *avctx) { DECLARE_ALIGNED(16, uint8_t, tmp)[64]; return 0",
        "int f() { char *s = \"\\xff 日本\"; return s[0]; }",
    ],
)
def test_never_raises_and_keeps_what_it_does_not_rename(code):
    out = normalize_identifiers(code)
    assert isinstance(out, str)
    if "日本" in code:
        assert '"\\xff 日本"' in out and "VAR_1" in out
    if not code.strip():
        assert out == code


def test_malformed_macro_code_still_renamed():
    code = "static av_cold int init(AVCodecContext *avctx) { DECLARE_ALIGNED(16, uint8_t, tmp)[64]; return 0"
    out = normalize_identifiers(code)
    assert "avctx" not in out and "AVCodecContext" in out and "DECLARE_ALIGNED" in out
