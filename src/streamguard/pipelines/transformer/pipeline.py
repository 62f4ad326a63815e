"""transformer: one modular pipeline per seed (transformer.seed_<s>): train -> predict -> score."""

from kedro.pipeline import Pipeline, node

from streamguard.pipelines.common import bind_seed, per_seed, score
from streamguard.pipelines.transformer.nodes import plot_curves, predict, train


def _seed_pipeline(seed: int) -> Pipeline:
    return Pipeline(
        [
            node(
                bind_seed(train, seed),
                inputs=["train_functions", "valid_functions", "params:transformer", f"transformer.seed_{seed}.training_state", f"transformer.seed_{seed}.collapse_report", "pretraining.encoder"],
                outputs=["checkpoint", "history"],
                name="train",
            ),
            node(
                predict,
                inputs=["checkpoint", "valid_functions", "test_functions"],
                outputs=["valid_logits", "test_logits"],
                name="predict",
            ),
            node(score, inputs=["valid_logits", "test_logits", "checkpoint", "params:sweep"], outputs="metrics", name="score"),
            node(bind_seed(plot_curves, seed), inputs="history", outputs="training_curves", name="plot_curves"),
        ]
    )


def create_pipeline(seeds: list[int] = (0,), **kwargs) -> Pipeline:
    return per_seed("transformer", seeds, _seed_pipeline)
