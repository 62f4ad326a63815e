"""Track recipes (baseline, transformer, gnn, fusion, pretraining): data -> model -> shared loop -> checkpoint -> logits.

May import: models, graphs, training, tracking, data, evaluation, runtime, config.

Plain Python (no Kedro): the pipelines' nodes, the notebook and ``streamguard scan`` call these.
"""
