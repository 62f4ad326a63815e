"""PyG-free inference pieces of the ``gcn`` GNN: ``GCNConv``'s propagation, graph batching and pooling.

``import torch_geometric`` costs about a second on 2 cores, and pulls in ``transformers`` and pandas
(through ``torch_geometric.llm``): more than a one-file ``streamguard scan`` spends on everything
else once torch is loaded. The default GNN (arch ``gcn``, pooling mean / max / mean_max) needs
three operations from PyG, each a few lines of torch, reproduced here operation for operation:

* :class:`GCNLayer`: ``GCNConv(in, out)`` with its defaults (self loops, symmetric normalisation,
  edge weights; parameters ``lin.weight`` and ``bias``, so PyG's state dict loads as is);
* :func:`mean_pool` / :func:`max_pool`: ``global_mean_pool`` / ``global_max_pool``;
* :class:`GraphBatch`: what ``Batch.from_data_list`` gives the model (node features, edges
  shifted per graph, edge types, the node -> graph vector).

``GNNClassifier(..., lite=True)`` (:mod:`streamguard.models.gnn`) uses them instead of PyG; training
keeps PyG. The twins are tested equal to PyG in tests/models/test_lite_models.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

LITE_ARCHITECTURES = ("gcn",)
LITE_POOLINGS = ("mean", "max", "mean_max")


def lite_gnn_unsupported(config: Mapping[str, Any]) -> str | None:
    """Why ``GNNClassifier(**config, lite=True)`` cannot be built (None: it can)."""
    if config.get("arch", "gcn") not in LITE_ARCHITECTURES:
        return f"arch {config.get('arch')!r} needs PyG"
    if config.get("pooling", "mean_max") not in LITE_POOLINGS:
        return f"pooling {config.get('pooling')!r} needs PyG"
    return None


def _scatter_sum(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """PyG's ``scatter(src, index, 0, size, reduce="sum")``: ``scatter_add_`` along dim 0."""
    expanded = index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
    return src.new_zeros((size, *src.shape[1:])).scatter_add_(0, expanded, src)


def add_remaining_self_loops(edge_index: torch.Tensor, edge_weight: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PyG's: drop self loops, then one loop per node, weighted as its (last) dropped loop or 1."""
    mask = edge_index[0] != edge_index[1]
    loop_index = torch.arange(0, num_nodes, device=edge_index.device).view(1, -1).repeat(2, 1)
    loop_weight = edge_weight.new_ones((num_nodes,))
    loop_weight[edge_index[0][~mask]] = edge_weight[~mask]
    return torch.cat([edge_index[:, mask], loop_index], dim=1), torch.cat([edge_weight[mask], loop_weight], dim=0)


def gcn_norm(edge_index: torch.Tensor, edge_weight: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PyG's ``gcn_norm`` (self loops added, flow source -> target): D^-1/2 (A + I) D^-1/2 as edge weights."""
    edge_index, edge_weight = add_remaining_self_loops(edge_index, edge_weight, num_nodes)
    row, col = edge_index[0], edge_index[1]
    deg_inv_sqrt = _scatter_sum(edge_weight, col, num_nodes).pow_(-0.5)
    deg_inv_sqrt.masked_fill_(deg_inv_sqrt == float("inf"), 0)
    return edge_index, deg_inv_sqrt[row] * edge_weight * deg_inv_sqrt[col]


class GCNLayer(nn.Module):
    """``torch_geometric.nn.GCNConv(in_channels, out_channels)``'s forward (defaults: self loops,
    normalised, bias) with the same parameters; edge weights default to 1 as there."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.lin = nn.Linear(in_channels, out_channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None = None) -> torch.Tensor:
        if edge_weight is None:
            edge_weight = torch.ones(edge_index.size(1), dtype=x.dtype, device=edge_index.device)
        edge_index, edge_weight = gcn_norm(edge_index, edge_weight, x.size(0))
        x = self.lin(x)
        messages = edge_weight.view(-1, 1) * x[edge_index[0]]  # message from source j to target i
        return _scatter_sum(messages, edge_index[1], x.size(0)) + self.bias


def mean_pool(h: torch.Tensor, batch: torch.Tensor, size: int) -> torch.Tensor:
    """``global_mean_pool``: per graph, the mean of its node vectors (0 for a graph without nodes)."""
    count = h.new_zeros(size).scatter_add_(0, batch, h.new_ones(h.size(0))).clamp(min=1)
    return _scatter_sum(h, batch, size) / count.view(-1, 1)


def max_pool(h: torch.Tensor, batch: torch.Tensor, size: int) -> torch.Tensor:
    """``global_max_pool``: per graph, the element-wise maximum of its node vectors (0 without nodes)."""
    index = batch.view(-1, 1).expand_as(h)
    return h.new_zeros((size, h.size(1))).scatter_reduce_(0, index, h, reduce="amax", include_self=False)


@dataclass
class GraphBatch:
    """The fields of a PyG ``Batch`` the GNN reads: node features [N, 2], edges [2, E] (numbered in
    the batch), edge types [E], each node's graph [N], and the number of graphs."""

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_type: torch.Tensor
    batch: torch.Tensor
    num_graphs: int

    def to(self, device: Any, non_blocking: bool = False) -> GraphBatch:
        move = lambda tensor: tensor.to(device, non_blocking=non_blocking)  # noqa: E731
        return GraphBatch(move(self.x), move(self.edge_index), move(self.edge_type), move(self.batch), self.num_graphs)


def batch_graphs(items: Sequence[Mapping[str, torch.Tensor]]) -> GraphBatch:
    """``Batch.from_data_list`` for items with ``x``, ``edge_index``, ``edge_type`` and ``num_nodes``."""
    counts = [int(item["num_nodes"]) for item in items]
    offsets = torch.tensor([0, *counts[:-1]], dtype=torch.long).cumsum(0).tolist() if counts else []
    edge_index = [item["edge_index"] + offset for item, offset in zip(items, offsets)]
    return GraphBatch(
        x=torch.cat([item["x"] for item in items]) if items else torch.zeros((0, 2), dtype=torch.long),
        edge_index=torch.cat(edge_index, dim=1) if items else torch.zeros((2, 0), dtype=torch.long),
        edge_type=torch.cat([item["edge_type"] for item in items]) if items else torch.zeros(0, dtype=torch.long),
        batch=torch.repeat_interleave(torch.arange(len(items)), torch.tensor(counts, dtype=torch.long)),
        num_graphs=len(items),
    )


def collate_lite_graphs(items: list[Mapping[str, torch.Tensor]]) -> dict[str, Any]:
    """``collate_graphs`` without PyG: the loop's dict (graph, labels, idx, extra_features) from
    :meth:`streamguard.models.gnn.GraphExamples.tensors` items."""
    batch: dict[str, Any] = {
        "graph": batch_graphs(items),
        "labels": torch.cat([item["y"] for item in items]),
        "idx": torch.cat([item["idx"] for item in items]),
    }
    if items and "extra_features" in items[0]:
        batch["extra_features"] = torch.cat([item["extra_features"] for item in items])
    return batch
