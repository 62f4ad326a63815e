"""ensemble: per track, average the seeds' logits and score; then the final report across tracks."""

from functools import partial

from kedro.pipeline import Pipeline, node

from streamguard.pipelines.ensemble.nodes import ensemble, final_report

TRACKS = ("transformer", "gnn", "fusion")


def _ensemble_node(track: str, seeds: list[int]):
    func = partial(ensemble, track=track, seeds=list(seeds))
    func.__name__ = "ensemble"  # type: ignore[attr-defined]
    inputs = ["params:ensemble", "params:sweep"]
    for seed in seeds:
        inputs += [f"{track}.seed_{seed}.valid_logits", f"{track}.seed_{seed}.test_logits"]
    return node(
        func,
        inputs=inputs,
        outputs=[f"{track}.ensemble_metrics", f"{track}.ensemble_valid_logits", f"{track}.ensemble_test_logits"],
        name=f"{track}_ensemble",
        namespace="ensemble",
    )


def _report_node(seeds: list[int]):
    func = partial(final_report, tracks=list(TRACKS), seeds=list(seeds))
    func.__name__ = "final_report"  # type: ignore[attr-defined]
    inputs = []
    for track in TRACKS:
        inputs += [f"{track}.ensemble_metrics", f"{track}.ensemble_test_logits"]
        inputs += [f"{track}.seed_{seed}.metrics" for seed in seeds]
    return node(func, inputs=inputs, outputs=["final_report_table", "final_report", "report_figures"], name="final_report", namespace="ensemble")


def create_pipeline(seeds: list[int] = (0,), **kwargs) -> Pipeline:
    return Pipeline([*(_ensemble_node(track, seeds) for track in TRACKS), _report_node(seeds)])
