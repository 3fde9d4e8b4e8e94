"""The ASGI app: the routes of ``BRAIN_API.md`` (``local/routes/``) and of Deepgram's dialect
(``local/deepgram/``), JSON errors, the access log and the
lifespan that opens the store and runs the dispatcher.

Nothing here, nor in the route handlers, blocks the event loop: SQLite and the disk work on threads
(``local/offload.py``), recognition in worker processes (``local/worker.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_provider_brain.local import deepgram
from airflow_provider_brain.local.deepgram.service import DeepgramDialect
from airflow_provider_brain.local.errors import ApiError
from airflow_provider_brain.local.routes.assets import asset_endpoint, get_content, list_assets, search_assets
from airflow_provider_brain.local.routes.recognize import recognize
from airflow_provider_brain.local.settings import ServerSettings
from airflow_provider_brain.local.state import Brain, brain_of
from airflow_provider_brain.local.worker import Dispatcher

log = logging.getLogger("brain_local.api")
access_log = logging.getLogger("brain_local.access")


# --- users ----------------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    """``GET /users/login``: a signed-username token for the caller."""
    brain = brain_of(request)
    user = brain.auth.authenticate(request)
    return JSONResponse({"signed_username": brain.auth.sign(user)})


async def get_user(request: Request) -> Response:
    """``GET /users``: the caller's record (no secrets)."""
    user = brain_of(request).auth.authenticate(request)
    return JSONResponse({"username": user})


# --- errors and access log ------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(exc.status, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    return _error(exc.status_code, message, dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
    return _error(500, "internal server error")


class AccessLog:
    """Logs method, path, status and time of each request; never the query string (it may hold tokens)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 0

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            access_log.info(
                "%s %s %s %.0f ms", scope["method"], scope["path"], status, (time.monotonic() - started) * 1000
            )


# --- assembly -------------------------------------------------------------------------------------


def create_app(settings: ServerSettings) -> AccessLog:
    """Build the ASGI app; its lifespan opens the store and runs the dispatcher.

    The access log wraps everything, so it records the final status, 500s included.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        brain = await asyncio.to_thread(Brain, settings)
        dialect: DeepgramDialect | None = None
        try:
            brain.dispatcher = Dispatcher(brain.db, settings)
            await brain.dispatcher.start()
            app.state.brain = brain
            dialect = app.state.deepgram = await asyncio.to_thread(DeepgramDialect, brain)
            await dialect.start()
            yield
        finally:
            if dialect is not None:
                with suppress(Exception):
                    await dialect.stop()
            if brain.dispatcher is not None:
                with suppress(Exception):
                    await brain.dispatcher.stop()
            await asyncio.to_thread(brain.db.close)

    routes = [
        Route("/speech:recognize", recognize, methods=["POST"]),
        Route("/assets", list_assets, methods=["GET"]),
        Route("/assets/search", search_assets, methods=["POST"]),
        Route("/assets/{asset_id}", asset_endpoint, methods=["GET", "PUT", "DELETE"]),
        Route("/assets/{asset_id}/content", get_content, methods=["GET"]),
        Route("/users/login", login, methods=["GET"]),
        Route("/users", get_user, methods=["GET"]),
        *deepgram.routes(),  # Deepgram's pre-recorded dialect, on the same port
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _server_error},
    )
    return AccessLog(app)
