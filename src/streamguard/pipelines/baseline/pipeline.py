"""baseline: TF-IDF over code tokens + logistic regression, as ``baseline.seed_0``.

The baseline is deterministic, so it runs once (seed 0, whatever ``seeds`` says); the namespace
makes the catalog's ``{track}.seed_{seed}.*`` factories write its logits and metrics like any track.
"""

from kedro.pipeline import Pipeline, node

from streamguard.pipelines.baseline.nodes import fit
from streamguard.pipelines.common import bind_seed, per_seed, score

BASELINE_SEED = 0


def _seed_pipeline(seed: int) -> Pipeline:
    return Pipeline(
        [
            node(
                bind_seed(fit, seed),
                inputs=["train_functions", "valid_functions", "test_functions", "params:baseline"],
                outputs=["valid_logits", "test_logits", "model_summary"],
                name="fit",
            ),
            node(score, inputs=["valid_logits", "test_logits", "model_summary", "params:sweep"], outputs="metrics", name="score"),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_seed("baseline", [BASELINE_SEED], _seed_pipeline)
