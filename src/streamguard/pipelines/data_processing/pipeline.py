"""data_processing: validated, de-duplicated train/valid/test splits plus rejects and a report."""

from kedro.pipeline import Pipeline, node

from streamguard.pipelines.data_processing.nodes import deduplicate, load_and_validate


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            node(
                load_and_validate,
                inputs="params:data_processing",
                outputs=["validated_train", "validated_valid", "validated_test", "rejects", "load_counts"],
                name="load_and_validate",
            ),
            node(
                deduplicate,
                inputs=["validated_train", "validated_valid", "validated_test", "load_counts", "params:data_processing"],
                outputs=["train_functions", "valid_functions", "test_functions", "duplicates_dropped", "data_report"],
                name="deduplicate",
            ),
        ]
    )
