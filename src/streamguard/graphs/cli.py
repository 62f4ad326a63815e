"""``streamguard graph FILE``: the code graph of one C function as Graphviz DOT (PNG/SVG with ``dot``).

For people debugging the graph builder: pick a function by name from a C file (or take a file that
holds one function), choose which edge groups to draw, and get DOT text or a rendered picture.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def add_graph_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("file", type=Path, help="a C source file")
    parser.add_argument("--function", "-f", help="function name (default: the file's only or first function)")
    parser.add_argument(
        "--edges",
        default="ast,control_flow,data_flow",
        help="comma-separated edge groups or edge names to draw (ast, next_token, control_flow, data_flow; default: %(default)s)",
    )
    parser.add_argument("--max-nodes", type=int, default=512, help="graph size limit, as graphs.max_nodes (default: %(default)s)")
    parser.add_argument("--output", "-o", type=Path, help="write here; .png/.svg/.pdf are rendered with Graphviz `dot` (default: DOT to stdout)")
    return parser


def _pick_function(path: Path, name: str | None) -> tuple[str, str]:
    """(function name, source) of the requested function; the whole file when no definition is found."""
    from streamguard.data.extract import extract_functions

    functions, problems = extract_functions(path)
    fatal = [problem for problem in problems if not functions]
    if fatal:
        raise ValueError(f"{path}: {fatal[0].kind}: {fatal[0].detail}")
    if name is not None:
        chosen = [function for function in functions if function.name == name]
        if not chosen:
            known = ", ".join(function.name for function in functions) or "none"
            raise ValueError(f"{path} has no function named {name!r} (functions found: {known})")
        return name, chosen[0].code
    if functions:
        return functions[0].name, functions[0].code
    return path.stem, path.read_text(encoding="utf-8", errors="replace")


def run_graph(args: argparse.Namespace) -> int:
    """Write the DOT (or a picture rendered from it); 2 with a one-line message on bad input."""
    from streamguard.graphs import EDGE_GROUPS, GraphConfig, build_graph, to_dot

    try:
        name, code = _pick_function(args.file, args.function)
        config = GraphConfig(edge_types=tuple(EDGE_GROUPS), max_nodes=args.max_nodes)
        graph = build_graph(code, config)
        dot = to_dot(graph, code, config, edge_types=[edge.strip() for edge in args.edges.split(",") if edge.strip()])
    except (OSError, ValueError) as error:
        print(f"streamguard graph: {error}", file=sys.stderr)
        return 2
    summary = f"{name}: {graph.num_nodes} nodes, {graph.num_edges} edges, {graph.num_error_nodes} parse errors"
    if args.output is None:
        sys.stdout.write(dot)
        print(summary, file=sys.stderr)
        return 0
    fmt = args.output.suffix.lstrip(".").lower()
    if fmt in ("", "dot", "gv"):
        args.output.write_text(dot, encoding="utf-8")
    else:
        dot_binary = shutil.which("dot")
        if dot_binary is None:
            print("streamguard graph: rendering needs Graphviz `dot` (apt-get install graphviz); "
                  "write .dot instead and render it elsewhere", file=sys.stderr)
            return 2
        subprocess.run([dot_binary, f"-T{fmt}", "-o", str(args.output)], input=dot.encode(), check=True)
    print(f"{summary} -> {args.output}", file=sys.stderr)
    return 0
