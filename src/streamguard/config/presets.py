"""Named presets: bundles of track settings picked with ``kedro run --params preset=<name>``.

Each track's parameters file holds a ``<track>_presets`` catalog and ``_<track>_defaults``.
The ``sg.preset`` config resolver merges the chosen preset over the defaults while the config is
loaded, so dotted runtime overrides (``--params transformer.training.lr=1e-4``) still win over
the preset. Preset names are unique across tracks: a preset of another track leaves this track
on its default preset, and a name no track knows is an error listing the known ones.

A *bundle* (``preset_bundles`` in parameters.yml) names one preset per track, so one
``--params preset=devign_cpu`` sets every track for a recipe (tracks it does not name keep their
default preset).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PRESET_CATALOG_SUFFIX = "_presets"
BUNDLES_KEY = "preset_bundles"


class UnknownPresetError(ValueError):
    """Raised for a preset name that no track defines."""


def apply_preset(track: str, defaults: Any, presets: Any, chosen: str | None, default: str, bundles: Any = None) -> Any:
    """OmegaConf resolver: ``defaults`` deep-merged with the preset chosen for ``track``.

    ``chosen`` may name a bundle (``bundles``), which picks this track's preset by name.
    """
    from omegaconf import OmegaConf

    if chosen is not None and bundles and chosen in bundles:
        chosen = bundles[chosen].get(track)
    name = chosen if chosen is not None and chosen in presets else default
    if name not in presets:
        raise UnknownPresetError(
            f"default preset {default!r} of track {track!r} is not in {track}{PRESET_CATALOG_SUFFIX}"
            f" (known: {', '.join(sorted(presets))})"
        )
    overrides = OmegaConf.masked_copy(presets[name], [k for k in presets[name] if k != "description"])
    merged = OmegaConf.merge(defaults, overrides)
    merged["preset"] = name
    return merged


def preset_catalogs(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """All preset catalogs in the parameters, keyed by track."""
    return {
        key[: -len(PRESET_CATALOG_SUFFIX)]: dict(value)
        for key, value in params.items()
        if key.endswith(PRESET_CATALOG_SUFFIX) and isinstance(value, Mapping)
    }


def known_presets(params: Mapping[str, Any]) -> dict[str, str]:
    """Preset name -> track, across every track."""
    return {name: track for track, catalog in preset_catalogs(params).items() for name in catalog}


def preset_bundles(params: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Bundle name -> {track: preset}; every preset a bundle names must exist in that track's catalog."""
    bundles = {str(name): dict(value or {}) for name, value in dict(params.get(BUNDLES_KEY) or {}).items()}
    catalogs = preset_catalogs(params)
    for name, members in bundles.items():
        for track, preset in members.items():
            if preset not in catalogs.get(track, {}):
                raise UnknownPresetError(f"preset bundle {name!r} names {track} preset {preset!r}, which {track}{PRESET_CATALOG_SUFFIX} does not define")
    return bundles


def validate_preset_name(params: Mapping[str, Any]) -> str | None:
    """Fail fast, with the list of known presets, when ``params['preset']`` names none."""
    chosen = params.get("preset")
    if chosen is None:
        return None
    known = known_presets(params)
    bundles = preset_bundles(params)
    if chosen in bundles:
        return chosen
    if chosen not in known:
        listing = "\n".join(
            f"  {track}: {', '.join(sorted(catalog))}"
            for track, catalog in sorted(preset_catalogs(params).items())
        )
        if bundles:
            listing += "\n  bundles (every track at once): " + ", ".join(sorted(bundles))
        raise UnknownPresetError(f"Unknown preset {chosen!r}. Known presets by track:\n{listing}")
    return chosen


def plain(value: Any) -> Any:
    """OmegaConf/Mapping params to plain dicts and lists (storable with weights_only loading, hashable as JSON)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value
