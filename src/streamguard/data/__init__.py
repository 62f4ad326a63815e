"""The data layer: generated and jsonl function rows, validation, deduplication, identifier normalisation, C function extraction.

May import: runtime, config.
"""
