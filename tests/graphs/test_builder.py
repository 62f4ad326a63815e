"""Code-graph builder: specific edges on hand-written C, validity on hostile input, determinism."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import numpy as np
import pytest

from streamguard.graphs import (
    EDGE_TYPES,
    ERROR_TYPE_ID,
    EXIT_TYPE_ID,
    NUM_NODE_TYPES,
    CodeGraph,
    GraphConfig,
    build_graph,
    build_graphs,
    graph_stats,
    node_texts,
    to_dot,
    type_name,
)
from streamguard.graphs.grammar import C_LANGUAGE

MEMCPY = "void f(char *src){ char buf[16]; int n = 8; memcpy(buf, src, n); }"
LOOPS = """
int g(int n, int *a) {
    int total = 0;
    while (n > 0) { n--; }
    for (int i = 0; i < n; i++) { if (a[i] < 0) break; if (a[i] == 0) continue; total += a[i]; }
    do { total--; } while (total > 100);
    switch (n) { case 1: total = 1; case 2: total = 2; break; default: total = 3; }
    if (total) { goto out; } else { total = 4; }
    while (1) { if (total > 5) return total; total++; }
out:
    return -1;
}
"""


class Graph:
    """A built graph plus each node's source text, to name nodes by what they cover."""

    def __init__(self, code: str, config: GraphConfig = GraphConfig()) -> None:
        self.graph = build_graph(code, config)
        self.texts = node_texts(self.graph, code, config)
        self.types = [type_name(kind) for kind in self.graph.node_type.tolist()]

    def node(self, kind: str, text: str, occurrence: int = 0) -> int:
        matches = [i for i, (t, s) in enumerate(zip(self.types, self.texts)) if t == kind and s == text]
        assert len(matches) > occurrence, f"no {kind} {text!r} #{occurrence} in {list(zip(self.types, self.texts))}"
        return matches[occurrence]

    def edges(self, name: str) -> set[tuple[int, int]]:
        return self.graph.edges_of(name)

    @property
    def exit(self) -> int:
        return int(np.flatnonzero(self.graph.node_type == EXIT_TYPE_ID)[0])


def assert_valid(graph: CodeGraph) -> None:
    assert graph.node_type.dtype == np.int32 and graph.node_token.dtype == np.int32
    assert graph.edge_index.dtype == np.int64 and graph.edge_type.dtype == np.int8
    assert graph.edge_index.shape == (2, graph.num_edges)
    assert graph.node_token.shape == graph.node_type.shape
    if graph.num_edges:
        assert graph.edge_index.min() >= 0 and graph.edge_index.max() < graph.num_nodes
    assert graph.node_type.min() >= 0 and graph.node_type.max() < NUM_NODE_TYPES


def test_memcpy_data_flow_links_declarations_to_uses() -> None:
    g = Graph(MEMCPY)
    dfg = g.edges("DFG")
    assert (g.node("identifier", "buf", 0), g.node("identifier", "buf", 1)) in dfg  # declarator -> memcpy arg
    assert (g.node("identifier", "n", 0), g.node("identifier", "n", 1)) in dfg  # `int n = 8` -> memcpy arg
    assert (g.node("identifier", "src", 0), g.node("identifier", "src", 1)) in dfg  # parameter -> use
    assert all(g.types[target] == "identifier" for _, target in dfg)
    assert not any(g.texts[target] == "memcpy" for _, target in dfg)  # never defined here


def test_definition_takes_effect_after_its_right_hand_side() -> None:
    g = Graph("int f(int x) { x = x + 1; x += 2; return x; }")
    parameter, assigned, read, compound, returned = (g.node("identifier", "x", i) for i in range(5))
    dfg = g.edges("DFG")
    assert (parameter, read) in dfg and (assigned, read) not in dfg  # RHS reads the parameter
    assert (assigned, compound) in dfg  # `+=` reads the previous definition ...
    assert (compound, returned) in dfg and (assigned, returned) not in dfg  # ... and redefines x


