"""Kedro glue: one modular pipeline per track and seed; thin nodes over the library packages.

May import: any library package, datasets. Nothing below the glue imports it.
"""
