"""The ``brain-local`` command: ``brain-local serve --host 127.0.0.1 --port 8765 --data-dir ./.brain
--user demo --password demo``.

Users come from ``--user``/``--password`` pairs (repeatable), a ``--users-file`` of ``user:password``
lines and the ``BRAIN_LOCAL_USERS="u1:p1,u2:p2"`` environment variable, all merged. uvicorn handles
SIGTERM and Ctrl-C: the server stops taking requests, ends its worker processes and exits 0; assets
in progress stay ``processing`` and are recognised again at the next start.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from airflow_provider_brain.local.settings import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_JSON_BYTES,
    ServerSettings,
)

USERS_ENV = "BRAIN_LOCAL_USERS"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _parse_pair(text: str, where: str) -> tuple[str, str]:
    user, sep, password = text.strip().partition(":")
    if not sep or not user or not password:
        raise SystemExit(f"brain-local: {where}: expected user:password")
    return user, password


def load_users(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """Merge users from the flags, the users file and the environment (later sources win)."""
    users: dict[str, str] = {}
    names, passwords = args.user or [], args.password or []
    if len(names) != len(passwords):
        raise SystemExit("brain-local: give one --password for each --user")
    users.update(zip(names, passwords, strict=True))
    if args.users_file:
        for number, line in enumerate(Path(args.users_file).read_text().splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                user, password = _parse_pair(line, f"{args.users_file} line {number}")
                users[user] = password
    for item in environ.get(USERS_ENV, "").split(","):
        if item.strip():
            user, password = _parse_pair(item, USERS_ENV)
            users[user] = password
    return users


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brain-local", description="A Brain-compatible local server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument("--data-dir", default="./.brain", help="where assets and media are kept")
    serve.add_argument("--user", action="append", help="a username (repeatable, paired with --password)")
    serve.add_argument("--password", action="append", help="the password of the --user at the same position")
    serve.add_argument("--users-file", help="a file of user:password lines")
    serve.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="recognition processes (default: CPU count)"
    )
    serve.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    serve.add_argument("--max-json-bytes", type=int, default=DEFAULT_MAX_JSON_BYTES)
    serve.add_argument(
        "--max-json-buffered-bytes",
        type=int,
        default=None,
        help="bytes of JSON bodies held in memory at once over all requests, past which one is answered 503"
        " (default: twice --max-json-bytes)",
    )
    serve.add_argument("--download-timeout", type=float, default=300.0, help="seconds per URL download")
    serve.add_argument("--max-queue", type=int, default=1000, help="most assets processing at once before 429")
    serve.add_argument(
        "--min-latency",
        type=float,
        default=0.0,
        help="seconds an asset stays processing at least after its submission, like a busy real service",
    )
    serve.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="fetch audio.url from and POST callbacks to loopback, private and link-local addresses too"
        " (e.g. an S3 emulator on 127.0.0.1); off by default, so a caller cannot reach the server's own network",
    )
    serve.add_argument(
        "--recognition-cache",
        metavar="DIR",
        help="keep each recognition in DIR by the media's SHA-256 and answer the same media again from it"
        " (entries hold transcripts; servers may share DIR)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def _serve(settings: ServerSettings, log_level: str) -> int:
    import uvicorn

    from airflow_provider_brain.local.app import create_app

    class Server(uvicorn.Server):
        """uvicorn's server, announcing the bound address once the socket really listens."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                print(f"Brain local server listening on http://{shown}:{port}", flush=True)

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # httpx logs every request's full URL at INFO; media and callback URLs may carry signatures.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        # Our own access log: uvicorn's would print query strings, which may carry signed_username tokens.
        access_log=False,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handlers that
    # were installed before it started. Catching it here makes a requested stop exit 0, not -15.
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, _f: received.append(s)) for sig in STOP_SIGNALS}
    try:
        Server(config).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Brain local server stopped", flush=True)
    return 0


def _recognition_cache(directory: str | None) -> Path | None:
    """``--recognition-cache``'s directory, made if missing; refuse to start on one that cannot be written."""
    if directory is None:
        return None
    path = Path(directory).resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SystemExit(f"brain-local: --recognition-cache {directory}: cannot create it ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise SystemExit(f"brain-local: --recognition-cache {directory}: not writable by this user")
    return path


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``brain-local`` console script."""
    args = build_parser().parse_args(argv)
    users = load_users(args, dict(os.environ))
    if not users:
        raise SystemExit(f"brain-local: no users: give --user and --password, --users-file or {USERS_ENV}")
    if args.workers < 1:
        raise SystemExit("brain-local: --workers must be at least 1")
    if args.min_latency < 0:
        raise SystemExit("brain-local: --min-latency must be 0 or more seconds")
    if args.max_json_buffered_bytes is not None and args.max_json_buffered_bytes < args.max_json_bytes:
        raise SystemExit("brain-local: --max-json-buffered-bytes must be at least --max-json-bytes")
    cache = _recognition_cache(args.recognition_cache)
    from airflow_provider_brain.local.store import DataDirInUse, lock_data_dir

    try:
        lock = lock_data_dir(Path(args.data_dir).resolve())
    except DataDirInUse as exc:
        raise SystemExit(f"brain-local: {exc}") from None
    settings = ServerSettings(
        data_dir=Path(args.data_dir).resolve(),
        users=users,
        host=args.host,
        port=args.port,
        workers=args.workers,
        max_body_bytes=args.max_body_bytes,
        max_json_bytes=args.max_json_bytes,
        max_json_buffered_bytes=args.max_json_buffered_bytes,
        download_timeout=args.download_timeout,
        max_queue=args.max_queue,
        min_latency=args.min_latency,
        allow_private_urls=args.allow_private_urls,
        recognition_cache=cache,
    )
    try:
        return _serve(settings, args.log_level)
    finally:
        lock.close()
