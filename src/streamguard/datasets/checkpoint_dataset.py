"""Torch checkpoints as a catalog dataset: atomic writes, safe (weights-only) loads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from streamguard.datasets._files import missing_artefact


class TorchCheckpointDataset(AbstractDataset[dict, "dict | None"]):
    """A checkpoint dict (model state, optimizer, scheduler, RNG, epoch, config) in one ``.pt`` file.

    With ``allow_missing`` a missing file loads as ``None`` (after a warning saying how to produce
    it), so a consumer such as fusion can degrade instead of crashing. With ``on_demand`` loading
    returns a function that reads the file when called: the ensemble reads a checkpoint only when
    it must recompute that seed's logits.
    """

    def __init__(
        self,
        filepath: str,
        allow_missing: bool = False,
        how_to_produce: str = "",
        on_demand: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._filepath = Path(filepath)
        self._allow_missing = allow_missing
        self._on_demand = on_demand
        self._how_to_produce = how_to_produce
        self.metadata = metadata

    @property
    def filepath(self) -> Path:
        """Where the checkpoint lives (read by the scan index, which records it for later scans)."""
        return self._filepath

    @property
    def how_to_produce(self) -> str:
        """The command that writes it, quoted when it is missing."""
        return self._how_to_produce

    @property
    def on_demand(self) -> bool:
        """Whether loading returns a reader instead of the checkpoint."""
        return self._on_demand

    def load(self) -> dict | None | Callable[[], dict | None]:
        return self._read if self._on_demand else self._read()

    def _read(self) -> dict | None:
        from streamguard.training.checkpoint import safe_torch_load

        if self._allow_missing and not self._filepath.exists():
            missing_artefact(self._filepath, "Checkpoint", self._how_to_produce)
            return None
        return safe_torch_load(self._filepath, how_to_produce=self._how_to_produce)

    def save(self, data: dict) -> None:
        from streamguard.training.checkpoint import atomic_torch_save

        atomic_torch_save(data, self._filepath)

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "allow_missing": self._allow_missing, "on_demand": self._on_demand}


class TrainingStateDataset(AbstractDataset[None, Any]):
    """The folder of a training run's resumable per-epoch states, handed to the node as a store.

    Loading reads nothing: it returns a :class:`streamguard.training.resume.ResumeStore` for
    ``directory``, which the track's recipe uses to resume from and to save to every epoch.
    ``resume: false`` (the catalog passes ``--params resume=false`` through) ignores saved states.
    """

    def __init__(self, directory: str, resume: bool | str = True, metadata: dict[str, Any] | None = None) -> None:
        self._directory = Path(directory)
        self._resume = _as_bool(resume)
        self.metadata = metadata

    def load(self) -> Any:
        from streamguard.training.resume import ResumeStore

        return ResumeStore(self._directory, resume=self._resume)

    def save(self, data: Any) -> None:
        raise DatasetError(
            f"{self._directory} holds training states written by the training node itself; it is not a node output."
        )

    def _exists(self) -> bool:
        return True  # an empty folder is a valid store: training starts from scratch

    def _describe(self) -> dict[str, Any]:
        return {"directory": str(self._directory), "resume": self._resume}


def _as_bool(value: bool | str) -> bool:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"true", "yes", "1", "on"}:
            return True
        if lowered in {"false", "no", "0", "off"}:
            return False
        raise DatasetError(f"resume must be true or false, got {value!r}")
    return bool(value)
