#!/usr/bin/env python
"""Bounded load test of the HTTP service on loopback.

Starts ``serve.py`` on a free 127.0.0.1 port (or targets ``--url``), then runs two scenarios
with a few keep-alive client threads, each with a fixed request count and a time limit:

- ``classify``: single-message ``POST /v1/classify``;
- ``batch``: ``POST /v1/classify/batch`` with ``--batch-size`` (100) messages.

Prints a Markdown table (requests/s, messages/s, p50/p99 latency, errors) and exits non-zero
when any request failed or a scenario ran out of time. Texts are sampled at run time from the
shared datasets (``--texts``); nothing from them is stored.

    python bench/serve_load.py                            # default model, 1 worker
    python bench/serve_load.py --workers 2 --concurrency 4
    python bench/serve_load.py --url http://127.0.0.1:8000 --token-file token.txt
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path("/work/shared/datasets")
TOPIC = "私域运营 社群 用户增长 转化"


@dataclass
class Result:
    name: str
    planned: int
    messages_per_request: int
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    @property
    def done(self) -> int:
        return len(self.latencies) + self.errors

    def pct(self, q: float) -> float:
        """Nearest-rank percentile in milliseconds."""
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        k = max(0, min(len(xs) - 1, int(round(q / 100 * len(xs) + 0.5)) - 1))
        return xs[k] * 1000


def load_texts(directory: Path, limit: int, seed: int) -> list[str]:
    """Up to ``limit`` non-empty texts from ``*.jsonl`` files (field ``text``), shuffled."""
    texts: list[str] = []
    for path in sorted(directory.glob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            for line in itertools.islice(f, 3000):
                try:
                    text = json.loads(line).get("text")
                except (ValueError, AttributeError):
                    continue
                if isinstance(text, str) and text.strip():
                    texts.append(text[:500])
    if not texts:
        raise SystemExit(f"error: no texts found in {directory}/*.jsonl (use --texts DIR)")
    random.Random(seed).shuffle(texts)
    return texts[:limit]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"error: server exited with code {proc.returncode} before becoming healthy")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"error: {url} not healthy within {timeout:.0f} s")


def run_scenario(
    name: str, url: str, path: str, payloads: list[dict], count: int, concurrency: int,
    time_limit: float, headers: dict[str, str], messages_per_request: int,
) -> Result:
    result = Result(name, count, messages_per_request)
    counter = itertools.count()
    lock = threading.Lock()
    deadline = time.monotonic() + time_limit

    def worker() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            while time.monotonic() < deadline:
                i = next(counter)  # itertools.count is atomic under the GIL
                if i >= count:
                    return
                body = payloads[i % len(payloads)]
                t0 = time.perf_counter()
                try:
                    r = client.post(path, json=body)
                    ok, kind = r.status_code == 200, f"HTTP {r.status_code}"
                except httpx.HTTPError as err:
                    ok, kind = False, type(err).__name__
                dt = time.perf_counter() - t0
                with lock:
                    if ok:
                        result.latencies.append(dt)
                    else:
                        result.errors += 1
                        result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(time_limit + 35)  # a request in flight at the deadline may take its timeout
    result.elapsed = time.perf_counter() - t0
    return result


def table(results: list[Result], note: str) -> str:
    rows = [
        f"_{note}_",
        "",
        "| scenario | msgs/request | requests | errors | requests/s | messages/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ok = len(r.latencies)
        rps = ok / r.elapsed if r.elapsed else 0.0
        rows.append(
            f"| {r.name} | {r.messages_per_request} | {r.done}/{r.planned} | {r.errors} | {rps:.1f} | "
            f"{rps * r.messages_per_request:.0f} | {r.pct(50):.1f} | {r.pct(99):.1f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="target a running server instead of starting one")
    p.add_argument("--model", help="model directory for the started server (default: shipped model)")
    p.add_argument("--workers", type=int, default=1, help="server worker processes (started server only)")
    p.add_argument("--token-file", help="bearer token file (else $GROUPSCORE_TOKEN)")
    p.add_argument("--requests", type=int, default=1000, help="single-message requests")
    p.add_argument("--batches", type=int, default=50, help="batch requests")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=4, help="client threads")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds per scenario")
    p.add_argument("--texts", type=Path, default=DATASETS, help="directory of *.jsonl with a text field")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)

    texts = load_texts(args.texts, 5000, args.seed)
    singles = [{"text": t, "topic": TOPIC} for t in texts]
    batches = [
        {"messages": [{"text": t} for t in texts[i : i + args.batch_size]], "topic": TOPIC}
        for i in range(0, max(1, len(texts) - args.batch_size + 1), args.batch_size)
    ]

    token = None
    if args.token_file:
        token = Path(args.token_file).read_text(encoding="utf-8").strip().splitlines()[0]
    token = token or os.environ.get("GROUPSCORE_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    proc: subprocess.Popen | None = None
    url = args.url.rstrip("/") if args.url else None
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, str(ROOT / "serve.py"), "--port", str(port), "--workers", str(args.workers)]
        if args.model:
            cmd += ["--model", args.model]
        # Large enough for the batches we send, whatever the environment says.
        env = {**os.environ, "GROUPSCORE_MAX_BATCH": str(max(args.batch_size, 1000))}
        # A file, not a pipe: an unread pipe could fill up and stall the server.
        server_log = tempfile.TemporaryFile()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=server_log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(url, proc, 120)
        info = httpx.get(f"{url}/v1/model", headers=headers, timeout=10)
        info.raise_for_status()
        model = info.json()
        # Warm-up: first requests pay for lazy imports, caches and connection setup.
        with httpx.Client(base_url=url, headers=headers, timeout=30) as c:
            for body in singles[:20]:
                c.post("/v1/classify", json=body)
            c.post("/v1/classify/batch", json=batches[0])
        results = [
            run_scenario("classify (1 message)", url, "/v1/classify", singles, args.requests,
                         args.concurrency, args.time_limit, headers, 1),
            run_scenario(f"classify/batch ({args.batch_size} messages)", url, "/v1/classify/batch", batches,
                         args.batches, args.concurrency, args.time_limit, headers, args.batch_size),
        ]
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode not in (0, -signal.SIGTERM):
                server_log.seek(0)
                err = server_log.read().decode(errors="replace")
                print(f"warning: server exited with code {proc.returncode}\n{err[-2000:]}", file=sys.stderr)

    note = (
        f"{model.get('backend', '?')} model {model.get('version', '')}, {args.workers} worker(s) "
        f"({'external server' if args.url else 'started here'}), {args.concurrency} client threads, "
        f"loopback, {os.cpu_count()} CPUs"
    )
    print(table(results, note))
    failed = sum(r.errors for r in results)
    short = [r.name for r in results if r.done < r.planned]
    for r in results:
        if r.error_kinds:
            print(f"errors in {r.name}: {r.error_kinds}", file=sys.stderr)
    if short:
        print(f"time limit reached before all requests were sent: {', '.join(short)}", file=sys.stderr)
    return 1 if failed or short else 0


if __name__ == "__main__":
    sys.exit(main())
