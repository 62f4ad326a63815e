"""Run one training node of the project in every process of an external launcher (multi-node).

``torchrun`` / ``accelerate launch`` / ``srun`` start the same command on every GPU of every node;
each process loads the node's inputs from the project's catalog (a folder every node sees), the
shared training loop finds ``WORLD_SIZE``/``RANK``/``MASTER_ADDR`` and trains data-parallel through
Accelerate, and only process 0 saves the node's outputs (checkpoint, history) to the catalog.
The rest of the pipeline then runs as usual (``kedro run --from-nodes <track>.seed_<s>.predict``).

    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint $HEAD:29500 \\
        -m streamguard.runners.train_node transformer.seed_0.train --params transformer.training.batch_size=64
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def _parse_params(text: str) -> dict[str, Any]:
    """``a.b=1,c=x`` as Kedro's ``--params`` would read it (values as YAML scalars)."""
    import yaml

    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        params[key.strip()] = yaml.safe_load(value)
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("node", help="a training node, e.g. transformer.seed_0.train")
    parser.add_argument("--params", default="", help="runtime parameters, as `kedro run --params`")
    parser.add_argument("--env", default=None, help="Kedro configuration environment")
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="project root (default: current directory)")
    args = parser.parse_args(argv)

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    rank = int(os.environ.get("RANK", "0"))
    bootstrap_project(args.project)
    with KedroSession.create(project_path=args.project, env=args.env, runtime_params=_parse_params(args.params)) as session:
        context = session.load_context()
        from kedro.framework.project import pipelines

        matches = [node for node in pipelines["__default__"].nodes if node.name == args.node]
        if not matches:
            parser.error(f"no node named {args.node!r} in the default pipeline")
        node = matches[0]
        catalog = context.catalog
        inputs = {name: catalog.load(name) for name in node.inputs}
        outputs = node.run(inputs)
        if rank == 0:  # every process trained its shard; one writes
            for name, value in outputs.items():
                catalog.save(name, value)
            print(f"{node.name}: saved {', '.join(sorted(outputs))} (world size {os.environ.get('WORLD_SIZE', '1')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
