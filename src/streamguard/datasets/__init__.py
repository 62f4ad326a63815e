"""Kedro datasets for StreamGuard artefacts: checkpoints, logits, graphs and metrics."""

from streamguard.datasets.checkpoint_dataset import TorchCheckpointDataset
from streamguard.datasets.figures_dataset import FiguresDataset
from streamguard.datasets.graphs_dataset import GraphsDataset
from streamguard.datasets.logits_dataset import LogitsDataset
from streamguard.datasets.metrics_dataset import MetricsDataset
from streamguard.datasets.servable_model_dataset import ServableModelDataset

__all__ = ["FiguresDataset", "GraphsDataset", "LogitsDataset", "MetricsDataset", "ServableModelDataset", "TorchCheckpointDataset"]
