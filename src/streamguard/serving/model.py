"""The trained ensemble as an MLflow pyfunc model: function source in, probability and label out.

``save_servable_model`` writes a self-contained MLflow model directory (the seeds' checkpoints
and the threshold in one artefact, the ``streamguard`` package as code, a signature and an
input example) and, when asked, logs the same model into the active MLflow run. Either can be
served with ``mlflow models serve -m <dir or runs:/<run id>/<name>> --env-manager local`` and
loaded with ``mlflow.pyfunc.load_model``. Nothing here imports Kedro.

Request body (``POST /invocations``)::

    {"dataframe_records": [{"func": "int f(char *s) { char b[8]; strcpy(b, s); return 0; }"}]}

Response: ``{"predictions": [{"probability": 0.83, "label": 1, "threshold": 0.41}]}``.

Line scores are off by default; ``"params": {"lines": 3}`` adds a ``lines`` column: each function's
three highest-scored lines (``[{"line", "score", "text"}]``, 1-based lines of the function),
``"line_method"`` picks the method (``streamguard.explain``; empty: the track's default).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from streamguard.serving.scorer import EnsembleScorer

logger = logging.getLogger(__name__)

SCORER_ARTIFACT = "scorer"
INPUT_COLUMN = "func"
EXAMPLE_FUNCTION = "int copy(char *src) {\n    char buf[16];\n    strcpy(buf, src);\n    return buf[0];\n}\n"
# Distributions the model needs at serving time, pinned to the versions it was trained with.
REQUIRED_DISTRIBUTIONS = (
    "mlflow",
    "torch",
    "torch-geometric",
    "transformers",
    "tokenizers",
    "tree-sitter",
    "tree-sitter-c",
    "numpy",
    "pandas",
    "scikit-learn",
    "tqdm",
)


# predict has no type hints on purpose (the logged signature is the schema): MLflow's warnings about
# type hints, raised when the class is defined, are noise.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)

    class StreamGuardModel(mlflow.pyfunc.PythonModel):
        """pyfunc wrapper around :class:`~streamguard.serving.scorer.EnsembleScorer` (``.scorer`` after loading)."""

        scorer: EnsembleScorer | None = None

        def load_context(self, context: Any) -> None:
            # Warm: the models are built here, not by the first request (nor by two at once).
            self.scorer = scorer_from_bundle(load_bundle(context.artifacts[SCORER_ARTIFACT])).warm_up()

        def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
            """DataFrame(probability, label, threshold[, lines]), one row per function.

            ``params={"threshold": t}`` overrides the threshold; ``{"lines": k}`` (k > 0) adds each
            function's k highest-scored lines, scored with ``{"line_method": m}`` (default: the track's).
            """
            if self.scorer is None:
                raise RuntimeError("StreamGuardModel.predict before load_context: load it with mlflow.pyfunc.load_model")
            params = params or {}
            threshold = float(params.get("threshold", self.scorer.threshold))
            codes = input_codes(model_input)
            probabilities = self.scorer.score_codes(codes)
            frame = pd.DataFrame(
                {
                    "probability": probabilities.astype(float),
                    "label": (probabilities >= threshold).astype(np.int64),
                    "threshold": np.full(len(codes), threshold),
                }
            )
            k = int(params.get("lines") or 0)
            if k > 0:
                from streamguard.explain import top_lines

                per_function = self.scorer.line_scores(codes, method=params.get("line_method") or None)
                frame["lines"] = [[item.as_dict() for item in top_lines(code, scores, k)] for code, scores in zip(codes, per_function)]
            return frame


def input_codes(model_input: Any) -> list[str]:
    """Function sources from a DataFrame with a ``func`` column, a list of strings or of records."""
    if isinstance(model_input, pd.DataFrame):
        if INPUT_COLUMN in model_input.columns:
            values = model_input[INPUT_COLUMN].tolist()
        elif len(model_input.columns) == 1:
            values = model_input.iloc[:, 0].tolist()
        else:
            raise ValueError(f"input needs a {INPUT_COLUMN!r} column with C function source; got columns {list(model_input.columns)}")
    elif isinstance(model_input, str):
        values = [model_input]
    elif isinstance(model_input, Mapping):
        values = list(np.atleast_1d(model_input[INPUT_COLUMN]))
    elif isinstance(model_input, Sequence) or isinstance(model_input, np.ndarray):
        values = [item[INPUT_COLUMN] if isinstance(item, Mapping) else item for item in model_input]
    else:
        raise ValueError(f"cannot read function source from a {type(model_input).__name__}")
    bad = [i for i, value in enumerate(values) if not isinstance(value, str)]
    if bad:
        raise ValueError(f"{INPUT_COLUMN!r} must hold strings (C function source); rows {bad[:10]} do not")
    return values


def scorer_bundle(scorer: EnsembleScorer) -> dict[str, Any]:
    """What inference needs, without the optimizer/scheduler state that resuming training needs."""
    return {
        "track": scorer.track,
        "threshold": scorer.threshold,
        "description": scorer.description,
        "checkpoints": [_inference_only(checkpoint) for checkpoint in scorer.checkpoints],
    }


def _inference_only(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    kept = {key: value for key, value in checkpoint.items() if key != "training_state"}
    branches = kept.get("model", {}).get("branch_checkpoints")
    if branches:
        kept["model"] = {**kept["model"], "branch_checkpoints": {name: _inference_only(b) for name, b in branches.items()}}
    return kept


def load_bundle(path: str | Path) -> dict[str, Any]:
    from streamguard.training.checkpoint import safe_torch_load

    return safe_torch_load(path)


def scorer_from_bundle(bundle: Mapping[str, Any]) -> EnsembleScorer:
    return EnsembleScorer(bundle["track"], bundle["checkpoints"], bundle["threshold"], description=bundle["description"])


def _lines_optional(signature: Any) -> Any:
    """The ``lines`` output column is only there when asked for (``params.lines`` > 0)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    columns = [
        ColSpec(type=column.type, name=column.name, required=column.name != "lines") for column in signature.outputs.inputs
    ]
    return ModelSignature(inputs=signature.inputs, outputs=Schema(columns), params=signature.params)


