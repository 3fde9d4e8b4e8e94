"""Where and how the hook connects to Brain: ``ClientSettings``, read once from the Airflow connection."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_BASE_URL = "https://brain.deepgram.com"
DEFAULT_TIMEOUT = 300.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 5


@dataclass(frozen=True)
class ClientSettings:
    """Everything a request needs, read once from the Airflow connection."""

    base_url: str
    login: str | None
    password: str | None = field(repr=False)
    timeout: float
    verify: bool | str
    proxies: dict[str, str] | None
    max_retries: int
    #: Whether the server honours the ``Idempotency-Key`` header (the contract's extension; the local server
    #: does). If not, an upload whose answer was lost is not sent again: nothing could tell its asset apart.
    server_idempotency: bool = True
    #: ``"basic"`` (Brain: login and password) or ``"token"`` (Deepgram: ``Authorization: Token <password>``).
    auth_scheme: str = "basic"

    @property
    def auth(self) -> tuple[str, str] | None:
        """Basic auth for the HTTP clients (``None`` with the token scheme, which sends ``auth_headers``)."""
        return (self.login, self.password or "") if self.login and self.auth_scheme == "basic" else None

    @property
    def auth_headers(self) -> dict[str, str]:
        """Headers every request carries for the token scheme (an API key in the password); none for basic."""
        if self.auth_scheme == "token" and self.password:
            return {"Authorization": f"Token {self.password}"}
        return {}

    def url(self, path: str) -> str:
        return self.base_url + path


def base_url_from_connection(
    host: str | None, schema: str | None, port: int | None, *, service: str = "Brain", default: str = DEFAULT_BASE_URL
) -> str:
    """Build the API's base URL from a connection's host (with or without scheme), schema and port.

    ``host="http://127.0.0.1:8765"``, or ``host="127.0.0.1", schema="http", port=8765``, both give
    ``http://127.0.0.1:8765``; an empty host gives ``default`` (the public ``https://brain.deepgram.com``).

    :param service: whose connection it is (``"Brain"``, ``"Deepgram"``), named in the errors.
    """
    if not host:
        return default
    if "://" not in host:
        scheme = schema if schema in ("http", "https") else "https"
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{service} connection host {host!r} is not an http(s) URL or host name")
    if parts.username or parts.password:
        raise ValueError(
            f"{service} connection host holds credentials (user:pass@host): put them in the connection's "
            "login and password fields, where Airflow masks them"
        )
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def settings_from_connection(
    conn: Any, extras: Mapping[str, Any], *, service: str = "Brain", default_url: str = DEFAULT_BASE_URL
) -> ClientSettings:
    """Turn an Airflow connection (and its already-parsed extras) into ``ClientSettings``.

    :param service: whose connection it is, named in the errors; ``default_url``: its URL when the host is empty.
    """
    verify = _extra(extras, "verify", True)
    if isinstance(verify, str) and verify.lower() in ("true", "false"):
        verify = verify.lower() == "true"
    proxies = extras.get("proxies") or None
    if proxies is not None and not isinstance(proxies, Mapping):
        raise ValueError(
            f'{service} connection extra \'proxies\' must be a JSON object like {{"https": "http://proxy:3128"}}'
        )
    return ClientSettings(
        base_url=base_url_from_connection(conn.host, conn.schema, conn.port, service=service, default=default_url),
        login=conn.login or None,
        password=conn.password or None,
        timeout=float(_extra(extras, "timeout", DEFAULT_TIMEOUT)),
        verify=verify,
        proxies=dict(proxies) if proxies else None,
        max_retries=int(_extra(extras, "max_retries", DEFAULT_MAX_RETRIES)),
        server_idempotency=_flag(extras, "server_idempotency", True, service),
    )


def _flag(extras: Mapping[str, Any], name: str, default: bool, service: str) -> bool:
    """A boolean extra, given as JSON true/false or as the form's "true"/"false" text."""
    value = _extra(extras, name, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(f"{service} connection extra {name!r} must be true or false, not {value!r}")
    return value


def _extra(extras: Mapping[str, Any], name: str, default: Any) -> Any:
    """An extra's value, with the default for a missing, null or empty one (as the connection form saves them)."""
    value = extras.get(name)
    return default if value is None or value == "" else value


def request_timeout(settings: ClientSettings, deadline: float | None) -> float:
    """The read timeout of one attempt: the connection's, cut to what is left before ``deadline``."""
    if deadline is None:
        return settings.timeout
    return max(0.1, min(settings.timeout, deadline - time.time()))
