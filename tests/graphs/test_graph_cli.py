"""`streamguard graph`: DOT of one function, picked by name, with the chosen edge groups."""

from pathlib import Path

from streamguard.console import main

SOURCE = """
static int helper(int x) { return x + 1; }

int copy_name(char *dst, const char *src, int n)
{
    int i = 0;
    while (i < n) {
        dst[i] = src[i];
        i++;
    }
    return helper(i);
}
"""


def test_dot_of_a_named_function_has_control_and_data_flow(tmp_path: Path, capsys):
    source = tmp_path / "f.c"
    source.write_text(SOURCE)
    assert main(["graph", str(source), "--function", "copy_name", "--edges", "control_flow,data_flow"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("digraph code_graph {")
    assert "while_statement" in out and 'label="CFG_BACK"' in out and 'label="DFG"' in out  # loop back-edge, data flow
    assert 'label="AST"' not in out  # only the requested groups are drawn
    assert "copy_name:" in err and "parse errors" in err


def test_dot_file_output_and_clear_errors(tmp_path: Path, capsys):
    source = tmp_path / "f.c"
    source.write_text(SOURCE)
    target = tmp_path / "g.dot"
    assert main(["graph", str(source), "-o", str(target)]) == 0
    assert target.read_text().startswith("digraph")
    assert main(["graph", str(source), "--function", "nope"]) == 2
    assert "no function named 'nope'" in capsys.readouterr().err
    assert main(["graph", str(tmp_path / "missing.c")]) == 2
    assert main(["graph", str(source), "--edges", "bogus"]) == 2
