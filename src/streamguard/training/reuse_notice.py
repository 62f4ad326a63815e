"""What a training node is about to reuse, said when the node starts.

Re-running a finished pipeline reuses each seed's finished training state, but the training
store only looks at it after the node has prepared its data and models (tokenizer, datasets,
branch embeddings: tens of seconds per seed), so the run used to sit silent for that long. This
reads the saved state's header first (a single ``torch.load`` of ``last.pt``) and says what is
there. Whether it is actually reused still depends on the config/data/code identity, which the
store checks and reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LAST_STATE = "last.pt"


def reuse_notice(label: str, store: Any) -> str | None:
    """One line about the saved state of ``store`` (a ``ResumeStore``), or None when there is none."""
    directory = getattr(store, "directory", None)
    if directory is None:
        return None
    last = Path(directory) / LAST_STATE
    kept = Path(directory) / "configs"
    others = sum(1 for folder in kept.iterdir() if folder.is_dir()) if kept.is_dir() else 0
    if not last.is_file():
        if others:
            return (f"{label}: {others} other configuration(s) trained before are kept in {kept}: one matching this "
                    "run's config is moved back and reused.")
        return None
    if not getattr(store, "resume", True):
        return f"{label}: resume=false: the saved training state in {directory} is ignored and the seed trains from scratch."
    from streamguard.training.checkpoint import safe_torch_load

    try:
        payload = safe_torch_load(last)
        epoch, finished, saved = int(payload["epoch"]), bool(payload.get("finished")), str(payload.get("saved_at", ""))[:19]
    except Exception:  # the store reports unreadable states itself, with what it falls back to
        return None
    when = f", saved {saved.replace('T', ' ')} UTC" if saved else ""
    if others:
        when += f"; {others} other configuration(s) kept in {kept}, reused if one matches"
    if finished:
        return (
            f"{label}: a finished training state (epoch {epoch}{when}) is in {directory}: it is reused, no epoch is "
            "trained again, if this run's config, data and code match it (checked once the data and model are prepared)."
        )
    return f"{label}: an interrupted training state (epoch {epoch}{when}) is in {directory}: training resumes from it if this run's config, data and code match."