@contextmanager
def _model_arguments(scorer: EnsembleScorer) -> Iterator[dict[str, Any]]:
    """The ``mlflow.pyfunc.save_model``/``log_model`` arguments, with the scorer's weights and
    threshold saved once to a temp artefact that lives as long as the block."""
    from importlib.metadata import PackageNotFoundError, version

    from mlflow.models import infer_signature

    import streamguard
    from streamguard.training.checkpoint import atomic_torch_save

    requirements = []
    for name in REQUIRED_DISTRIBUTIONS:
        try:
            requirements.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            logger.warning("%s is not installed: left out of the model's requirements", name)
    example = pd.DataFrame({INPUT_COLUMN: [EXAMPLE_FUNCTION]})
    output = pd.DataFrame(
        {"probability": [0.5], "label": [1], "threshold": [scorer.threshold], "lines": [[{"line": 3, "score": 0.5, "text": "strcpy(buf, src);"}]]}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "integer column" hint: labels are never missing
        signature = infer_signature(example, output, params={"threshold": scorer.threshold, "lines": 0, "line_method": ""})
    signature = _lines_optional(signature)
    with tempfile.TemporaryDirectory(prefix="streamguard-model-") as temporary, warnings.catch_warnings():
        # predict has no type hints on purpose (the signature is the schema): MLflow's nudge is noise.
        warnings.filterwarnings("ignore", message=".*type hints.*", category=UserWarning)
        bundle_path = Path(temporary) / f"{scorer.track}_ensemble.pt"
        atomic_torch_save(scorer_bundle(scorer), bundle_path)
        yield {
            "python_model": str(Path(__file__).with_name("mlflow_model.py")),
            "artifacts": {SCORER_ARTIFACT: str(bundle_path)},
            "code_paths": [str(Path(streamguard.__file__).parent)],
            "signature": signature,
            "input_example": example,
            "pip_requirements": requirements,
            "metadata": {"track": scorer.track, "seeds": len(scorer.checkpoints), "threshold": scorer.threshold},
        }


def save_servable_model(scorer: EnsembleScorer, path: str | Path, log_as: str | None = None) -> str | None:
    """Write the MLflow model directory at ``path``, replacing an older one only once the new one
    is complete; with ``log_as`` and an active MLflow run, log the same model there too.

    Returns ``runs:/<run id>/<log_as>`` when the model was logged, else None.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    run = mlflow.active_run() if log_as else None
    try:
        shutil.rmtree(staging)  # save_model wants a fresh directory
        with _model_arguments(scorer) as arguments:
            mlflow.pyfunc.save_model(path=str(staging), **arguments)
            if run is not None:
                mlflow.pyfunc.log_model(name=log_as, **arguments)
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return f"runs:/{run.info.run_id}/{log_as}" if run is not None else None
