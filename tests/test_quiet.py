"""Quiet logs: the known-harmless third-party warnings are gone, every other warning still shows."""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
import typing

from streamguard.pipelines.common import bind_seed

PROBE = """
import warnings
from streamguard.runtime.quiet import silence_known_warnings
silence_known_warnings()
from omegaconf import OmegaConf
OmegaConf.register_new_resolver("sg_probe", lambda: 1)          # OmegaConf's deprecation
import mlflow.pyfunc
class Model(mlflow.pyfunc.PythonModel):                         # MLflow's type-hint advice
    def predict(self, context, model_input, params=None):
        return model_input
warnings.warn("a real problem", UserWarning)                    # must still show
"""


def test_known_harmless_warnings_are_silenced_and_others_still_show() -> None:
    completed = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "a real problem" in completed.stderr
    assert "register_new_resolver" not in completed.stderr
    assert "Add type hints" not in completed.stderr


def test_bound_seed_nodes_keep_their_type_hints_and_signature() -> None:
    def train(train_functions: int, params: dict, *, seed: int) -> int:
        return train_functions + seed

    bound = bind_seed(train, 3)
    assert bound(1, {}) == 4 and bound.__name__ == "train"
    assert list(inspect.signature(bound).parameters) == ["train_functions", "params"]
    assert typing.get_type_hints(bound)["params"] is dict  # a functools.partial raised TypeError here


def test_track_pipelines_give_kedro_no_type_hint_warnings(caplog) -> None:
    from kedro.validation.type_extractor import TypeExtractor

    from streamguard.pipelines import baseline, fusion, gnn, transformer

    pipelines = {"baseline": baseline.create_pipeline()} | {
        module.__name__: module.create_pipeline(seeds=[0, 1]) for module in (transformer, gnn, fusion)
    }
    with caplog.at_level(logging.WARNING, logger="kedro.validation.type_extractor"):
        extractor = TypeExtractor(pipelines)
        for pipeline in pipelines.values():
            for node in pipeline.nodes:
                extractor._extract_types_from_node(node)
    assert not [record.getMessage() for record in caplog.records if "Could not extract type hints" in record.getMessage()]


def test_warnings_routed_through_logging_are_filtered_too() -> None:
    """Kedro's logging.captureWarnings turns warnings into records of the ``py.warnings`` logger."""
    from streamguard.runtime.quiet import silence_known_warnings

    silence_known_warnings()
    logger = logging.getLogger("py.warnings")
    harmless = logger.makeRecord("py.warnings", logging.WARNING, "x.py", 1, "%s", ("/x/omegaconf_config.py:701: UserWarning: register_new_resolver() is deprecated and will be removed",), None)
    real = logger.makeRecord("py.warnings", logging.WARNING, "x.py", 1, "%s", ("/x/a.py:1: UserWarning: a real problem",), None)
    assert not logger.filter(harmless)
    assert logger.filter(real)
