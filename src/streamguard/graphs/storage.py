"""Many ``CodeGraph`` in one compressed ``.npz``: concatenated arrays + offsets, no pickle.

One file per split instead of one pickled ``.pt`` per function (the original's dead-weight
format): it loads with ``allow_pickle=False`` (no code execution from a data file), is written
atomically (a crash never leaves half a file behind), and records the format version and the
``GraphConfig`` so a loader can refuse graphs built differently from what a model expects.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streamguard.runtime.atomic import atomic_write
from streamguard.graphs.schema import CodeGraph, GraphConfig

FORMAT_VERSION = 1
_ARRAYS = (
    "format_version",
    "config_json",
    "node_offsets",
    "edge_offsets",
    "node_type",
    "node_token",
    "edge_index",
    "edge_type",
    "num_error_nodes",
    "truncated",
    "skipped",
)


def _common_config(graphs: Sequence[CodeGraph], config: GraphConfig | None) -> GraphConfig | None:
    if config is not None:
        return config
    configs = {graph.config for graph in graphs if graph.config is not None}
    if len(configs) > 1:
        raise ValueError(f"graphs were built with {len(configs)} different GraphConfigs; save them separately")
    return next(iter(configs), None)


def save_graphs(graphs: Sequence[CodeGraph], path: str | os.PathLike, config: GraphConfig | None = None) -> None:
    """Write ``graphs`` to ``path`` atomically (temp file in the same folder + ``os.replace``).

    ``config`` defaults to the one the graphs carry (``build_graph`` sets it).
    """
    path = Path(path)
    config = _common_config(graphs, config)
    node_counts = np.asarray([graph.num_nodes for graph in graphs], dtype=np.int64)
    edge_counts = np.asarray([graph.num_edges for graph in graphs], dtype=np.int64)
    arrays = {
        "format_version": np.asarray(FORMAT_VERSION, dtype=np.int64),
        "config_json": np.asarray(json.dumps(None if config is None else config.to_dict(), sort_keys=True)),
        "node_offsets": np.concatenate([[0], np.cumsum(node_counts)]).astype(np.int64),
        "edge_offsets": np.concatenate([[0], np.cumsum(edge_counts)]).astype(np.int64),
        "node_type": _concat([graph.node_type for graph in graphs], np.int32),
        "node_token": _concat([graph.node_token for graph in graphs], np.int32),
        # Row indices are local to each graph and < 2**31, so int32 halves the file.
        "edge_index": np.concatenate([graph.edge_index for graph in graphs], axis=1).astype(np.int32)
        if graphs
        else np.zeros((2, 0), dtype=np.int32),
        "edge_type": _concat([graph.edge_type for graph in graphs], np.int8),
        "num_error_nodes": np.asarray([graph.num_error_nodes for graph in graphs], dtype=np.int64),
        "truncated": np.asarray([graph.truncated for graph in graphs], dtype=bool),
        "skipped": np.asarray([graph.skipped for graph in graphs], dtype=bool),
    }

    def write(temp: Path) -> None:
        with open(temp, "wb") as stream:  # a file object: given a path, numpy would append ".npz"
            np.savez_compressed(stream, **arrays)

    atomic_write(path, write)


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)


def read_graph_config(path: str | os.PathLike) -> GraphConfig | None:
    """The GraphConfig stored in a graph file (None when it was saved without one)."""
    return _read(Path(path))[1]


def load_graphs(path: str | os.PathLike, expected_config: GraphConfig | None = None) -> list[CodeGraph]:
    """Read graphs written by ``save_graphs``; a damaged file raises ``ValueError`` naming it.

    With ``expected_config``, graphs built under a different config are refused (a model trained on
    one edge-type set must not silently receive another).
    """
    path = Path(path)
    arrays, config = _read(path)
    if expected_config is not None and config != expected_config:
        raise ValueError(
            f"{path} holds graphs built with {config} but {expected_config} was expected; rebuild the graphs"
        )
    node_offsets, edge_offsets = arrays["node_offsets"], arrays["edge_offsets"]
    edge_index = arrays["edge_index"].astype(np.int64)
    graphs = []
    for number in range(len(node_offsets) - 1):
        node_slice = slice(node_offsets[number], node_offsets[number + 1])
        edge_slice = slice(edge_offsets[number], edge_offsets[number + 1])
        graphs.append(
            CodeGraph(
                node_type=arrays["node_type"][node_slice],
                node_token=arrays["node_token"][node_slice],
                edge_index=edge_index[:, edge_slice],
                edge_type=arrays["edge_type"][edge_slice],
                num_error_nodes=int(arrays["num_error_nodes"][number]),
                truncated=bool(arrays["truncated"][number]),
                skipped=bool(arrays["skipped"][number]),
                config=config,
            )
        )
    return graphs


def _read(path: Path) -> tuple[dict[str, np.ndarray], GraphConfig | None]:
    """Load every array eagerly (so truncation surfaces here) and check the file is consistent."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in _ARRAYS if name not in archive.files]
            if missing:
                raise ValueError(f"missing arrays {missing}")
            arrays = {name: archive[name] for name in _ARRAYS}
        version = int(arrays["format_version"])
        if version != FORMAT_VERSION:
            raise ValueError(f"format version {version}, this code reads version {FORMAT_VERSION}")
        stored = json.loads(str(arrays["config_json"]))
        config = None if stored is None else GraphConfig.from_dict(stored)
        _check_consistent(arrays)
    except FileNotFoundError:
        raise
    except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(f"{path} is not a readable code-graph file: {error}") from error
    return arrays, config


def _check_consistent(arrays: dict[str, np.ndarray]) -> None:
    node_offsets, edge_offsets = arrays["node_offsets"], arrays["edge_offsets"]
    count = len(node_offsets) - 1
    if count < 0 or len(edge_offsets) != count + 1:
        raise ValueError("offset arrays disagree")
    for name, offsets, total in (
        ("node", node_offsets, len(arrays["node_type"])),
        ("edge", edge_offsets, arrays["edge_type"].shape[0]),
    ):
        if offsets[0] != 0 or offsets[-1] != total or np.any(np.diff(offsets) < 0):
            raise ValueError(f"{name} offsets do not match the {name} arrays")
    if len(arrays["node_token"]) != len(arrays["node_type"]) or arrays["edge_index"].shape != (2, len(arrays["edge_type"])):
        raise ValueError("array lengths disagree")
    for name in ("num_error_nodes", "truncated", "skipped"):
        if len(arrays[name]) != count:
            raise ValueError(f"{name} has {len(arrays[name])} entries for {count} graphs")
    # Every edge endpoint must lie inside its own graph.
    node_counts = np.diff(node_offsets)
    limits = np.repeat(node_counts, np.diff(edge_offsets))
    edge_index = arrays["edge_index"]
    if edge_index.size and (edge_index.min() < 0 or np.any(edge_index >= limits)):
        raise ValueError("an edge points outside its graph")
