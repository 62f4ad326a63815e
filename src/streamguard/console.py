"""The ``streamguard`` console script (not ``cli.py``: Kedro reserves ``<package>.cli`` for its own project commands)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from streamguard import __version__


def build_parser() -> argparse.ArgumentParser:
    """Top-level parser; each subcommand sets ``handler`` to the function that runs it."""
    from streamguard.graphs.cli import add_graph_arguments, run_graph
    from streamguard.serving.scan.cli import add_scan_arguments, run_scan

    parser = argparse.ArgumentParser(prog="streamguard", description="Function-level vulnerability detection for C code.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    scan = subcommands.add_parser(
        "scan",
        help="score every C function under some paths (exit 1 if any is over the threshold)",
        description="Score every C function under PATHs with a trained track (exit codes below).",
    )
    add_scan_arguments(scan)
    scan.set_defaults(handler=run_scan)
    graph = subcommands.add_parser(
        "graph",
        help="show the code graph of one C function as Graphviz DOT (or PNG/SVG with dot)",
        description="Build the typed code graph (AST, next token, control flow, data flow) of one function "
        "and write it as DOT, for checking what the GNN sees.",
    )
    add_graph_arguments(graph)
    graph.set_defaults(handler=run_graph)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamguard`` console script; returns the exit code instead of raising SystemExit."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_request:  # --help/--version (0) or a usage error (2)
        return exit_request.code if isinstance(exit_request.code, int) else 2
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
