"""Track recipes: compose backbone/graph builder, the shared training loop and checkpoints.

Plain Python (no Kedro): the pipelines' nodes, the notebook and ``streamguard scan`` call these.
"""