def test_loops_branches_and_jumps() -> None:
    g = Graph(LOOPS)
    cfg = {name: g.edges(name) for name in ("CFG_NEXT", "CFG_TRUE", "CFG_FALSE", "CFG_BACK", "CFG_JUMP")}
    statement = lambda text: g.node("expression_statement", text)  # noqa: E731
    # while: condition -> body (TRUE), end of body -> condition (back edge), condition -> next (FALSE)
    while_head = g.node("parenthesized_expression", "(n > 0)")
    assert (while_head, g.node("compound_statement", "{ n--; }")) in cfg["CFG_TRUE"]
    assert (statement("n--;"), while_head) in cfg["CFG_BACK"]
    assert (while_head, g.node("declaration", "int i = 0;")) in cfg["CFG_FALSE"]
    # for: init -> condition, body end -> update, update -> condition (back edge)
    for_condition, update = g.node("binary_expression", "i < n"), g.node("update_expression", "i++")
    assert (g.node("declaration", "int i = 0;"), for_condition) in cfg["CFG_NEXT"]
    assert (statement("total += a[i];"), update) in cfg["CFG_NEXT"]
    assert (update, for_condition) in cfg["CFG_BACK"]
    # break leaves the loop, continue goes to the update
    do_statement = g.node("do_statement", "do { total--; } while (total > 100);")
    assert (g.node("break_statement", "break;", 0), do_statement) in cfg["CFG_JUMP"]
    assert (g.node("continue_statement", "continue;"), update) in cfg["CFG_JUMP"]
    # do-while: condition -> body is the back edge
    assert (g.node("parenthesized_expression", "(total > 100)"), g.node("compound_statement", "{ total--; }")) in cfg["CFG_BACK"]
    # switch: condition -> every case; fall-through; break -> after the switch
    switch_head = g.node("parenthesized_expression", "(n)")
    cases = [i for i, kind in enumerate(g.types) if kind == "case_statement"]
    assert len(cases) == 3 and all((switch_head, case) in cfg["CFG_TRUE"] for case in cases)
    assert (statement("total = 1;"), cases[1]) in cfg["CFG_NEXT"]
    after_switch = g.node("parenthesized_expression", "(total)")
    assert (g.node("break_statement", "break;", 1), after_switch) in cfg["CFG_JUMP"]
    # if/else: TRUE to the then-block, FALSE to the else-block; goto -> its label
    assert (after_switch, g.node("compound_statement", "{ goto out; }")) in cfg["CFG_TRUE"]
    assert (after_switch, g.node("compound_statement", "{ total = 4; }")) in cfg["CFG_FALSE"]
    assert (g.node("goto_statement", "goto out;"), g.node("labeled_statement", "out:\n    return -1;")) in cfg["CFG_JUMP"]
    # return inside a loop jumps to the function exit
    assert (g.node("return_statement", "return total;"), g.exit) in cfg["CFG_JUMP"]
    assert (g.node("return_statement", "return -1;"), g.exit) in cfg["CFG_JUMP"]


def test_if_without_else_falls_through_on_false() -> None:
    g = Graph("void f(int x) { if (x) a(); b(); }")
    head = g.node("parenthesized_expression", "(x)")
    assert (head, g.node("expression_statement", "a();")) in g.edges("CFG_TRUE")
    assert (head, g.node("expression_statement", "b();")) in g.edges("CFG_FALSE")
    assert (g.node("expression_statement", "b();"), g.exit) in g.edges("CFG_NEXT")


@pytest.mark.parametrize(
    ("edge_types", "expected"),
    [
        (("data_flow",), {"DFG"}),
        (("control_flow",), {"CFG_NEXT", "CFG_TRUE", "CFG_FALSE", "CFG_BACK", "CFG_JUMP"}),
        (("ast", "next_token"), {"AST", "NEXT_TOKEN"}),
        (("CFG_BACK", "DFG"), {"CFG_BACK", "DFG"}),
    ],
)
def test_edge_type_selection(edge_types: tuple[str, ...], expected: set[str]) -> None:
    full = build_graph(LOOPS)
    graph = build_graph(LOOPS, GraphConfig(edge_types=edge_types))
    names = {name for name, type_id in EDGE_TYPES.items() if type_id in set(graph.edge_type.tolist())}
    assert names == expected
    np.testing.assert_array_equal(graph.node_type, full.node_type)  # same nodes, fair ablations
    for name in expected:
        assert graph.edges_of(name) == full.edges_of(name)


def reference_truncation(full: CodeGraph, max_nodes: int) -> CodeGraph:
    """Spec semantics: first max_nodes - 1 pre-order nodes + the exit node, edges among them."""
    kept, exit_node = max_nodes - 1, full.num_nodes - 1
    keep = ((full.edge_index < kept) | (full.edge_index == exit_node)).all(axis=0)
    edge_index = full.edge_index[:, keep].copy()
    edge_index[edge_index == exit_node] = kept
    return CodeGraph(
        np.r_[full.node_type[:kept], full.node_type[-1:]],
        np.r_[full.node_token[:kept], full.node_token[-1:]],
        edge_index,
        full.edge_type[keep],
        full.num_error_nodes,
        truncated=True,
    )


@pytest.mark.parametrize("include_anonymous", [False, True])
def test_truncation_equals_full_graph_cut_down(include_anonymous: bool) -> None:
    full = build_graph(LOOPS, GraphConfig(max_nodes=100_000, include_anonymous=include_anonymous))
    assert not full.truncated
    for max_nodes in range(2, full.num_nodes, 7):
        graph = build_graph(LOOPS, GraphConfig(max_nodes=max_nodes, include_anonymous=include_anonymous))
        assert graph.truncated and graph.num_nodes == max_nodes
        assert graph.node_type[-1] == EXIT_TYPE_ID
        assert_valid(graph)
        assert graph == reference_truncation(full, max_nodes), max_nodes


def test_skip_policy_gives_a_flagged_placeholder() -> None:
    graph = build_graph(LOOPS, GraphConfig(max_nodes=30, oversize_policy="skip"))
    assert graph.skipped and not graph.truncated and graph.num_nodes == 1 and graph.num_edges == 0
    small = build_graph("int f(void) { return 1; }", GraphConfig(max_nodes=30, oversize_policy="skip"))
    assert not small.skipped and small.num_nodes > 1


