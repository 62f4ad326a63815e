"""The networks: RoBERTa-family encoder + head, typed-edge GNN, fusion head, code features, and the
plain-torch inference twins the serving scorer builds (``roberta_lite``, ``tokenizer_lite``, ``gnn_lite``).

May import: graphs, training, data, evaluation, runtime, config.
"""
