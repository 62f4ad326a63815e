"""Do a track's artefacts belong together? Checked by whatever combines them (scan, servable model).

``kedro run --pipeline fusion --params preset=fusion_high_recall`` after a default run retrains the
fusion seeds in place but leaves ``fusion.ensemble_metrics`` (and its validation-chosen threshold),
the final report and the servable model of the balanced preset behind; a scan then scored
high-recall weights against the balanced threshold without a word. These checks stop such a mix
with a message that names the stale artefact and the command that refreshes it:

* every seed's checkpoint of a track has the same configuration (``config_hash``, which the
  checkpoints carry): an interrupted preset switch leaves some seeds on the old preset;
* the track's ensemble metrics were computed after its checkpoints were trained (their
  ``timestamp`` against each checkpoint's ``created_at``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any


class StaleArtefactError(RuntimeError):
    """Artefacts that would be combined come from different runs or configurations."""


def _preset(checkpoint: Mapping[str, Any]) -> str:
    return str((checkpoint.get("config") or {}).get("preset") or "custom configuration")


def _when(text: Any) -> dt.datetime | None:
    """An ISO timestamp as an aware datetime (UTC when it has no zone), or None when absent or unreadable."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def refresh_command(track: str, preset: str | None = None) -> str:
    """The command that retrains ``track`` with one configuration and rebuilds what is combined from it."""
    chosen = f" --params preset={preset}" if preset and preset != "custom configuration" else ""
    return f"kedro run --pipelines {track},ensemble{chosen}"


def check_same_configuration(track: str, checkpoints: Sequence[Mapping[str, Any]], where: str = "data/06_models") -> None:
    """Stop when the seeds' checkpoints of ``track`` were trained with different configurations."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for checkpoint in checkpoints:
        groups.setdefault(str(checkpoint.get("config_hash")), []).append(checkpoint)
    if len(groups) <= 1:
        return
    described = "; ".join(
        f"seed(s) {', '.join(str(c.get('seed')) for c in members)}: {_preset(members[0])} (config {config_hash[:8]})"
        for config_hash, members in groups.items()
    )
    newest = max(checkpoints, key=lambda c: _when(c.get("created_at")) or dt.datetime.min.replace(tzinfo=dt.timezone.utc))
    raise StaleArtefactError(
        f"the {track} checkpoints in {where}/{track} mix configurations ({described}); an ensemble of them "
        f"would average different models. Retrain every seed with one configuration: `{refresh_command(track, _preset(newest))}`."
    )


def check_ensemble_current(
    track: str, checkpoints: Sequence[Mapping[str, Any]], ensemble_metrics: Mapping[str, Any], where: str
) -> None:
    """Stop when ``ensemble_metrics`` (at ``where``) predates a checkpoint it would be combined with."""
    computed = _when(ensemble_metrics.get("timestamp"))
    if computed is None:
        return  # older metrics files without a timestamp cannot be checked
    newer = [c for c in checkpoints if (_when(c.get("created_at")) or computed) > computed]
    if not newer:
        return
    seeds = ", ".join(str(c.get("seed")) for c in newer)
    threshold = ensemble_metrics.get("best_threshold_by_f1")
    raise StaleArtefactError(
        f"{where} is stale: it was computed at {computed:%Y-%m-%d %H:%M:%S} UTC, before the {track} checkpoint(s) of "
        f"seed(s) {seeds} were trained ({_preset(newer[0])}), so its threshold {threshold} belongs to other weights. "
        f"Refresh it (and the servable model and final report) with `kedro run --pipelines ensemble`."
    )


def check_track_artefacts(
    track: str, checkpoints: Sequence[Mapping[str, Any]], ensemble_metrics: Mapping[str, Any] | None, where: str
) -> None:
    """Both checks, for a consumer that combines a track's checkpoints with its ensemble's threshold."""
    check_same_configuration(track, checkpoints)
    if ensemble_metrics is not None:
        check_ensemble_current(track, checkpoints, ensemble_metrics, where)
