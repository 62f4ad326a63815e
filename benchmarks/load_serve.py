"""Load test of the served MLflow model: concurrent scoring requests on loopback.

    python benchmarks/load_serve.py                                  # data/06_models/fusion/servable_model
    python benchmarks/load_serve.py --model data/06_models/gnn/servable_model --requests 400 --concurrency 16
    python benchmarks/load_serve.py --model runs:/<run id>/fusion_model --functions-per-request 8

Starts ``mlflow models serve -m MODEL --env-manager local`` on 127.0.0.1 (nothing leaves the
machine), waits for ``/ping``, then fires ``--requests`` POST ``/invocations`` requests from
``--concurrency`` client threads, each with ``--functions-per-request`` generated C functions,
and prints requests/s, functions/s, latency percentiles and the error count (any non-200 answer,
timeout, malformed body or wrong number of predictions is an error). The server is stopped at
the end. Run ``kedro run`` first so that the model exists.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: str, port: int, workers: int, log_path: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model, "--env-manager", "local",
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    # mlflow runs `exec uvicorn ...`: the virtualenv's bin/ must be on PATH even when it is not activated.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if workers > 1:  # one core per worker process: torch threads in several processes fight over cores
        env.setdefault("OMP_NUM_THREADS", "1")
    log = log_path.open("w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_until_up(server: subprocess.Popen, port: int, log_path: Path, timeout: float = 180) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as ping:
                if ping.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the server did not answer /ping within {timeout:.0f}s:\n{log_path.read_text()[-3000:]}")


def make_bodies(requests: int, per_request: int, seed: int) -> list[bytes]:
    from streamguard.data.generator import generate_functions

    rows = generate_functions(requests * per_request, seed=seed)
    codes = [row["func"] for row in rows]
    return [
        json.dumps({"dataframe_records": [{"func": code} for code in codes[i * per_request : (i + 1) * per_request]]}).encode()
        for i in range(requests)
    ]


def send(port: int, body: bytes, expected: int, timeout: float) -> tuple[float, str | None]:
    """(latency s, error or None) of one scoring request."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            predictions = json.loads(response.read())["predictions"]
        if len(predictions) != expected:
            return time.perf_counter() - started, f"{len(predictions)} predictions for {expected} functions"
        if not all(0.0 <= row["probability"] <= 1.0 for row in predictions):
            return time.perf_counter() - started, "probability outside [0, 1]"
        return time.perf_counter() - started, None
    except urllib.error.HTTPError as error:
        return time.perf_counter() - started, f"HTTP {error.code}: {error.read()[:200]!r}"
    except (OSError, ValueError, KeyError) as error:
        return time.perf_counter() - started, f"{type(error).__name__}: {error}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(PROJECT_ROOT / "data/06_models/fusion/servable_model"))
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--functions-per-request", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (uvicorn)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)

    if "://" not in args.model and not (Path(args.model) / "MLmodel").exists():
        raise SystemExit(f"no MLflow model at {args.model}: run `kedro run` first (it writes data/06_models/<track>/servable_model)")
    bodies = make_bodies(args.requests, args.functions_per_request, args.seed)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="streamguard-load-") as temporary:
        log_path = Path(temporary) / "serve.log"
        server = start_server(args.model, port, args.workers, log_path)
        try:
            startup = wait_until_up(server, port, log_path)
            send(port, bodies[0], args.functions_per_request, args.timeout)  # warm-up, untimed
            lock, results = threading.Lock(), []

            def fire(body: bytes) -> None:
                outcome = send(port, body, args.functions_per_request, args.timeout)
                with lock:
                    results.append(outcome)

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                list(pool.map(fire, bodies))
            elapsed = time.perf_counter() - started
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    latencies = np.array([latency for latency, _ in results])
    errors = [error for _, error in results if error]
    print(f"model: {args.model}")
    print(f"server: mlflow models serve, {args.workers} worker(s), up in {startup:.1f}s; client: {args.concurrency} threads, loopback")
    print("| requests | functions/request | concurrency | requests/s | functions/s | p50 latency (s) | p95 latency (s) | max (s) | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {len(results)} | {args.functions_per_request} | {args.concurrency} | {len(results) / elapsed:.1f} "
        f"| {len(results) * args.functions_per_request / elapsed:.1f} | {np.percentile(latencies, 50):.3f} "
        f"| {np.percentile(latencies, 95):.3f} | {latencies.max():.3f} | {len(errors)} |"
    )
    for error in sorted(set(errors))[:10]:
        print(f"error: {error} (x{errors.count(error)})")
    return 1 if errors else 0


if __name__ == "__main__":
    from streamguard.runtime.offline import enforce_offline

    enforce_offline()
    sys.exit(main())
