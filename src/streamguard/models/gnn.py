"""Graph classifier over typed code graphs (GCN / GAT / typed GGNN), for the shared training loop.

Contract with the loop: ``forward(batch) -> logits [B, 2]``, ``encode(batch) -> [B, embedding_dim]``
(the pooled graph vector that fusion reuses), batches are dicts with ``graph`` (a PyG ``Batch``),
``labels``, ``idx`` and optionally ``extra_features``.

What differs from the original ``EnhancedTaintFlowGNN`` (spec §2.2), and why:

* nodes embed their grammar type *and* their token bucket, so identifiers and literals are visible;
* every architecture uses the edge types (AST, next token, control flow, data flow), plus a
  reverse relation per type so information also flows from uses back to definitions;
* residual connections and LayerNorm between layers keep deeper stacks trainable;
* extra per-graph features (e.g. a transformer CLS vector) are concatenated per graph after
  pooling, never broadcast across the batch;
* ``model_config()`` holds every constructor argument, so a checkpoint rebuilds the exact model.

PyG is imported where it is used, not with this module: ``GNNClassifier(..., lite=True)`` (the
``gcn`` arch with mean / max / mean_max pooling, for scoring) runs on the plain-torch twins in
:mod:`streamguard.models.gnn_lite`, with :class:`GraphExamples` ``(lite=True)`` items and
:func:`~streamguard.models.gnn_lite.collate_lite_graphs`, and never imports PyG. Training uses PyG.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from streamguard.graphs.schema import CodeGraph
from streamguard.models import gnn_lite

ARCHITECTURES = ("gcn", "gat", "ggnn")
POOLINGS = ("mean", "max", "mean_max", "attention", "devign")
NUM_CLASSES = 2


class GraphExamples(Dataset):
    """Code graphs + labels (+ optional per-graph features) as PyG ``Data``, converted on access.

    Conversion is a few ``torch.from_numpy`` calls, so doing it lazily keeps memory at one copy
    of the graphs and costs well under a millisecond per example. With ``lite`` the items are the
    same tensors in a dict (no PyG), for :func:`~streamguard.models.gnn_lite.collate_lite_graphs`.
    """

    def __init__(
        self,
        idx: Sequence[int],
        graphs: Sequence[CodeGraph],
        labels: Sequence[int],
        extra_features: np.ndarray | None = None,
        lite: bool = False,
    ) -> None:
        if not len(idx) == len(graphs) == len(labels):
            raise ValueError(f"idx, graphs and labels differ in length: {len(idx)}, {len(graphs)}, {len(labels)}")
        if extra_features is not None:
            extra_features = np.asarray(extra_features, dtype=np.float32)
            if extra_features.ndim != 2 or extra_features.shape[0] != len(graphs):
                raise ValueError(f"extra_features must be [{len(graphs)}, F], got {extra_features.shape}")
        self.idx = [int(value) for value in idx]
        self.graphs = list(graphs)
        self.labels = [int(value) for value in labels]
        self.extra_features = extra_features
        self.lengths = [graph.num_nodes for graph in self.graphs]  # for length-grouped batching
        self.lite = bool(lite)

    def __len__(self) -> int:
        return len(self.graphs)

    def tensors(self, position: int) -> dict[str, Any]:
        """One example's fields (x, edge_index, edge_type, y, idx, num_nodes[, extra_features])."""
        graph = self.graphs[position]
        fields: dict[str, Any] = {
            "x": torch.from_numpy(np.stack([graph.node_type, graph.node_token], axis=1).astype(np.int64)),
            "edge_index": torch.from_numpy(np.ascontiguousarray(graph.edge_index, dtype=np.int64)),
            "edge_type": torch.from_numpy(graph.edge_type.astype(np.int64)),
            "y": torch.tensor([self.labels[position]], dtype=torch.long),
            "idx": torch.tensor([self.idx[position]], dtype=torch.long),
            "num_nodes": graph.num_nodes,
        }
        if self.extra_features is not None:
            fields["extra_features"] = torch.from_numpy(self.extra_features[position : position + 1])
        return fields

    def __getitem__(self, position: int) -> Any:
        if self.lite:
            return self.tensors(position)
        from torch_geometric.data import Data

        return Data(**self.tensors(position))


