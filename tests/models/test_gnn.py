"""GNN classifier: shapes for every architecture/pooling, per-graph extra features, learning, rebuild.

One module on purpose: importing torch_geometric costs ~7 s, paid once.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamguard.graphs import EDGE_TYPES, NUM_NODE_TYPES, GraphConfig, build_graphs
from streamguard.models.gnn import ARCHITECTURES, POOLINGS, GNNClassifier, GraphExamples, collate_graphs

CONFIG = GraphConfig(token_buckets=64)
VULNERABLE = [
    "void a(char *s) { char b[8]; strcpy(b, s); }",
    "void b(char *s, int n) { char d[4]; memcpy(d, s, n); }",
    "int c(int *p, int i) { return p[i]; }",
]
SAFE = [
    "int d(int x) { if (x > 0) return x; return 0; }",
    "void e(int n) { int i; for (i = 0; i < n; i++) { g(i); } }",
    "int f(int a, int b) { while (a > b) { a--; } return a; }",
]
CODES = VULNERABLE + SAFE
LABELS = [1] * len(VULNERABLE) + [0] * len(SAFE)


def make_model(**overrides) -> GNNClassifier:
    settings = dict(
        num_node_types=NUM_NODE_TYPES,
        token_buckets=CONFIG.token_buckets,
        num_edge_types=len(EDGE_TYPES),
        hidden_dim=16,
        num_layers=2,
        dropout=0.1,
    )
    settings.update(overrides)
    torch.manual_seed(0)
    return GNNClassifier(**settings)


@pytest.fixture(scope="module")
def graphs() -> list:
    return build_graphs(CODES, CONFIG)


@pytest.fixture(scope="module")
def extra() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(len(CODES), 3)).astype(np.float32)


def batch_of(graphs: list, extra: np.ndarray | None = None, order: list[int] | None = None) -> dict:
    order = list(range(len(graphs))) if order is None else order
    examples = GraphExamples([100 + i for i in order], [graphs[i] for i in order], [LABELS[i] for i in order],
                             None if extra is None else extra[order])
    return collate_graphs([examples[i] for i in range(len(examples))])


def test_examples_and_collate(graphs: list, extra: np.ndarray) -> None:
    examples = GraphExamples(range(len(graphs)), graphs, LABELS, extra)
    assert len(examples) == 6 and examples.lengths == [graph.num_nodes for graph in graphs]
    assert examples.labels == LABELS
    item = examples[1]
    assert item.x.shape == (graphs[1].num_nodes, 2) and item.x.dtype == torch.long
    assert item.edge_type.shape == (graphs[1].num_edges,)
    batch = batch_of(graphs, extra)
    assert set(batch) == {"graph", "labels", "idx", "extra_features"}
    assert batch["labels"].tolist() == LABELS and batch["idx"].tolist() == [100 + i for i in range(6)]
    assert batch["extra_features"].shape == (6, 3) and batch["graph"].num_graphs == 6
    assert "extra_features" not in batch_of(graphs)
    with pytest.raises(ValueError, match="extra_features"):
        GraphExamples(range(6), graphs, LABELS, extra[:2])


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_forward_and_encode_shapes(graphs: list, arch: str, pooling: str) -> None:
    model = make_model(arch=arch, pooling=pooling).eval()
    batch = batch_of(graphs)
    logits = model(batch)
    assert logits.shape == (6, 2) and torch.isfinite(logits).all()
    embedding = model.encode(batch)
    assert embedding.shape == (6, model.embedding_dim)
    assert model.embedding_dim == (32 if pooling == "mean_max" else 16)


def test_devign_readout_ignores_padding_and_batch_mates(graphs: list) -> None:
    """A graph's vector is the same alone, in a batch beside longer graphs, and for a 1-node graph."""
    model = make_model(arch="ggnn", pooling="devign").eval()
    tiny = build_graphs(["int z;"], CONFIG)
    with torch.no_grad():
        together = model.encode(batch_of(graphs))
        for position in range(len(graphs)):
            alone = model.encode(batch_of(graphs, order=[position]))
            torch.testing.assert_close(alone[0], together[position], atol=1e-5, rtol=1e-5)
        examples = GraphExamples([0], tiny, [0])
        single = model.encode(collate_graphs([examples[0]]))
    assert torch.isfinite(single).all() and single.shape == (1, 16)


def test_without_reverse_edges(graphs: list) -> None:
    model = make_model(arch="ggnn", add_reverse_edges=False).eval()
    assert model(batch_of(graphs)).shape == (6, 2)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_extra_features_stay_with_their_graph(graphs: list, extra: np.ndarray, arch: str) -> None:
    model = make_model(arch=arch, extra_feature_dim=3).eval()
    assert model.embedding_dim == 32 + 3
    with torch.no_grad():
        logits = model(batch_of(graphs, extra))
        changed = extra.copy()
        changed[2] += 5.0
        logits_changed = model(batch_of(graphs, changed))
        order = [4, 2, 0, 5, 1, 3]
        logits_permuted = model(batch_of(graphs, extra, order))
    moved = (logits_changed - logits).abs().sum(dim=1) > 1e-6
    assert moved.tolist() == [False, False, True, False, False, False]  # only graph 2 sees its features
    torch.testing.assert_close(logits_permuted, logits[order])
    with pytest.raises(ValueError, match="extra_features"):
        model(batch_of(graphs))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_few_steps_reduce_the_loss(graphs: list, arch: str) -> None:
    model = make_model(arch=arch, dropout=0.0)
    batch = batch_of(graphs)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(batch), batch["labels"])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_from_config_rebuilds_the_same_model(graphs: list, extra: np.ndarray) -> None:
    model = make_model(arch="gat", pooling="attention", extra_feature_dim=3).eval()
    config = model.model_config()
    assert config["arch"] == "gat" and config["hidden_dim"] == 16 and config["extra_feature_dim"] == 3
    rebuilt = GNNClassifier.from_config(config)
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(batch_of(graphs, extra)), model(batch_of(graphs, extra)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="valid keys"):
        GNNClassifier.from_config({**config, "hidden_size": 16})


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="arch"):
        make_model(arch="transformer")
    with pytest.raises(ValueError, match="pooling"):
        make_model(pooling="sum")
    with pytest.raises(ValueError, match="heads"):
        make_model(arch="gat", hidden_dim=18)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_runs_under_autocast(graphs: list, arch: str) -> None:
    """Mixed precision (bf16 here; fp16 on GPU) must not trip dtype mismatches in message passing."""
    model = make_model(arch=arch)
    batch = batch_of(graphs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(batch)
    torch.nn.functional.cross_entropy(logits.float(), batch["labels"]).backward()
    assert logits.shape == (6, 2)
