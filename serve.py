#!/usr/bin/env python
"""Start the groupscore HTTP service (FastAPI on uvicorn).

    python serve.py                                   # 127.0.0.1:8000, shipped default model
    python serve.py --host 0.0.0.0 --port 9000 --model models/mine --workers 2
    GROUPSCORE_TOKEN=... python serve.py              # require "Authorization: Bearer ..."

Every option can also come from the environment (the flag wins): GROUPSCORE_HOST, _PORT,
_MODEL, _WORKERS, _MAX_BODY_BYTES, _MAX_BATCH, _MAX_SCORE_MESSAGES, _MAX_TEXT_CHARS,
_LOG_REQUESTS, _TOPICS; the token only from GROUPSCORE_TOKEN or GROUPSCORE_TOKEN_FILE /
--token-file, never a flag, so it does not show in process listings or shell history.
"""

from __future__ import annotations

import argparse
import copy
import os
import signal
import sys

from classifier import GroupscoreError, load_model


def _exit_cleanly(signum: int, frame: object) -> None:
    sys.exit(0)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise GroupscoreError(f"{name} must be an integer, got {raw!r}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Serve the groupscore classifier over HTTP.")
    p.add_argument("--host", default=os.environ.get("GROUPSCORE_HOST", "127.0.0.1"),
                   help="interface to bind (default 127.0.0.1; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default 8000)")
    p.add_argument("--model", default=None, help="model directory (default: $GROUPSCORE_MODEL or the shipped model)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes, each loading its own copy of the model (default 1)")
    p.add_argument("--token-file", default=None, help="file whose first line is the bearer token")
    p.add_argument("--topics", default=None, help='JSON file {"group name": "topic description"}')
    p.add_argument("--max-body-bytes", type=int, default=None)
    p.add_argument("--max-batch", type=int, default=None, help="messages per /v1/classify/batch")
    p.add_argument("--max-score-messages", type=int, default=None, help="messages per /v1/score")
    p.add_argument("--max-text-chars", type=int, default=None, help="characters per message")
    p.add_argument("--log-requests", action="store_true", default=None,
                   help="log method, path, status and latency of each request (never bodies)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        port = args.port if args.port is not None else _env_int("GROUPSCORE_PORT", 8000)
        workers = args.workers if args.workers is not None else _env_int("GROUPSCORE_WORKERS", 1)
        if workers < 1:
            raise GroupscoreError(f"--workers must be at least 1, got {workers}")
        if not 0 <= port <= 65535:
            raise GroupscoreError(f"--port must be between 0 and 65535, got {port}")
        # Flags are written into the environment: multi-worker mode starts fresh processes that
        # rebuild the app from it (classifier.server.app_from_env), so both modes see the same settings.
        overrides = {
            "GROUPSCORE_MODEL": args.model,
            "GROUPSCORE_TOKEN_FILE": args.token_file,
            "GROUPSCORE_TOPICS": args.topics,
            "GROUPSCORE_MAX_BODY_BYTES": args.max_body_bytes,
            "GROUPSCORE_MAX_BATCH": args.max_batch,
            "GROUPSCORE_MAX_SCORE_MESSAGES": args.max_score_messages,
            "GROUPSCORE_MAX_TEXT_CHARS": args.max_text_chars,
            "GROUPSCORE_LOG_REQUESTS": "1" if args.log_requests else None,
        }
        for key, value in overrides.items():
            if value is not None:
                os.environ[key] = str(value)

        import uvicorn

        from classifier.server import ServerSettings, create_app, warm_up

        settings = ServerSettings.from_env()  # validates every limit before anything starts
        # Load in this process even with several workers: a bad model path fails here with one
        # line, instead of in every worker in a restart loop.
        model = load_model(os.environ.get("GROUPSCORE_MODEL") or None)
        warm_up(model)  # also proves the model predicts before any port opens
    except GroupscoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["groupscore"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    common = {"host": args.host, "port": port, "access_log": False, "log_config": log_config,
              "server_header": False}
    auth = "bearer token required" if settings.token else "no token (set GROUPSCORE_TOKEN to require one)"
    print(f"groupscore: serving on http://{args.host}:{port} with {workers} worker(s), {auth}", file=sys.stderr)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal so the process
    # would die "killed by signal". A finished graceful shutdown is a success: exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    if workers == 1:
        uvicorn.run(create_app(model, settings), **common)
    else:
        del model
        uvicorn.run("classifier.server:app_from_env", factory=True, workers=workers, **common)
    return 0


if __name__ == "__main__":
    sys.exit(main())