def collate_graphs(examples: list[Any]) -> dict[str, Any]:
    """Batch ``GraphExamples`` items (PyG ``Data``) into the loop's dict (graph, labels, idx, extra_features)."""
    from torch_geometric.data import Batch

    graph = Batch.from_data_list(examples)
    batch: dict[str, Any] = {"graph": graph, "labels": graph.y, "idx": graph.idx}
    if "extra_features" in graph:
        batch["extra_features"] = graph.extra_features
    return batch


class TypedGGNN(nn.Module):
    """Gated graph network (Li et al. 2016) with one weight matrix per edge relation.

    PyG's ``GatedGraphConv`` takes at most a scalar per edge, which would reduce the edge types to
    a weighting; the original GGNN instead gives each relation its own message matrix. Messages
    are computed relation by relation on that relation's edges only (E·h² work, no [N, R·h]
    intermediate), summed per target node, and fed to a GRU shared across steps.
    """

    def __init__(self, hidden_dim: int, num_relations: int, steps: int, dropout: float) -> None:
        super().__init__()
        self.steps = steps
        self.relation_weight = nn.Parameter(torch.empty(num_relations, hidden_dim, hidden_dim))
        nn.init.xavier_uniform_(self.relation_weight.view(-1, hidden_dim))
        self.gru = nn.GRUCell(hidden_dim, hidden_dim)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_dim) for _ in range(steps))
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_type: torch.Tensor) -> torch.Tensor:
        groups = []
        for relation in torch.unique(edge_type).tolist():
            mask = edge_type == relation
            groups.append((relation, edge_index[0, mask], edge_index[1, mask]))
        for step in range(self.steps):
            messages = torch.zeros_like(h)
            for relation, sources, targets in groups:
                transformed = h[sources] @ self.relation_weight[relation]  # fp16 under autocast
                messages = messages.index_add(0, targets, transformed.to(messages.dtype))
            h = self.norms[step](self.gru(messages, h))
            h = self.dropout(h)
        return h


class DevignReadout(nn.Module):
    """The Devign paper's convolutional readout (Zhou et al. 2019, §3.3), returning a graph vector.

    Node states ``h`` (and, concatenated, the inputs ``x``) are taken in node order (the AST's
    pre-order, so neighbouring positions are neighbouring code), passed through two Conv1d +
    max-pool stages, and the two paths are gated: mean over positions of sigmoid(W_y y) * (W_z z).
    The paper maps the gated product straight to a score; here it stays a ``hidden_dim`` vector so
    the shared head (and fusion) read it like any other pooling. Padding positions are masked out.
    """

    TAIL = 6  # padding positions after the longest graph: both pooling stages see whole windows

    def __init__(self, hidden_dim: int) -> None:
        super().__init__()
        self.conv_y = nn.ModuleList([nn.Conv1d(2 * hidden_dim, 2 * hidden_dim, 3, padding=1), nn.Conv1d(2 * hidden_dim, 2 * hidden_dim, 1)])
        self.conv_z = nn.ModuleList([nn.Conv1d(hidden_dim, hidden_dim, 3, padding=1), nn.Conv1d(hidden_dim, hidden_dim, 1)])
        self.pools = nn.ModuleList([nn.MaxPool1d(3, stride=2), nn.MaxPool1d(2, stride=2)])
        self.gate = nn.Linear(2 * hidden_dim, hidden_dim)
        self.value = nn.Linear(hidden_dim, hidden_dim)

    def _path(self, dense: torch.Tensor, mask: torch.Tensor, convs: nn.ModuleList) -> tuple[torch.Tensor, torch.Tensor]:
        out, keep = dense.transpose(1, 2), mask[:, None, :].to(dense.dtype)  # [B, C, N], [B, 1, N]
        for conv, pool in zip(convs, self.pools):
            # Padding is zeroed before and after each conv (ReLU outputs are >= 0, so a zero never wins
            # a max); with TAIL padding positions every window that starts on a real position is
            # complete, so a graph's vector does not depend on how much padding its batch needed.
            out = pool(F.relu(conv(out * keep)) * keep)
            keep = pool(keep)  # a pooled position is real when any of its inputs was
        return out.transpose(1, 2), keep[:, 0, :]

    def forward(self, h: torch.Tensor, x: torch.Tensor, batch: torch.Tensor, size: int) -> torch.Tensor:
        from torch_geometric.utils import to_dense_batch

        counts = torch.bincount(batch, minlength=size)
        length = (int(counts.max()) if counts.numel() else 0) + self.TAIL
        h_dense, mask = to_dense_batch(h, batch, batch_size=size, max_num_nodes=length)
        x_dense, _ = to_dense_batch(x, batch, batch_size=size, max_num_nodes=length)
        y, keep = self._path(torch.cat([h_dense, x_dense], dim=-1), mask, self.conv_y)
        z, _ = self._path(h_dense, mask, self.conv_z)
        gated = torch.sigmoid(self.gate(y)) * self.value(z) * keep[..., None]
        return gated.sum(dim=1) / keep.sum(dim=1, keepdim=True).clamp(min=1.0)


