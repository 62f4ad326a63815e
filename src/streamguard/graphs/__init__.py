"""C function -> typed code graph (tree-sitter-c), its storage and a Graphviz view.

May import: data, runtime, config.

Plain Python (no Kedro): the pipelines call ``build_graphs`` / ``graph_stats`` and the catalog
stores lists of ``CodeGraph`` with ``save_graphs`` / ``load_graphs``.
"""

from streamguard.graphs.builder import build_graph, build_graphs, graph_stats
from streamguard.graphs.grammar import ERROR_TYPE_ID, EXIT_TYPE_ID, NUM_NODE_TYPES, parse
from streamguard.graphs.schema import EDGE_GROUPS, EDGE_TYPES, CodeGraph, GraphConfig
from streamguard.graphs.export import node_texts, to_dot, type_name
from streamguard.graphs.storage import FORMAT_VERSION, load_graphs, read_graph_config, save_graphs

__all__ = [
    "EDGE_GROUPS",
    "EDGE_TYPES",
    "ERROR_TYPE_ID",
    "EXIT_TYPE_ID",
    "FORMAT_VERSION",
    "NUM_NODE_TYPES",
    "CodeGraph",
    "GraphConfig",
    "build_graph",
    "build_graphs",
    "graph_stats",
    "load_graphs",
    "node_texts",
    "parse",
    "read_graph_config",
    "save_graphs",
    "to_dot",
    "type_name",
]
