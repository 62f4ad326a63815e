"""Kedro glue: runners beyond one process (``DaskRunner`` fans a pipeline's nodes out over a Dask cluster).

May import: any library package. Nothing below the glue imports it.
"""

from streamguard.runners.dask_runner import DaskRunner

__all__ = ["DaskRunner"]
