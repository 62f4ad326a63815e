"""Using trained models: the ensemble scorer, ``streamguard scan`` (text, JSON, SARIF), the servable MLflow model, consistency checks.

May import: explain, tracks, models, graphs, training, tracking, data, evaluation, runtime, config.
"""