@pytest.mark.parametrize(
    "code",
    [
        "int f(int a, int b) { return " + "+".join(["a", "b"] * 40) + "; }",  # 80 terms (old bug)
        "int f(int a) { if (" + " || ".join(f"a == {i}" for i in range(60)) + ") return 1; return 0; }",
        "void f(void) { " + "{" * 500 + "x++;" + "}" * 500 + " }",
        "int f(int x) { return " + "(" * 500 + "x" + ")" * 500 + "; }",
        "void f(int x) { " + "if (x) " * 300 + "x++; }",
    ],
    ids=["sum80", "or60", "braces500", "parens500", "ifs300"],
)
def test_deep_trees_keep_every_edge_inside_the_graph(code: str) -> None:
    for config in (GraphConfig(), GraphConfig(max_nodes=100_000), GraphConfig(include_anonymous=True)):
        graph = build_graph(code, config)
        assert_valid(graph)
        if not graph.truncated:
            assert len(graph.edges_of("AST")) == graph.num_nodes - 2  # a tree (+ the exit node)


def test_broken_code_counts_error_and_missing_nodes() -> None:
    graph = build_graph("int f( { return ; ")
    assert graph.num_error_nodes >= 1 and ERROR_TYPE_ID in graph.node_type
    assert_valid(graph)
    missing_semicolon = build_graph("int f(void) { return 1 }")
    assert missing_semicolon.num_error_nodes == 1
    assert build_graph(MEMCPY).num_error_nodes == 0
    assert_valid(build_graph(""))


def test_node_features_are_grammar_ids_and_token_buckets() -> None:
    g = Graph(MEMCPY)
    buf = g.node("identifier", "buf")
    assert g.graph.node_type[buf] == C_LANGUAGE.id_for_node_kind("identifier", True)
    assert g.graph.node_token[buf] == zlib.crc32(b"buf") % 4096 + 1
    assert g.graph.node_token[g.node("identifier", "buf", 1)] == g.graph.node_token[buf]
    assert g.graph.node_token[g.types.index("compound_statement")] == 0  # inner nodes carry no token
    # operators are folded into their expression, so `<` and `<=` differ without anonymous leaves
    less, less_equal = (build_graph(f"int f(int a) {{ return a {op} 1; }}") for op in ("<", "<="))
    assert not np.array_equal(less.node_token, less_equal.node_token)
    with_tokens = build_graph(MEMCPY, GraphConfig(include_anonymous=True))
    assert with_tokens.num_nodes > g.graph.num_nodes


DIGEST_SCRIPT = """
import hashlib, sys
from streamguard.graphs import build_graph
digest = hashlib.sha256()
for code in sys.argv[1:]:
    graph = build_graph(code)
    for array in (graph.node_type, graph.node_token, graph.edge_index, graph.edge_type):
        digest.update(array.tobytes())
print(digest.hexdigest())
"""


def test_identical_output_across_processes() -> None:
    """No salted hash() anywhere: two interpreters with different hash seeds agree byte for byte."""
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", DIGEST_SCRIPT, MEMCPY, LOOPS], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(result.stdout.strip())
    assert len(outputs) == 1


def test_config_validation() -> None:
    assert GraphConfig.from_dict({"edge_types": ["ast", "data_flow"], "max_nodes": 64}).edge_types == ("ast", "data_flow")
    with pytest.raises(ValueError, match="valid keys.*edge_types.*max_nodes"):
        GraphConfig.from_dict({"max_node": 64})
    with pytest.raises(ValueError, match="unknown edge type"):
        GraphConfig(edge_types=("control",))
    with pytest.raises(ValueError, match="oversize_policy"):
        GraphConfig(oversize_policy="drop")


def test_build_graphs_and_stats() -> None:
    graphs = build_graphs([MEMCPY, LOOPS, "int f( {"], GraphConfig(max_nodes=40))
    stats = graph_stats(graphs)
    assert stats["count"] == 3 and stats["truncated"] == 1 and stats["nodes"]["max"] == 40
    assert stats["share_with_error_nodes"] == pytest.approx(1 / 3, abs=1e-3)
    assert set(stats["edges_per_type"]) == set(EDGE_TYPES)
    assert sum(stats["edges_per_type"].values()) == sum(graph.num_edges for graph in graphs)
    assert graph_stats([])["count"] == 0


def test_dot_export_colours_and_labels_edges() -> None:
    graph = build_graph(LOOPS)
    dot = to_dot(graph, LOOPS)
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert 'label="CFG_BACK", color="purple"' in dot and 'label="DFG", color="darkgreen"' in dot
    assert "FUNCTION_EXIT" in dot and "while_statement" in dot and "memcpy" not in dot
    only_control = to_dot(graph, edge_types=["control_flow"])
    assert "DFG" not in only_control and "CFG_TRUE" in only_control
    with pytest.raises(ValueError, match="not built from this code"):
        to_dot(graph, MEMCPY)
    assert type_name(EXIT_TYPE_ID) == "FUNCTION_EXIT" and type_name(ERROR_TYPE_ID) == "ERROR"
