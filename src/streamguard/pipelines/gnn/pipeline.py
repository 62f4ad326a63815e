"""gnn: graphs built once (shared), then one modular pipeline per seed (gnn.seed_<s>)."""

from kedro.pipeline import Pipeline, node

from streamguard.pipelines.common import bind_seed, per_seed, score
from streamguard.pipelines.gnn.nodes import build_graphs, plot_curves, predict, train


def _seed_pipeline(seed: int) -> Pipeline:
    # The transformer checkpoint is only read when gnn.encoder_features=cls (missing -> None).
    transformer_checkpoint = f"transformer.seed_{seed}.checkpoint"
    return Pipeline(
        [
            node(
                bind_seed(train, seed),
                inputs=[
                    "train_graphs",
                    "train_functions",
                    "valid_graphs",
                    "valid_functions",
                    "params:gnn",
                    "params:graphs",
                    transformer_checkpoint,
                    f"gnn.seed_{seed}.training_state", f"gnn.seed_{seed}.collapse_report",
                ],
                outputs=["checkpoint", "history"],
                name="train",
            ),
            node(
                predict,
                inputs=["checkpoint", "valid_graphs", "valid_functions", "test_graphs", "test_functions", transformer_checkpoint],
                outputs=["valid_logits", "test_logits"],
                name="predict",
            ),
            node(score, inputs=["valid_logits", "test_logits", "checkpoint", "params:sweep"], outputs="metrics", name="score"),
            node(bind_seed(plot_curves, seed), inputs="history", outputs="training_curves", name="plot_curves"),
        ]
    )


def create_pipeline(seeds: list[int] = (0,), **kwargs) -> Pipeline:
    graphs = Pipeline(
        [
            node(
                build_graphs,
                inputs=["train_functions", "valid_functions", "test_functions", "params:graphs"],
                outputs=["train_graphs", "valid_graphs", "test_graphs", "graph_report"],
                name="build_graphs",
            )
        ]
    )
    return graphs + per_seed("gnn", seeds, _seed_pipeline)
