"""Known-harmless third-party warnings, filtered at the source so the real warnings stand out.

A default ``kedro run`` used to print about 43 WARNING lines, almost all of them the ones below;
each is listed with why it is harmless here. Everything else still shows. Called from
``settings.py`` (every Kedro command: run, viz, ipython) and by ``streamguard scan`` before it
loads a model.
"""

from __future__ import annotations

import logging
import re
import warnings

#: (message regex, why it is harmless for StreamGuard)
KNOWN_HARMLESS_WARNINGS: tuple[tuple[str, str], ...] = (
    (
        r"register_new_resolver\(\) is deprecated",
        "OmegaConf's deprecation, raised inside Kedro 1.7 and kedro-mlflow 2.0 when they register config "
        "resolvers (ours included); nothing to change on our side until they move to register_resolver().",
    ),
    (
        r"One or more dataset names contain '\.' characters",
        "Kedro's naming advice: `<track>.seed_<s>.<artefact>` are the names Kedro's own namespaced "
        "pipelines give, and the catalog's dataset factories are written for them.",
    ),
    (
        r".*Add type hints to the `predict` method",
        "MLflow's hint for models without a signature: the servable model declares an explicit one "
        "(func: string in; probability, label, threshold out), so type-hint inference is not needed.",
    ),
)


_KNOWN = re.compile("|".join(f"(?:{message})" for message, _ in KNOWN_HARMLESS_WARNINGS))


def is_known_harmless(message: object) -> bool:
    return _KNOWN.search(str(message)) is not None


class _KnownWarningsFilter(logging.Filter):
    """For Kedro's ``logging.captureWarnings``: warnings arrive as records of the ``py.warnings`` logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not is_known_harmless(record.getMessage())


def silence_known_warnings() -> None:
    """Install the filters; idempotent.

    Three places, because MLflow checks a model class's type hints inside its own
    ``catch_warnings(); simplefilter("once")`` block, which overrides ``warnings.filterwarnings``:
    the filter list (everything else), ``warnings.showwarning`` (MLflow's block keeps it) and the
    ``py.warnings`` logger (where Kedro's logging sends warnings).
    """
    for message, _why in KNOWN_HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)
    show = warnings.showwarning
    # Not around logging's hook (Kedro's captureWarnings): the py.warnings filter covers that path,
    # and a wrapper there would make every warning's log line point at this file.
    if not getattr(show, "_streamguard_quiet", False) and getattr(show, "__module__", "") != "logging":

        def showwarning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' hook
            if not is_known_harmless(message):
                show(message, category, filename, lineno, file, line)

        showwarning._streamguard_quiet = True  # type: ignore[attr-defined]
        warnings.showwarning = showwarning
    py_warnings = logging.getLogger("py.warnings")
    if not any(isinstance(existing, _KnownWarningsFilter) for existing in py_warnings.filters):
        py_warnings.addFilter(_KnownWarningsFilter())
