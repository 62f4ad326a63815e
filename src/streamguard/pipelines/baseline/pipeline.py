"""baseline: TF-IDF over code tokens + logistic regression, as ``baseline.seed_0``.

The baseline is deterministic, so it runs once (seed 0, whatever ``seeds`` says); the namespace
makes the catalog's ``{track}.seed_{seed}.*`` factories write its logits and metrics like any track.
"""

from kedro.pipeline import Pipeline, node

from streamguard.pipelines.baseline.nodes import fit_and_score
from streamguard.pipelines.common import bind_seed, per_seed

BASELINE_SEED = 0


def _seed_pipeline(seed: int) -> Pipeline:
    return Pipeline(
        [
            node(  # one node, so its metrics are written before the first long training node starts
                bind_seed(fit_and_score, seed),
                inputs=["train_functions", "valid_functions", "test_functions", "params:baseline", "params:sweep"],
                outputs=["valid_logits", "test_logits", "metrics"],
                name="fit_and_score",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return per_seed("baseline", [BASELINE_SEED], _seed_pipeline)
