"""Keep every process StreamGuard starts off the network: no telemetry, no model hub."""

import os

OFFLINE_ENV = {
    "DO_NOT_TRACK": "true",
    "KEDRO_DISABLE_TELEMETRY": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def enforce_offline() -> None:
    """Set the offline/telemetry variables unless the user already chose a value."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
