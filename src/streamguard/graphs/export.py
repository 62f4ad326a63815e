"""Graphviz DOT view of a ``CodeGraph``, for people checking what the builder produced.

    from streamguard.graphs import build_graph, to_dot
    open("f.dot", "w").write(to_dot(build_graph(code), code, edge_types=["control_flow", "data_flow"]))
    # dot -Tsvg f.dot > f.svg
"""

from __future__ import annotations

from collections.abc import Iterable

from streamguard.graphs.builder import _build
from streamguard.graphs.grammar import C_LANGUAGE, ERROR_TYPE_ID, EXIT_TYPE_ID, NUM_NODE_TYPES
from streamguard.graphs.schema import EDGE_GROUPS, EDGE_TYPES, CodeGraph, GraphConfig

#: Edge type -> (colour, style). AST/next-token are faint so control and data flow stand out.
EDGE_STYLES: dict[str, tuple[str, str]] = {
    "AST": ("gray70", "solid"),
    "NEXT_TOKEN": ("lightblue", "dashed"),
    "CFG_NEXT": ("blue", "bold"),
    "CFG_TRUE": ("green4", "bold"),
    "CFG_FALSE": ("red", "bold"),
    "CFG_BACK": ("purple", "bold"),
    "CFG_JUMP": ("orange", "bold"),
    "DFG": ("darkgreen", "dotted"),
}
_MAX_LABEL_TEXT = 30


def type_name(kind_id: int) -> str:
    """Readable name of a node type id (a tree-sitter kind, ERROR, or FUNCTION_EXIT)."""
    kind_id = int(kind_id)
    if kind_id == ERROR_TYPE_ID:
        return "ERROR"
    if kind_id == EXIT_TYPE_ID:
        return "FUNCTION_EXIT"
    if not 0 <= kind_id < NUM_NODE_TYPES:
        raise ValueError(f"node type id {kind_id} is outside 0..{NUM_NODE_TYPES - 1}")
    return C_LANGUAGE.node_kind_for_id(kind_id) or f"kind_{kind_id}"


def node_texts(graph: CodeGraph, code: str, config: GraphConfig | None = None) -> list[str]:
    """Source text of every node (empty for the exit node), to see which code a node stands for.

    Graphs keep no text (only token buckets), so the graph is rebuilt with ``config`` (default:
    the graph's own) to recover spans; a mismatch means it was not built from this code.
    """
    config = config or graph.config or GraphConfig()
    rebuilt, spans = _build(code, config, want_spans=True)
    if rebuilt != graph:
        raise ValueError("the graph was not built from this code with this config")
    source = code.encode("utf-8", errors="replace")
    return [source[start:end].decode("utf-8", errors="replace") for start, end in spans]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "")


def to_dot(
    graph: CodeGraph,
    code: str | None = None,
    config: GraphConfig | None = None,
    edge_types: Iterable[str] | None = None,
) -> str:
    """DOT text: nodes labelled ``index: type`` (+ source text when ``code`` is given), edges
    coloured and labelled by type. ``edge_types`` (group or edge names) limits the edges drawn.

    ``code`` must be the function the graph was built from (see ``node_texts``).
    """
    texts = None if code is None else node_texts(graph, code, config)

    shown = set(EDGE_TYPES) if edge_types is None else {
        member for name in edge_types for member in EDGE_GROUPS.get(name, (name,))
    }
    unknown = shown - set(EDGE_TYPES)
    if unknown:
        raise ValueError(f"unknown edge types {sorted(unknown)}; use {list(EDGE_GROUPS)} or {list(EDGE_TYPES)}")
    names = {type_id: name for name, type_id in EDGE_TYPES.items()}

    lines = ["digraph code_graph {", '  node [shape=box, fontname="monospace", fontsize=10];']
    for index, kind_id in enumerate(graph.node_type.tolist()):
        label = f"{index}: {type_name(kind_id)}"
        if texts is not None and texts[index]:
            text = " ".join(texts[index].split())
            if len(text) > _MAX_LABEL_TEXT:
                text = text[: _MAX_LABEL_TEXT - 1] + "…"
            label += f"\n{text}"
        shape = ', shape=ellipse, style=filled, fillcolor="mistyrose"' if kind_id in (ERROR_TYPE_ID, EXIT_TYPE_ID) else ""
        lines.append(f'  n{index} [label="{_escape(label)}"{shape}];')
    for (source_node, target_node), type_id in zip(graph.edge_index.T.tolist(), graph.edge_type.tolist()):
        name = names[type_id]
        if name not in shown:
            continue
        colour, style = EDGE_STYLES[name]
        lines.append(f'  n{source_node} -> n{target_node} [label="{name}", color="{colour}", fontcolor="{colour}", style={style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"
