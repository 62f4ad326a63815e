"""Kedro project settings for StreamGuard."""

from omegaconf.resolvers import oc

from streamguard.hooks.run import CpuThreadsHooks, DataReportHooks, PresetHooks, ReuseNoticeHooks, StaleEnsembleHooks
from streamguard.config.presets import apply_preset
from streamguard.runtime.offline import enforce_offline
from streamguard.runtime.quiet import silence_known_warnings
from streamguard.hooks.tracking import OutputLocationHooks, TrackingProbeHooks

enforce_offline()
silence_known_warnings()

HOOKS = (
    PresetHooks(),
    TrackingProbeHooks(),
    OutputLocationHooks(),
    CpuThreadsHooks(),
    DataReportHooks(),
    StaleEnsembleHooks(),
    ReuseNoticeHooks(),
)

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # conf/local/parameters.yml may override single nested values (transformer.training.epochs).
    "merge_strategy": {"parameters": "soft"},
    # oc.env lets mlflow.yml honour MLFLOW_TRACKING_URI (a server URI) with sqlite as the default.
    "custom_resolvers": {"oc.env": oc.env, "sg.preset": apply_preset},
}
