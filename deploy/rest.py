"""A small client of the deployment's Airflow REST API (``/api/v2``), logged in as one user."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from deploy.processes import StackError


def health(api: str) -> dict[str, Any] | None:
    """The api-server's ``/api/v2/monitor/health`` (no login needed), or ``None`` while it does not answer."""
    try:
        with urllib.request.urlopen(api + "/api/v2/monitor/health", timeout=3) as response:  # noqa: S310
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


class RestClient:
    """Calls the REST API at ``api`` as ``username``; gets its token on the first call and keeps it."""

    def __init__(self, api: str, username: str, password: str) -> None:
        self.api = api
        self.username = username
        self.password = password
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            request = urllib.request.Request(  # noqa: S310 - our own api-server
                self.api + "/auth/token",
                data=json.dumps({"username": self.username, "password": self.password}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                self._token = json.loads(response.read())["access_token"]
        return self._token

    def rest(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        """Call ``/api/v2`` + ``path``; return the parsed JSON, raise ``StackError`` on an HTTP error."""
        request = urllib.request.Request(  # noqa: S310 - our own api-server
            f"{self.api}/api/v2{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token()}"},
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as err:
            raise StackError(f"{method} {path}: HTTP {err.code}: {err.read()[:500]!r}") from err
        return json.loads(raw) if raw else None
