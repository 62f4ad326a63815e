"""fusion: one modular pipeline per seed (fusion.seed_<s>) over that seed's branch checkpoints."""

from kedro.pipeline import Pipeline, node

from streamguard.pipelines.common import bind_seed, per_seed, score
from streamguard.pipelines.fusion.nodes import plot_curves, predict, train


def _seed_pipeline(seed: int) -> Pipeline:
    return Pipeline(
        [
            node(
                bind_seed(train, seed),
                inputs=[
                    f"transformer.seed_{seed}.checkpoint",
                    f"gnn.seed_{seed}.checkpoint",
                    "train_functions",
                    "valid_functions",
                    "train_graphs",
                    "valid_graphs",
                    "params:fusion",
                    "params:baseline",
                    f"fusion.seed_{seed}.training_state", f"fusion.seed_{seed}.collapse_report",
                ],
                outputs=["checkpoint", "history"],
                name="train",
            ),
            node(
                predict,
                inputs=["checkpoint", "valid_functions", "valid_graphs", "test_functions", "test_graphs"],
                outputs=["valid_logits", "test_logits"],
                name="predict",
            ),
            node(score, inputs=["valid_logits", "test_logits", "checkpoint", "params:sweep"], outputs="metrics", name="score"),
            node(bind_seed(plot_curves, seed), inputs="history", outputs="training_curves", name="plot_curves"),
        ]
    )


def create_pipeline(seeds: list[int] = (0,), **kwargs) -> Pipeline:
    return per_seed("fusion", seeds, _seed_pipeline)
