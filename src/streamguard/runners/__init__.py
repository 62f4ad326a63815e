"""Kedro runners beyond one process: ``DaskRunner`` fans a pipeline's nodes out over a Dask cluster."""

from streamguard.runners.dask_runner import DaskRunner

__all__ = ["DaskRunner"]
