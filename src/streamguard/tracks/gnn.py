"""GNN track recipe: code graphs (+ optional transformer CLS per graph) + the shared loop."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from streamguard.training.distributed import data_parallel_track
from streamguard.tracks.common import (
    build_checkpoint,
    cached_build,
    fit_with_resume,
    keep_finished,
    lite_models,
    plain,
    require_track,
    resolve_lr,
    reuse_finished,
    train_config,
)

if TYPE_CHECKING:  # imported where needed: the serving scorer's path does without pandas
    import pandas as pd


class MissingBranchError(RuntimeError):
    """A required upstream checkpoint is absent; the message says how to produce it."""


def build_split_graphs(frame: pd.DataFrame, graph_params: Mapping[str, Any]) -> tuple[list, dict]:
    """Graphs for one split (in row order) and their statistics."""
    from streamguard.graphs import GraphConfig, build_graphs, graph_stats

    graphs = build_graphs(frame["func"].tolist(), GraphConfig.from_dict(plain(graph_params)), progress=True)
    return graphs, graph_stats(graphs)


def _cls_features(
    params: Mapping[str, Any], transformer_checkpoint: Mapping[str, Any] | None, frame: pd.DataFrame, seed: int
) -> np.ndarray | None:
    if params.get("encoder_features", "none") == "none":
        return None
    if transformer_checkpoint is None:
        raise MissingBranchError(
            f"gnn.encoder_features=cls needs transformer.seed_{seed}.checkpoint, which is missing. "
            "Produce it with `kedro run --pipeline transformer`, or set gnn.encoder_features=none."
        )
    from streamguard.tracks.transformer import transformer_embeddings

    return transformer_embeddings(transformer_checkpoint, frame)


def _examples(frame: pd.DataFrame, graphs: Sequence, extra: np.ndarray | None, lite: bool = False):
    from streamguard.models.gnn import GraphExamples

    if len(graphs) != len(frame):
        raise ValueError(f"{len(graphs)} graphs for {len(frame)} rows: rebuild the graphs (kedro run --pipeline gnn)")
    return GraphExamples(frame["idx"].tolist(), list(graphs), frame["target"].tolist(), extra, lite=lite)


def model_examples(model: Any, frame: pd.DataFrame, graphs: Sequence, extra: np.ndarray | None) -> tuple[Any, Callable]:
    """(examples, collate) in the form ``model`` takes: PyG batches, or plain ones for a lite model."""
    from streamguard.models.gnn import collate_graphs
    from streamguard.models.gnn_lite import collate_lite_graphs

    lite = bool(getattr(model, "lite", False))
    return _examples(frame, graphs, extra, lite), collate_lite_graphs if lite else collate_graphs


@data_parallel_track
def train_gnn(
    train_graphs: Sequence,
    train: pd.DataFrame,
    valid_graphs: Sequence,
    valid: pd.DataFrame,
    params: Mapping[str, Any],
    graph_params: Mapping[str, Any],
    *,
    seed: int,
    transformer_checkpoint: Mapping[str, Any] | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
    resume: Any = None,
) -> tuple[dict, list[dict]]:
    """Fit a GNN for one seed; ``resume`` (a ResumeStore) saves every epoch and continues from a saved state."""
    from streamguard.graphs import EDGE_TYPES, NUM_NODE_TYPES
    from streamguard.models.gnn import GNNClassifier, collate_graphs
    from streamguard.training import fit, seed_everything

    config = train_config(params, seed)
    data: dict[str, Any] = {"train": train, "valid": valid, "train_graphs": train_graphs, "valid_graphs": valid_graphs}
    if params.get("encoder_features", "none") != "none" and transformer_checkpoint is not None:
        data["transformer_checkpoint"] = transformer_checkpoint["model"]  # encoder_features=cls: features from it
    identity = {"track": "gnn", "seed": seed, "params": params, "data": data, "extra_config": {"graphs": graph_params}}
    reused = reuse_finished(resume, on_epoch_end=on_epoch_end, **identity)
    if reused is not None:
        return reused
    train_extra = _cls_features(params, transformer_checkpoint, train, seed)
    valid_extra = _cls_features(params, transformer_checkpoint, valid, seed)
    seed_everything(seed)
    model = GNNClassifier(
        num_node_types=NUM_NODE_TYPES,
        token_buckets=int(graph_params["token_buckets"]),
        num_edge_types=len(EDGE_TYPES),
        arch=params["arch"],
        hidden_dim=int(params["hidden_dim"]),
        num_layers=int(params["num_layers"]),
        dropout=float(params["dropout"]),
        pooling=params["pooling"],
        extra_feature_dim=0 if train_extra is None else int(train_extra.shape[1]),
    )
    train_set = _examples(train, train_graphs, train_extra)
    valid_set = _examples(valid, valid_graphs, valid_extra)
    config, lr_info = resolve_lr(
        config, model, train_set, collate_graphs, track="gnn", seed=seed, params=params, data=data,
        extra_config={"graphs": graph_params},
    )
    result = fit_with_resume(
        lambda **resume_args: fit(model, train_set, valid_set, collate_graphs, config, **resume_args),
        config,
        resume=resume,
        on_epoch_end=on_epoch_end,
        **identity,
    )
    export = {"model_config": result.model.model_config(), "state_dict": result.model.state_dict(), "graph_config": plain(graph_params)}
    return keep_finished(resume, build_checkpoint("gnn", seed, params, export, result, metrics_extra=lr_info), result.history)


def load_gnn(checkpoint: Mapping[str, Any]):
    """The GNN of a checkpoint, eval mode; inside ``reuse_loaded_models(..., lite=True)`` the PyG-free
    one where the architecture allows (batch it with :func:`model_examples`)."""
    from streamguard.models.gnn import GNNClassifier
    from streamguard.models.gnn_lite import lite_gnn_unsupported

    require_track(checkpoint, "gnn")

    def build():
        config = checkpoint["model"]["model_config"]
        lite = lite_models() and lite_gnn_unsupported(config) is None
        model = GNNClassifier.from_config(config, lite=lite)
        model.load_state_dict(checkpoint["model"]["state_dict"])
        return model.eval()

    return cached_build("gnn", checkpoint, build)


def gnn_logits(
    checkpoint: Mapping[str, Any],
    graphs: Sequence,
    frame: pd.DataFrame,
    transformer_checkpoint: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    from streamguard.evaluation.scoring import logits_frame

    return logits_frame(*gnn_predictions(checkpoint, graphs, frame, transformer_checkpoint))


def gnn_predictions(
    checkpoint: Mapping[str, Any], graphs: Sequence, frame: Any, transformer_checkpoint: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(idx, labels, logits [N, 2]) for ``frame`` (a DataFrame or :class:`~streamguard.tracks.common.FunctionRows`)."""
    from streamguard.training import predict_logits

    extra = _cls_features(checkpoint["config"], transformer_checkpoint, frame, checkpoint["seed"])
    model = load_gnn(checkpoint)
    return predict_logits(model, *model_examples(model, frame, graphs, extra))


def gnn_embeddings(
    checkpoint: Mapping[str, Any],
    graphs: Sequence,
    frame: pd.DataFrame,
    transformer_checkpoint: Mapping[str, Any] | None = None,
) -> np.ndarray:
    from streamguard.training import embed

    extra = _cls_features(checkpoint["config"], transformer_checkpoint, frame, checkpoint["seed"])
    model = load_gnn(checkpoint)
    _, _, embeddings = embed(model, *model_examples(model, frame, graphs, extra))
    return embeddings
