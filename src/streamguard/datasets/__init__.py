"""Kedro glue: catalog dataset types for StreamGuard artefacts (checkpoints, logits, graphs, metrics, figures, servable model).

May import: any library package. Nothing below the glue imports it.
"""

from streamguard.datasets.checkpoint_dataset import TorchCheckpointDataset
from streamguard.datasets.figures_dataset import FiguresDataset
from streamguard.datasets.graphs_dataset import GraphsDataset
from streamguard.datasets.logits_dataset import LogitsDataset
from streamguard.datasets.metrics_dataset import MetricsDataset
from streamguard.datasets.servable_model_dataset import ServableModelDataset

__all__ = ["FiguresDataset", "GraphsDataset", "LogitsDataset", "MetricsDataset", "ServableModelDataset", "TorchCheckpointDataset"]
