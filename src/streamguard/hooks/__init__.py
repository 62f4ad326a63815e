"""Kedro glue: run hooks (preset checks, MLflow run names and tags, tracking-server probe, output locations).

May import: any library package. Nothing below the glue imports it.
"""
