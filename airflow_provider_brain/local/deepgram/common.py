"""What every route of the Deepgram dialect shares: ``Authorization: Token <key>``, one project per user,
and errors in Deepgram's shape (``{"err_code", "err_msg", "request_id"}``)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from airflow_provider_brain.local.errors import ApiError
from airflow_provider_brain.local.state import Brain

TOKEN_HEADER = {"WWW-Authenticate": "Token"}
_CODES = {400: "Bad Request", 401: "INVALID_AUTH", 403: "INSUFFICIENT_PERMISSIONS", 404: "NOT_FOUND"}
_PROJECTS = uuid.uuid5(uuid.NAMESPACE_URL, "brain-local/projects")


def authenticate(brain: Brain, request: Request) -> str:
    """The user whose password is the request's ``Token`` (or ``Bearer``) key; 401 otherwise."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() not in ("token", "bearer") or not key.strip():
        raise ApiError(401, "authentication required: send Authorization: Token <key>", TOKEN_HEADER)
    user = brain.auth.user_for_key(key.strip())
    if user is None:
        raise ApiError(401, "invalid credentials", TOKEN_HEADER)
    return user


def project_id(user: str) -> str:
    """The user's one project: a uuid derived from the username, stable across restarts."""
    return str(uuid.uuid5(_PROJECTS, user))


def check_project(user: str, given: str) -> None:
    if given != project_id(user):
        raise ApiError(404, "project not found")


def deepgram_errors(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Answer an ``ApiError`` raised by ``handler`` as Deepgram does."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            body = {
                "err_code": _CODES.get(exc.status, "REQUEST_FAILED" if exc.status < 500 else "INTERNAL_SERVER_ERROR"),
                "err_msg": exc.message,
                "request_id": str(uuid.uuid4()),
            }
            return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    return wrapped
