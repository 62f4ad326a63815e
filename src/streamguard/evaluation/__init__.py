"""Logits to numbers: metrics and threshold sweeps, seed ensembles, stacking, bootstrap intervals, the final report and its figures.

May import: runtime, config.
"""
