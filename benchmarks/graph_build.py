"""Code-graph build throughput: functions/s end to end, and how much of it is tree-sitter parsing.

    python benchmarks/graph_build.py --n 2000 --source generated
    python benchmarks/graph_build.py --n 2000 --source /work/shared/data/devign/valid.jsonl.gz

Parsing is timed alone on the same inputs (same parser), so ``parse share`` = parse time / end-to-end
time and the rest is the walk, control/data flow and array assembly.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from streamguard.graphs import GraphConfig, build_graphs, graph_stats
from streamguard.graphs.grammar import get_parser

# Typical 20-60 line functions, used when streamguard.data.generator is not available.
TEMPLATES = [
    """static int {fn}(const char *{src}, size_t {len})
{{
    char {buf}[64];
    size_t {i};
    int {count} = 0;
    if ({src} == NULL || {len} == 0)
        return -1;
    for ({i} = 0; {i} < {len}; {i}++) {{
        if ({src}[{i}] == '\\n')
            break;
        {buf}[{i}] = {src}[{i}];
        {count}++;
    }}
    {buf}[{i}] = '\\0';
    if ({count} > 32) {{
        char *{ctx} = strdup({buf});
        if ({ctx} == NULL)
            return -1;
        process_line({ctx}, {count});
        free({ctx});
    }} else {{
        printf("%s %d\\n", {buf}, {count});
    }}
    return {count};
}}""",
    """int {fn}(struct ctx *{ctx}, int {len})
{{
    int {i}, {count} = 0;
    unsigned char *{buf} = malloc({len});
    if (!{buf}) {{
        log_error({ctx}, "out of memory");
        return -ENOMEM;
    }}
    while ({count} < {len}) {{
        int {src} = read_byte({ctx});
        if ({src} < 0)
            goto fail;
        {buf}[{count}++] = {src};
    }}
    for ({i} = 0; {i} < {len}; {i} += 2) {{
        switch ({buf}[{i}]) {{
        case 0:
            {ctx}->zeros++;
            break;
        case 1:
            {ctx}->ones++;
        default:
            {ctx}->other += {buf}[{i}];
        }}
    }}
    free({buf});
    return {count};
fail:
    free({buf});
    return -1;
}}""",
    """void {fn}(int *{buf}, int {len})
{{
    int {i}, {count};
    long {ctx} = 0;
    do {{
        {count} = 0;
        for ({i} = 1; {i} < {len}; {i}++) {{
            if ({buf}[{i} - 1] > {buf}[{i}]) {{
                int {src} = {buf}[{i}];
                {buf}[{i}] = {buf}[{i} - 1];
                {buf}[{i} - 1] = {src};
                {count}++;
            }}
        }}
    }} while ({count} > 0);
    for ({i} = 0; {i} < {len}; {i}++) {{
        if ({buf}[{i}] < 0)
            continue;
        {ctx} += {buf}[{i}];
        if ({ctx} > LIMIT)
            break;
    }}
    report({ctx});
}}""",
    """static ssize_t {fn}(struct file *{ctx}, char __user *{buf}, size_t {len}, loff_t *{src})
{{
    struct dev_state *{count} = {ctx}->private_data;
    size_t {i};
    if (*{src} >= {count}->size)
        return 0;
    if (*{src} + {len} > {count}->size)
        {len} = {count}->size - *{src};
    mutex_lock(&{count}->lock);
    {i} = copy_to_user({buf}, {count}->data + *{src}, {len});
    mutex_unlock(&{count}->lock);
    if ({i}) {{
        pr_debug("copy failed: %zu bytes left\\n", {i});
        return -EFAULT;
    }}
    *{src} += {len};
    {count}->reads++;
    if ({count}->reads % 1024 == 0)
        dev_stats_flush({count});
    return {len};
}}""",
]
NAMES = ["data", "buf", "len", "size", "idx", "count", "ctx", "src", "dst", "tmp", "ptr", "n", "val", "res", "p", "q"]


def builtin_functions(n: int, seed: int) -> list[str]:
    """``n`` functions from the templates with shuffled identifiers (no two runs of a template alike)."""
    rng = random.Random(seed)
    functions = []
    for number, template in zip(range(n), itertools.cycle(TEMPLATES)):
        names = rng.sample(NAMES, 6)
        functions.append(
            template.format(fn=f"fn_{number}", src=names[0], len=names[1], buf=names[2], i=names[3], count=names[4], ctx=names[5])
        )
    return functions


def generated_functions(n: int, seed: int) -> tuple[list[str], str]:
    try:
        from streamguard.data.generator import generate_functions  # type: ignore[import-not-found]
    except ImportError:
        return builtin_functions(n, seed), "built-in templates (streamguard.data.generator not available)"
    items = list(generate_functions(n, seed))
    return [item["func"] if isinstance(item, dict) else str(item) for item in items], "streamguard.data.generator"


def jsonl_functions(path: Path, n: int) -> list[str]:
    opener: Callable = gzip.open if path.suffix == ".gz" else open
    functions = []
    with opener(path, "rt", encoding="utf-8") as stream:
        for line in stream:
            if line.strip():
                functions.append(json.loads(line)["func"])
                if len(functions) >= n:
                    break
    return functions


def time_parse_and_build(
    functions: list[str], config: GraphConfig, repeats: int, warmup: int = 50
) -> tuple[float, float, list]:
    """(best parse-only seconds, best end-to-end build_graphs seconds, the graphs) over ``repeats`` runs.

    Parsing is timed alone with the same parser on the same bytes, so parse / end-to-end is the
    share of graph building spent in tree-sitter. Shared with ``benchmarks/speed.py``.
    """
    tree_sitter_parser = get_parser()
    encoded = [code.encode("utf-8", errors="replace") for code in functions]
    build_graphs(functions[:warmup], config)
    parse_times, total_times, graphs = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for source in encoded:
            tree_sitter_parser.parse(source)
        parse_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        graphs = build_graphs(functions, config)
        total_times.append(time.perf_counter() - start)
    return min(parse_times), min(total_times), graphs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="number of functions")
    parser.add_argument("--source", default="generated", help="'generated' or a Devign-style .jsonl[.gz] with a 'func' field")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-nodes", type=int, default=512)
    parser.add_argument("--oversize-policy", default="truncate", choices=["truncate", "skip"])
    parser.add_argument("--include-anonymous", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="timings are the best of this many runs")
    args = parser.parse_args(argv)

    if args.source == "generated":
        functions, origin = generated_functions(args.n, args.seed)
    else:
        functions, origin = jsonl_functions(Path(args.source), args.n), args.source
    config = GraphConfig(max_nodes=args.max_nodes, oversize_policy=args.oversize_policy, include_anonymous=args.include_anonymous)
    parse_time, total_time, graphs = time_parse_and_build(functions, config, args.repeats)

    lines = [len(code.splitlines()) for code in functions]
    report = {
        "source": origin,
        "functions": len(functions),
        "lines_median": statistics.median(lines) if lines else 0,
        "functions_per_s": round(len(functions) / total_time, 1),
        "parse_only_functions_per_s": round(len(functions) / parse_time, 1),
        "parse_share": round(parse_time / total_time, 3),
        "graph_building_share": round(1 - parse_time / total_time, 3),
        "config": config.to_dict(),
        "graph_stats": graph_stats(graphs),
    }
    print(
        f"{report['functions']} functions from {origin} (median {report['lines_median']} lines): "
        f"{report['functions_per_s']} functions/s end to end; parse alone {report['parse_only_functions_per_s']}/s; "
        f"time share: parse {report['parse_share']:.0%}, graph building {report['graph_building_share']:.0%}"
    )
    print(json.dumps(report["graph_stats"], indent=2))
    return report


if __name__ == "__main__":
    main()
