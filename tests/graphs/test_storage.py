"""Graph files: exact round trip, config check, damaged files named in the error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamguard.graphs import GraphConfig, build_graphs, load_graphs, read_graph_config, save_graphs

CODES = [
    "void f(char *src){ char buf[16]; int n = 8; memcpy(buf, src, n); }",
    "int g(int n) { while (n > 0) { if (n == 3) return n; n--; } return 0; }",
    "int broken( { return ; ",
    "",
    "int big(int a) { return " + " + ".join(["a"] * 200) + "; }",
]
CONFIG = GraphConfig(max_nodes=64, edge_types=("ast", "control_flow", "data_flow"))


@pytest.fixture(scope="module")
def graphs() -> list:
    return build_graphs(CODES, CONFIG)


def test_round_trip_is_exact(tmp_path: Path, graphs: list) -> None:
    path = tmp_path / "nested" / "graphs.npz"
    save_graphs(graphs, path)
    loaded = load_graphs(path, expected_config=CONFIG)
    assert loaded == graphs
    assert [graph.truncated for graph in loaded] == [graph.truncated for graph in graphs]
    assert any(graph.truncated for graph in loaded) and any(graph.num_error_nodes for graph in loaded)
    assert all(graph.config == CONFIG for graph in loaded) and read_graph_config(path) == CONFIG
    assert loaded[0].edge_index.dtype == np.int64 and loaded[0].edge_type.dtype == np.int8
    assert [p.name for p in path.parent.iterdir()] == ["graphs.npz"]  # no temp file left behind
    with np.load(path, allow_pickle=False) as archive:  # plain arrays only, no pickled objects
        assert int(archive["format_version"]) == 1


def test_empty_list_round_trips(tmp_path: Path) -> None:
    save_graphs([], tmp_path / "empty.npz", config=CONFIG)
    assert load_graphs(tmp_path / "empty.npz") == []
    assert read_graph_config(tmp_path / "empty.npz") == CONFIG


def test_config_mismatch_is_refused(tmp_path: Path, graphs: list) -> None:
    path = tmp_path / "graphs.npz"
    save_graphs(graphs, path)
    with pytest.raises(ValueError, match="rebuild the graphs"):
        load_graphs(path, expected_config=GraphConfig())


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing_array", "bad_offsets"])
def test_damaged_file_raises_value_error_naming_it(tmp_path: Path, graphs: list, damage: str) -> None:
    path = tmp_path / "graphs.npz"
    save_graphs(graphs, path)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    else:
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.files}
        if damage == "missing_array":
            del arrays["edge_type"]
        else:
            arrays["node_offsets"] = arrays["node_offsets"][::-1].copy()
        np.savez_compressed(path, **arrays)
    with pytest.raises(ValueError, match="graphs.npz"):
        load_graphs(path)


def test_failed_write_keeps_the_previous_file(tmp_path: Path, graphs: list, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "graphs.npz"
    save_graphs(graphs[:2], path)

    def crash(stream, **arrays) -> None:
        stream.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", crash)
    with pytest.raises(OSError, match="disk full"):
        save_graphs(graphs, path)
    monkeypatch.undo()
    assert load_graphs(path) == graphs[:2]
    assert [p.name for p in tmp_path.iterdir()] == ["graphs.npz"]  # temp file cleaned up


def test_mixed_configs_are_refused(tmp_path: Path, graphs: list) -> None:
    with pytest.raises(ValueError, match="different GraphConfigs"):
        save_graphs(graphs[:1] + build_graphs(CODES[:1], GraphConfig()), tmp_path / "mixed.npz")
