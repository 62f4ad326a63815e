"""pretraining: masked-language-model pretraining of the from-scratch transformer encoder."""

from streamguard.pipelines.pretraining.pipeline import create_pipeline

__all__ = ["create_pipeline"]