class GNNClassifier(nn.Module):
    """Typed-edge GNN -> pooled graph vector (+ extra features) -> 2 logits.

    ``lite`` (inference only; not part of ``model_config``) builds the ``gcn`` arch with
    mean / max / mean_max pooling on :mod:`streamguard.models.gnn_lite` instead of PyG: same
    parameters, same outputs, batches from ``collate_lite_graphs``.
    """

    def __init__(
        self,
        num_node_types: int,
        token_buckets: int,
        num_edge_types: int,
        arch: str = "gcn",
        hidden_dim: int = 64,
        num_layers: int = 3,
        dropout: float = 0.2,
        pooling: str = "mean_max",
        extra_feature_dim: int = 0,
        add_reverse_edges: bool = True,
        heads: int = 4,
        lite: bool = False,
    ) -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if arch == "gat" and hidden_dim % heads:
            raise ValueError(f"gat needs hidden_dim ({hidden_dim}) divisible by heads ({heads})")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self._config = {
            "num_node_types": int(num_node_types),
            "token_buckets": int(token_buckets),
            "num_edge_types": int(num_edge_types),
            "arch": arch,
            "hidden_dim": int(hidden_dim),
            "num_layers": int(num_layers),
            "dropout": float(dropout),
            "pooling": pooling,
            "extra_feature_dim": int(extra_feature_dim),
            "add_reverse_edges": bool(add_reverse_edges),
            "heads": int(heads),
        }
        unsupported = gnn_lite.lite_gnn_unsupported(self._config) if lite else None
        if unsupported:
            raise ValueError(f"lite GNN: {unsupported}")
        self.lite = bool(lite)
        self.arch = arch
        self.pooling = pooling
        self.num_edge_types = int(num_edge_types)
        self.add_reverse_edges = bool(add_reverse_edges)
        self.extra_feature_dim = int(extra_feature_dim)
        num_relations = self.num_edge_types * (2 if add_reverse_edges else 1)

        self.type_embedding = nn.Embedding(num_node_types, hidden_dim)
        self.token_embedding = nn.Embedding(token_buckets + 1, hidden_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)

        if arch == "gcn":
            if lite:
                self.convs = nn.ModuleList(gnn_lite.GCNLayer(hidden_dim, hidden_dim) for _ in range(num_layers))
            else:
                from torch_geometric.nn import GCNConv

                self.convs = nn.ModuleList(GCNConv(hidden_dim, hidden_dim) for _ in range(num_layers))
            # One positive weight per relation and layer (softplus; starts at 1 = plain GCN).
            self.relation_logits = nn.Parameter(torch.full((num_layers, num_relations), math.log(math.e - 1)))
        elif arch == "gat":
            from torch_geometric.nn import GATConv

            edge_dim = max(8, hidden_dim // 4)
            self.relation_embedding = nn.Embedding(num_relations, edge_dim)
            self.convs = nn.ModuleList(
                GATConv(hidden_dim, hidden_dim // heads, heads=heads, dropout=dropout, edge_dim=edge_dim)
                for _ in range(num_layers)
            )
        else:
            self.ggnn = TypedGGNN(hidden_dim, num_relations, steps=num_layers, dropout=dropout)
        if arch != "ggnn":
            self.norms = nn.ModuleList(nn.LayerNorm(hidden_dim) for _ in range(num_layers))

        if pooling == "devign":
            self.devign_readout = DevignReadout(hidden_dim)
        if pooling == "attention":
            from torch_geometric.nn import AttentionalAggregation

            self.attention_pool = AttentionalAggregation(
                gate_nn=nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))
            )
        pooled_dim = 2 * hidden_dim if pooling == "mean_max" else hidden_dim
        self.embedding_dim = pooled_dim + self.extra_feature_dim
        self.head = nn.Sequential(
            nn.Linear(self.embedding_dim, hidden_dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, NUM_CLASSES),
        )

    def model_config(self) -> dict[str, Any]:
        """Constructor arguments, stored in checkpoints so the model is rebuilt without guessing."""
        return dict(self._config)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], lite: bool = False) -> GNNClassifier:
        """Rebuild from ``model_config()`` output (unknown keys are an error, not ignored); ``lite``: see the class."""
        valid = set(inspect.signature(cls.__init__).parameters) - {"self", "lite"}
        unknown = sorted(set(config) - valid)
        if unknown:
            raise ValueError(f"unknown GNNClassifier config key(s) {unknown}; valid keys: {sorted(valid)}")
        return cls(**dict(config), lite=lite)

    def _relations(self, graph: Any) -> tuple[torch.Tensor, torch.Tensor]:
        edge_index, edge_type = graph.edge_index, graph.edge_type.long()
        if self.add_reverse_edges:
            edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)
            edge_type = torch.cat([edge_type, edge_type + self.num_edge_types])
        return edge_index, edge_type

    def node_inputs(self, graph: Any) -> torch.Tensor:
        """Each node's input vector (type + token embedding, [N, hidden_dim]): what node attributions
        (``streamguard.explain``) are computed against, since the node features themselves are ids."""
        node_type, node_token = graph.x[:, 0].long(), graph.x[:, 1].long()
        return self.type_embedding(node_type) + self.token_embedding(node_token)

    def node_states(self, graph: Any, node_inputs: torch.Tensor | None = None) -> torch.Tensor:
        """Node vectors after message passing ([N, hidden_dim]), from ``node_inputs`` when given."""
        h = self.dropout(self.node_inputs(graph) if node_inputs is None else node_inputs)
        edge_index, edge_type = self._relations(graph)
        if self.arch == "ggnn":
            return self.ggnn(h, edge_index, edge_type)
        for layer, conv in enumerate(self.convs):
            if self.arch == "gcn":
                edge_weight = F.softplus(self.relation_logits[layer])[edge_type].to(h.dtype)
                update = conv(h, edge_index, edge_weight)
            else:
                update = conv(h, edge_index, self.relation_embedding(edge_type))
            h = self.norms[layer](h + self.dropout(F.relu(update)))
        return h

    def encode(self, batch: Mapping[str, Any], node_inputs: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled graph embedding (+ extra features) before the head: [B, embedding_dim]."""
        graph = batch["graph"]
        if self.pooling == "devign":  # the readout also reads the node inputs (the paper's x)
            node_inputs = self.node_inputs(graph) if node_inputs is None else node_inputs
        h = self.node_states(graph, node_inputs)
        size = graph.num_graphs
        if self.lite:
            global_mean_pool, global_max_pool = gnn_lite.mean_pool, gnn_lite.max_pool
        else:
            from torch_geometric.nn import global_max_pool, global_mean_pool
        if self.pooling == "devign":
            pooled = self.devign_readout(h, node_inputs, graph.batch, size)
        elif self.pooling == "mean":
            pooled = global_mean_pool(h, graph.batch, size)
        elif self.pooling == "max":
            pooled = global_max_pool(h, graph.batch, size)
        elif self.pooling == "mean_max":
            pooled = torch.cat([global_mean_pool(h, graph.batch, size), global_max_pool(h, graph.batch, size)], dim=1)
        else:
            pooled = self.attention_pool(h, graph.batch, dim_size=size)
        if self.extra_feature_dim:
            extra = batch.get("extra_features")
            if extra is None or tuple(extra.shape) != (size, self.extra_feature_dim):
                shape = None if extra is None else tuple(extra.shape)
                raise ValueError(f"model expects extra_features of shape ({size}, {self.extra_feature_dim}), got {shape}")
            pooled = torch.cat([pooled, extra.to(pooled.dtype)], dim=1)
        return pooled

    def forward(self, batch: Mapping[str, Any], node_inputs: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits [B, 2]."""
        return self.head(self.encode(batch, node_inputs))

