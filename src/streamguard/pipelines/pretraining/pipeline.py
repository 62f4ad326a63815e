"""pretraining: MLM on unlabelled C (train split + configured corpora) -> ``pretraining.encoder``.

Not part of ``__default__``: run it once (``kedro run --pipeline pretraining``), then train the
transformer (and so fusion) from it with ``--params transformer.init_from=pretraining`` or the
``devign_cpu_pretrained`` bundle.
"""

from kedro.pipeline import Pipeline, node

from streamguard.pipelines.pretraining.nodes import plot_curves, pretrain


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                pretrain,
                inputs=["train_functions", "params:pretraining", "pretraining.training_state"],
                outputs=["pretraining.encoder", "pretraining.history", "pretraining.metrics"],
                name="pretrain",
                namespace="pretraining",
            ),
            node(
                plot_curves,
                inputs="pretraining.history",
                outputs="pretraining.curves",
                name="plot_curves",
                namespace="pretraining",
            ),
        ]
    )
