"""What one running server is configured with, gathered from the command line and environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

#: The contract's default body limit: 2 GiB.
DEFAULT_MAX_BODY_BYTES = 2 * 1024**3
#: JSON bodies are parsed in memory (``audio.content`` is for small files), so they get a smaller cap.
DEFAULT_MAX_JSON_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class ServerSettings:
    """Everything the app needs; built once by the CLI (or a test) and never mutated."""

    data_dir: Path
    #: User name to password; kept out of the repr, so a logged or printed settings object holds no secret.
    users: dict[str, str] = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 8765
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES
    #: Bytes of JSON bodies held in memory at once over all requests (None: twice ``max_json_bytes``); a body
    #: that does not fit beside the others is answered ``503`` with ``Retry-After``.
    max_json_buffered_bytes: int | None = None
    #: Wall-clock limit for one URL download, in seconds.
    download_timeout: float = 300.0
    #: Most assets waiting or in progress at once; past it submissions get ``429`` with ``Retry-After``.
    max_queue: int = 1000
    #: Seconds allowed for one callback POST attempt.
    callback_timeout: float = 10.0
    #: Least time an asset stays ``processing`` after its submission, as a busy real service would keep it
    #: (for developing DAGs that must wait); recognition is not slowed and holds no slot meanwhile.
    min_latency: float = 0.0
    #: Fetch ``audio.url`` from, and POST callbacks to, loopback, private and link-local addresses too (a
    #: development setup whose media store listens on 127.0.0.1); off, only global addresses are reached.
    allow_private_urls: bool = False
    #: A directory of earlier recognitions by media SHA-256 (``recognition_cache``): the same media again is
    #: answered from it without recognising. None: every file is recognised.
    recognition_cache: Path | None = None

    @property
    def json_budget_bytes(self) -> int:
        return self.max_json_buffered_bytes or 2 * self.max_json_bytes
