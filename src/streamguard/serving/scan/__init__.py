"""``streamguard scan``: find C functions in a source tree, score them with a trained track, report.

Scoring is injected (``Scorer``), so this package stays free of the model stack at import time.
"""

from streamguard.serving.scan.cli import Scorer, ScorerFactory, main, run_scan
from streamguard.data.extract import FileProblem, FunctionRecord, extract_functions, iter_source_files
from streamguard.serving.scan.report import ScanResult, ranked, to_json, to_sarif, to_text

__all__ = [
    "FileProblem",
    "FunctionRecord",
    "ScanResult",
    "Scorer",
    "ScorerFactory",
    "extract_functions",
    "iter_source_files",
    "main",
    "ranked",
    "run_scan",
    "to_json",
    "to_sarif",
    "to_text",
]
