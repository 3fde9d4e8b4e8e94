"""The one exception that turns into a JSON error response: ``{"error": "<short message>"}``."""

from __future__ import annotations


class ApiError(Exception):
    """An error answered to the client with ``status`` and a short message (never credentials)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class DownloadError(Exception):
    """A media URL could not be fetched; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
