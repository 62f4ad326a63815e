"""Where a seed's collapse report goes (JSON + text), handed to the training node as a writer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from streamguard.datasets._files import atomic_write


class CollapseReportWriter:
    """Writes ``collapse_report.json`` and ``collapse_report.txt`` into a folder and logs both to MLflow."""

    def __init__(self, folder: Path, mlflow_dir: str) -> None:
        self.folder, self.mlflow_dir = Path(folder), mlflow_dir

    def write(self, report: dict, text: str) -> list[Path]:
        from streamguard.tracking.runs import log_artifact

        paths = [self.folder / "collapse_report.json", self.folder / "collapse_report.txt"]
        atomic_write(paths[0], lambda tmp: tmp.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8"))
        atomic_write(paths[1], lambda tmp: tmp.write_text(text, encoding="utf-8"))
        for path in paths:
            log_artifact(path, self.mlflow_dir)
        return paths

    def clear(self) -> None:
        """Remove a report left by an earlier, collapsed run of this seed."""
        for name in ("collapse_report.json", "collapse_report.txt"):
            (self.folder / name).unlink(missing_ok=True)


class CollapseReportDataset(AbstractDataset[dict, Any]):
    """A seed's collapse report. Loading returns a :class:`CollapseReportWriter` (the training node writes the
    report when it stops a collapsed seed, so it is an input, like the resumable training states). A seed that
    then trains without collapsing removes the stale report (``clear``).
    """

    def __init__(self, filepath: str, mlflow_dir: str = "", metadata: dict[str, Any] | None = None) -> None:
        self._folder = Path(filepath)
        self._mlflow_dir = mlflow_dir
        self.metadata = metadata

    def load(self) -> CollapseReportWriter:
        return CollapseReportWriter(self._folder, self._mlflow_dir)

    def save(self, data: dict) -> None:
        from streamguard.training.collapse import report_text

        self.load().write(data, report_text(data, str(data.get("run", ""))))

    def _exists(self) -> bool:
        return True  # the writer is always available; the files exist only after a collapse

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._folder), "mlflow_dir": self._mlflow_dir}
