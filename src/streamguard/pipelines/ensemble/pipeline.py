"""ensemble: per track, average the seeds' logits and score; then the final report across tracks
(beside the lexical baseline, ``baseline.seed_0``)."""

from kedro.pipeline import Pipeline, node

from streamguard.pipelines.baseline.pipeline import BASELINE_SEED
from streamguard.pipelines.common import bind
from streamguard.pipelines.ensemble.nodes import ensemble, final_report, line_report, package_model, stacked_ensemble

TRACKS = ("transformer", "gnn", "fusion")
STACKED = "stacked"


def _ensemble_node(track: str, seeds: list[int]):
    func = bind(ensemble, track=track, seeds=list(seeds))
    inputs = {
        "params": "params:ensemble",
        "sweep": "params:sweep",
        # Only read when ensemble.recompute rebuilds a seed's missing logits from its checkpoint.
        "valid_functions": "valid_functions",
        "test_functions": "test_functions",
    }
    if track != "transformer":
        inputs |= {"valid_graphs": "valid_graphs", "test_graphs": "test_graphs"}
    for seed in seeds:
        inputs |= {
            f"valid_logits_{seed}": f"{track}.seed_{seed}.valid_logits",
            f"test_logits_{seed}": f"{track}.seed_{seed}.test_logits",
            f"checkpoint_{seed}": f"{track}.seed_{seed}.checkpoint_on_demand",
        }
    return node(
        func,
        inputs=inputs,
        outputs=[f"{track}.ensemble_metrics", f"{track}.ensemble_valid_logits", f"{track}.ensemble_test_logits"],
        name=f"{track}_ensemble",
        namespace="ensemble",
    )


def _package_node(track: str, seeds: list[int]):
    """The track's seed ensemble + threshold as an MLflow pyfunc model (``{track}.servable_model``)."""
    func = bind(package_model, track=track, seeds=list(seeds))
    inputs = {"ensemble_metrics": f"{track}.ensemble_metrics"}
    inputs |= {f"checkpoint_{seed}": f"{track}.seed_{seed}.checkpoint_on_demand" for seed in seeds}
    return node(func, inputs=inputs, outputs=f"{track}.servable_model", name=f"{track}_servable_model", namespace="ensemble")


def _line_report_node(track: str, seeds: list[int]):
    """A few of the track's top-ranked test functions with their lines shaded (``line_report_*``)."""
    func = bind(line_report, track=track, seeds=list(seeds))
    inputs = {"ensemble_metrics": f"{track}.ensemble_metrics", "test_logits": f"{track}.ensemble_test_logits",
              "test_functions": "test_functions", "params": "params:ensemble"}
    inputs |= {f"checkpoint_{seed}": f"{track}.seed_{seed}.checkpoint_on_demand" for seed in seeds}
    return node(func, inputs=inputs, outputs=["line_report_html", "line_report_figures"], name="line_report", namespace="ensemble")


def _stacking_node():
    """A meta-model over the baseline's and every track's ensemble logits, fitted on valid (``stacked.*``)."""
    inputs = {
        "params": "params:ensemble",
        "sweep": "params:sweep",
        "valid_baseline": f"baseline.seed_{BASELINE_SEED}.valid_logits",
        "test_baseline": f"baseline.seed_{BASELINE_SEED}.test_logits",
    }
    for track in TRACKS:
        inputs |= {f"valid_{track}": f"{track}.ensemble_valid_logits", f"test_{track}": f"{track}.ensemble_test_logits"}
    outputs = [f"{STACKED}.ensemble_metrics", f"{STACKED}.ensemble_valid_logits", f"{STACKED}.ensemble_test_logits"]
    return node(stacked_ensemble, inputs=inputs, outputs=outputs, name="stacked_ensemble", namespace="ensemble")


def _report_node(seeds: list[int]):
    """The cross-track report: reads every track's files (a track or seed that never ran is left out)."""
    func = bind(final_report, tracks=list(TRACKS), seeds=list(seeds))
    inputs = []
    for track in TRACKS:
        inputs += [f"{track}.ensemble_metrics", f"{track}.ensemble_test_logits"]
        inputs += [f"{track}.seed_{seed}.metrics" for seed in seeds]
    inputs += [f"{STACKED}.ensemble_metrics", f"{STACKED}.ensemble_test_logits"]
    # The lexical baseline's logits (missing -> None: the report then has no baseline row).
    inputs += ["params:sweep", f"baseline.seed_{BASELINE_SEED}.valid_logits", f"baseline.seed_{BASELINE_SEED}.test_logits"]
    return node(func, inputs=inputs, outputs=["final_report_table", "final_report", "report_figures"], name="final_report", namespace="ensemble")


def create_pipeline(seeds: list[int] = (0,), tracks: list[str] = TRACKS, **kwargs) -> Pipeline:
    """Seed ensembles and servable models of ``tracks``, then the stacking, the final report and the
    line report (of fusion, or of the first track when fusion is not ensembled).

    The stacking and the report read the other tracks' ensembles from disk when they exist, so
    ``kedro run --pipeline ensemble_fusion`` refreshes fusion and leaves the rest as they were.
    """
    unknown = [track for track in tracks if track not in TRACKS]
    if unknown or not tracks:
        raise ValueError(f"ensemble.tracks must name some of {list(TRACKS)}, got {list(tracks)}")
    return Pipeline(
        [
            *(_ensemble_node(track, seeds) for track in tracks),
            *(_package_node(track, seeds) for track in tracks),
            _stacking_node(),
            _report_node(seeds),
            _line_report_node("fusion" if "fusion" in tracks else tracks[0], seeds),
        ]
    )
