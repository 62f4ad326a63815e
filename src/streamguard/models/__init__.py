"""The networks: RoBERTa-family encoder + head, typed-edge GNN, fusion head, code features.

May import: graphs, training, data, evaluation, runtime, config.
"""
