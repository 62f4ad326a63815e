"""Node attributions of a graph classifier (PyG ``torch_geometric.explain``), mapped to source lines.

The GNN's node features are ids (grammar type, token bucket), so attributions are computed against
each node's input vector (:meth:`GNNClassifier.node_inputs`, type + token embedding) through a thin
module that PyG's :class:`~torch_geometric.explain.Explainer` can call as ``model(x, edge_index)``:

* ``integrated_gradients``: ``CaptumExplainer("IntegratedGradients")`` from a zero baseline, for the
  vulnerable class; a node's score is its attribution summed over the embedding dimensions;
* ``gradient_x_input``: input x gradient, as ``CaptumExplainer("InputXGradient")`` computes it (one
  backward pass; |sum over dimensions|), in plain torch: the default GNN method must not cost a
  scan PyG's and Captum's imports (tested equal to PyG's explainer);
* ``gnnexplainer``: ``GNNExplainer`` with one learned mask value per node (``node_mask_type="object"``).

Every node keeps the byte span of the code it stands for (tree-sitter); a node's score is split
equally over the source lines its span covers (:func:`streamguard.explain.lines.spread_to_lines`),
so a statement spanning three lines gives each a third and the function's root node, which covers
every line, adds the same small amount to all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from streamguard.explain.lines import LineIndex, span_lines, spread_to_lines

GNN_METHODS = ("integrated_gradients", "gradient_x_input", "gnnexplainer")
DEFAULT_IG_STEPS = 16
DEFAULT_GNNEXPLAINER_EPOCHS = 100


def graph_with_spans(code: str, graph_config: Any) -> tuple[Any, list[tuple[int, int]]]:
    """The function's code graph and each node's byte span (empty for the exit node and skipped graphs)."""
    from streamguard.graphs import GraphConfig
    from streamguard.graphs.builder import _build

    config = graph_config if isinstance(graph_config, GraphConfig) else GraphConfig.from_dict(dict(graph_config or {}))
    return _build(code, config, want_spans=True)


def single_graph_batch(graph: Any) -> dict[str, Any]:
    """The loop's batch dict for one graph (what ``GNNClassifier.forward`` takes, lite or not):
    plain tensors, no PyG ``Batch`` (for one graph they are the same numbers)."""
    from streamguard.models.gnn import GraphExamples
    from streamguard.models.gnn_lite import collate_lite_graphs

    return collate_lite_graphs([GraphExamples([0], [graph], [0], lite=True)[0]])


def _input_x_gradient(logits_of_inputs: Callable[[Any], Any], x: Any) -> np.ndarray:
    """Captum's ``InputXGradient`` for class 1 of a [1, 2] output, summed over the input dimensions: [N]."""
    import torch

    with torch.enable_grad():
        inputs = x.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(logits_of_inputs(inputs)[:, 1].sum(), inputs)
    return (inputs * gradient).detach().sum(dim=-1).float().numpy()


def _node_scores(logits_of_inputs: Callable[[Any], Any], x: Any, edge_index: Any, method: str, steps: int, epochs: int) -> np.ndarray:
    """Per-node scores for class 1 from ``logits_of_inputs(node_inputs [N, F]) -> [1, 2]``."""
    import torch

    if method == "gradient_x_input":  # magnitude, as for the transformer (a local gradient's sign is unreliable)
        return np.abs(_input_x_gradient(logits_of_inputs, x))
    from torch_geometric.explain import Explainer
    from torch_geometric.explain.algorithm import CaptumExplainer, GNNExplainer

    class NodeInputModel(torch.nn.Module):
        """``model(x, edge_index)`` as PyG's explainers call it; the graph itself is fixed in the closure."""

        def forward(self, x: Any, edge_index: Any) -> Any:  # noqa: ARG002 - edges live in the closure's batch
            return logits_of_inputs(x)

    if method == "integrated_gradients":
        algorithm, mask_type = CaptumExplainer("IntegratedGradients", n_steps=int(steps)), "attributes"
    elif method == "gnnexplainer":
        algorithm, mask_type = GNNExplainer(epochs=int(epochs), lr=0.1), "object"
    else:
        raise ValueError(f"gnn line-score method must be one of {GNN_METHODS}, got {method!r}")
    explainer = Explainer(
        model=NodeInputModel(),
        algorithm=algorithm,
        explanation_type="phenomenon",
        node_mask_type=mask_type,
        edge_mask_type=None,
        model_config={"mode": "multiclass_classification", "task_level": "graph", "return_type": "raw"},
    )
    with torch.enable_grad():
        explanation = explainer(x.detach().requires_grad_(True), edge_index, target=torch.tensor([1]))
    scores = explanation.node_mask.detach().sum(dim=-1).float().numpy()
    if method == "gnnexplainer":  # masks are in (0, 1): centre them so unimportant nodes add ~0 to their line
        scores = scores - float(np.median(scores))
    return scores


def gnn_line_scores_one(
    model: Any,
    code: str,
    graph_config: Any,
    method: str = "integrated_gradients",
    steps: int = DEFAULT_IG_STEPS,
    epochs: int = DEFAULT_GNNEXPLAINER_EPOCHS,
    encode_to_logits: Callable[[Any, Any], Any] | None = None,
) -> np.ndarray:
    """Line scores of one function for one GNN classifier (NaN: lines no node covers).

    ``encode_to_logits(batch, node_inputs)`` replaces ``model(batch, node_inputs)`` when the GNN is
    a branch of a larger model (fusion).
    """
    import torch

    index = LineIndex.of(code)
    graph, spans = graph_with_spans(code, graph_config)
    if graph.skipped or not spans:
        return np.full(index.num_lines, np.nan)
    batch = single_graph_batch(graph)
    forward = encode_to_logits or (lambda b, inputs: model(b, node_inputs=inputs))
    with torch.no_grad():
        x = model.node_inputs(batch["graph"])
    scores = _node_scores(lambda inputs: forward(batch, inputs), x, batch["graph"].edge_index, method, steps, epochs)
    return spread_to_lines(index.num_lines, span_lines(code, spans), scores)
