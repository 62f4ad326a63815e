"""MLflow logging that works with or without an active run (plain scripts, tests, notebooks).

May import: evaluation, runtime, config.
"""
