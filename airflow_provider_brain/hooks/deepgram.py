"""``DeepgramHook``: Deepgram's pre-recorded API (``POST /v1/listen``) and its request history, as Airflow sees it.

It runs on the provider's own transport and retry policy (``hooks/transport.py``, ``hooks/retry.py``), not on
the ``deepgram-sdk``: the SDK retries 429, 408, 409 and 5xx on its own, POSTs included, so a gateway's 502 after
Deepgram accepted a file would have the file recognised (and billed) twice. Here a listen request is sent again
at once only when it provably was not accepted (a 429, or a connection that never opened); when its answer may
have been lost (a reset after sending, a read timeout, a 5xx), the project's request history is searched for
the request's idempotency marker first, and the request is sent again only if it is not there.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import uuid
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_brain.deepgram_models import DeepgramResult
from airflow_provider_brain.exceptions import BrainError
from airflow_provider_brain.hooks.deepgram_calls import (
    DEFAULT_DEEPGRAM_URL,
    DeepgramAnswerLost,
    ListenCall,
    decode_deepgram,
    deepgram_settings,
    dg_call,
    listen_params,
    request_id_of,
)
from airflow_provider_brain.hooks.deepgram_history import afind_requests, find_requests, first_project
from airflow_provider_brain.hooks.deepgram_send import ListenSender
from airflow_provider_brain.hooks.settings import ClientSettings
from airflow_provider_brain.hooks.transport import Decoder, Transport
from airflow_provider_brain.hooks.uploads import AudioSource, body_opener

__all__ = ["DEFAULT_DEEPGRAM_URL", "DeepgramAnswerLost", "DeepgramHook", "DeepgramResult"]

log = logging.getLogger(__name__)


class DeepgramHook(ListenSender, BaseHook):
    """Transcribe audio with Deepgram's pre-recorded API and find past requests in the project's history.

    The connection (type ``deepgram``) holds the API key in *password* and the API's URL in *host* (default
    ``https://api.deepgram.com``). Extras: ``project_id`` (default: the first project the key sees), ``options``
    (default listen options, e.g. ``{"model": "nova-3", "smart_format": true}``), and ``timeout``, ``verify``,
    ``proxies``, ``max_retries`` as for Brain.

    .. code-block:: python

        hook = DeepgramHook(deepgram_conn_id="deepgram_default")
        result = hook.listen_file("/data/call-17.wav", tags=["calls"], idempotency_key="call-17")
        print(result.request_id, result.duration, result.word_count)

    :param deepgram_conn_id: the Airflow connection to use.
    :param retry_backoff: first backoff in seconds between retries (grows exponentially, with jitter).
    :param retry_backoff_max: the longest backoff between two retries, in seconds.
    :param max_retries: overrides the connection's ``max_retries`` extra.
    :param history_wait: how long, in seconds, the history is searched for a request whose answer was lost
        before it is taken as never accepted (Deepgram's history may show a request a moment late).
    """

    conn_name_attr = "deepgram_conn_id"
    default_conn_name = "deepgram_default"
    conn_type = "deepgram"
    hook_name = "Deepgram"

    def __init__(
        self,
        deepgram_conn_id: str = default_conn_name,
        *,
        retry_backoff: float = 1.0,
        retry_backoff_max: float = 60.0,
        max_retries: int | None = None,
        history_wait: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deepgram_conn_id = deepgram_conn_id
        self.retry_backoff = retry_backoff
        self.retry_backoff_max = retry_backoff_max
        self.history_wait = history_wait
        self._max_retries_override = max_retries
        self._transport: Transport | None = None
        self._extras: dict[str, Any] = {}
        self._project_id: str | None = None

    # ------------------------------------------------------------------ settings and transport

    def _settings_of(self, conn: Any, extras: Mapping[str, Any]) -> ClientSettings:
        self._extras = dict(extras)
        settings = deepgram_settings(conn, extras)
        if self._max_retries_override is not None:
            settings = dataclasses.replace(settings, max_retries=self._max_retries_override)
        return settings

    def _read_settings(self) -> ClientSettings:
        conn = self.get_connection(self.deepgram_conn_id)
        return self._settings_of(conn, conn.extra_dejson)

    async def _aread_settings(self) -> ClientSettings:
        conn = await self.aget_connection(self.deepgram_conn_id)
        extras = await conn.aextra_dejson() if hasattr(conn, "aextra_dejson") else conn.extra_dejson
        return self._settings_of(conn, extras)

    def _answer_decoder(self) -> Decoder:
        return decode_deepgram

    def get_conn(self) -> Transport:
        """The transport every call of this hook goes through (auth header, retries, both HTTP clients)."""
        return self.transport

    @property
    def default_options(self) -> dict[str, Any]:
        """The connection's ``options`` extra: listen options every request starts from."""
        self.transport  # noqa: B018 - reads the connection, and with it the extras
        return self._options()

    def _options(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        defaults = self._extras.get("options") or {}
        if not isinstance(defaults, Mapping):
            raise ValueError('Deepgram connection extra \'options\' must be a JSON object like {"model": "nova-3"}')
        return {**defaults, **(given or {})}

    # ------------------------------------------------------------------ projects and history

    def project_id(self) -> str:
        """The connection's ``project_id`` extra, else the first project ``GET /v1/projects`` lists."""
        if self._project_id is None:
            transport = self.transport
            self._project_id = self._extras.get("project_id") or first_project(
                transport.request(dg_call("GET", "/v1/projects"))
            )
        return self._project_id

    async def aproject_id(self) -> str:
        """Async ``project_id``."""
        if self._project_id is None:
            transport = await self.aget_transport()
            self._project_id = self._extras.get("project_id") or first_project(
                await transport.arequest(dg_call("GET", "/v1/projects"))
            )
        return self._project_id

    def find_request(self, marker: str, *, since: datetime | None = None) -> dict[str, Any] | None:
        """The project's newest request carrying the idempotency ``marker``, or ``None``. Its ``path`` and
        ``callback`` hold the request's query, a callback's presigned URL included: never log them.

        :param since: look at requests made after this time (less ``HISTORY_SLACK``) only.
        """
        return find_requests(self.transport, self.project_id(), [marker], since=since).get(marker)

    async def afind_requests(
        self, markers: Collection[str], *, since: datetime | None = None, created_after: datetime | None = None
    ) -> dict[str, dict[str, Any]]:
        """The newest request carrying each of ``markers``, by marker, with one pass over the history (for a
        trigger that starts again: which of its files were sent by its earlier run).

        :param created_after: ignore requests Deepgram created before this time.
        """
        project = await self.aproject_id()
        return await afind_requests(
            await self.aget_transport(), project, markers, since=since, created_after=created_after
        )

    async def afind_request(self, marker: str, *, since: datetime | None = None) -> dict[str, Any] | None:
        """Async ``find_request``."""
        return (await self.afind_requests([marker], since=since)).get(marker)

    def get_request(self, request_id: str) -> dict[str, Any]:
        """One request of the project's history (``GET /v1/projects/{id}/requests/{request_id}``): its path, code
        and ``response`` summary (no transcript; the path and ``callback`` may hold a presigned URL: never log
        them)."""
        path = f"/v1/projects/{self.project_id()}/requests/{uuid.UUID(request_id)}"
        answer = self.transport.request(dg_call("GET", path))
        result: dict[str, Any] = answer.get("request") or {}  # GetProjectRequestV1Response: {"request": {...}}
        return result

    # ------------------------------------------------------------------ listen

    def listen_url(
        self,
        url: str,
        *,
        options: Mapping[str, Any] | None = None,
        tags: list[str] | tuple[str, ...] = (),
        extra: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> DeepgramResult:
        """Transcribe the audio at ``url`` (Deepgram fetches it; a presigned S3 URL works).

        :param options: listen options over the connection's defaults (``{"punctuate": True}``).
        :param tags: Deepgram ``tag`` values (usage is grouped by them).
        :param extra: ``extra`` key/value pairs echoed in the answer's metadata.
        :param idempotency_key: the request's marker (made up if not given), sent as
            ``extra=airflow_idempotency_key:<key>``: after a lost answer the history is searched for it.
        """
        listen = self._listen_call(options, tags, extra, idempotency_key, None, {"url": url})
        return DeepgramResult.from_json(self._listen(listen, None, rewindable=True))

    def listen_file(
        self,
        source: AudioSource,
        *,
        options: Mapping[str, Any] | None = None,
        tags: list[str] | tuple[str, ...] = (),
        extra: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> DeepgramResult:
        """Transcribe audio sent as the request's raw body, streamed (never read whole into memory).

        :param source: a path, a binary file, an iterable of ``bytes`` chunks, or a callable returning a fresh
            stream each time (e.g. an S3 object's body). Only a path, a seekable file or a callable can be sent
            again; the other parameters are ``listen_url``'s.
        """
        opener, rewindable = body_opener(source)
        listen = self._listen_call(options, tags, extra, idempotency_key, None)
        return DeepgramResult.from_json(self._listen(listen, opener, rewindable=rewindable))

    def listen_bytes(self, data: bytes, **kwargs: Any) -> DeepgramResult:
        """``listen_file`` for audio already in memory."""
        return self.listen_file(io.BytesIO(data), **kwargs)

    def submit_url(
        self,
        url: str,
        *,
        callback: str,
        callback_method: str = "put",
        options: Mapping[str, Any] | None = None,
        tags: list[str] | tuple[str, ...] = (),
        extra: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Send the audio at ``url`` with a ``callback``: Deepgram answers with the request id at once and sends
        the whole result to ``callback`` when it is done (``callback_method`` ``"put"`` or ``"post"``; a
        presigned S3 PUT URL stores it where the task looks for it). Returns the request id.

        A lost answer is looked up in the history by the idempotency key, and a request found there is not sent
        again: its callback still brings the result, so the id found is returned. The other parameters are
        ``listen_url``'s.
        """
        listen = self._listen_call(options, tags, extra, idempotency_key, (callback, callback_method), {"url": url})
        return request_id_of(self._listen(listen, None, rewindable=True, accepted_is_enough=True))

    def submit_file(
        self,
        source: AudioSource,
        *,
        callback: str,
        callback_method: str = "put",
        options: Mapping[str, Any] | None = None,
        tags: list[str] | tuple[str, ...] = (),
        extra: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """``submit_url`` for audio sent as the request's body (``listen_file``'s ``source``)."""
        opener, rewindable = body_opener(source)
        listen = self._listen_call(options, tags, extra, idempotency_key, (callback, callback_method))
        return request_id_of(self._listen(listen, opener, rewindable=rewindable, accepted_is_enough=True))

    def _listen_call(
        self,
        options: Mapping[str, Any] | None,
        tags: list[str] | tuple[str, ...],
        extra: Mapping[str, str] | None,
        marker: str | None,
        callback: tuple[str, str] | None,
        json: Any = None,
    ) -> ListenCall:
        """The ``POST /v1/listen`` call. A callback URL travels in ``params``, out of the call's path and repr
        (messages and retry logs show the path): a presigned PUT URL's signature is a secret."""
        self.transport  # noqa: B018 - the connection's default options come with its settings
        marker = marker or str(uuid.uuid4())
        params = listen_params(self._options(options), tags=tags, extra=extra, marker=marker, callback=callback)
        call = dg_call("POST", "/v1/listen", params=params, json=json, secret_query=callback is not None)
        return ListenCall(call, marker)

    async def alisten_url(
        self,
        url: str,
        *,
        options: Mapping[str, Any] | None = None,
        tags: list[str] | tuple[str, ...] = (),
        extra: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> DeepgramResult:
        """Async ``listen_url`` (for triggers): httpx and Airflow's async connection lookup, same resend rule."""
        await self.aget_transport()
        listen = self._listen_call(options, tags, extra, idempotency_key, None, {"url": url})
        return DeepgramResult.from_json(await self._alisten(listen))

    async def asubmit_url(
        self,
        url: str,
        *,
        callback: str,
        callback_method: str = "put",
        options: Mapping[str, Any] | None = None,
        tags: list[str] | tuple[str, ...] = (),
        extra: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Async ``submit_url`` (for triggers)."""
        await self.aget_transport()
        listen = self._listen_call(options, tags, extra, idempotency_key, (callback, callback_method), {"url": url})
        return request_id_of(await self._alisten(listen, accepted_is_enough=True))

    # ------------------------------------------------------------------ UI

    def test_connection(self) -> tuple[bool, str]:
        """Check the URL and API key with one unretried ``GET /v1/projects`` (used by the UI and CLI)."""
        try:
            answer = self.transport.request(dg_call("GET", "/v1/projects"), retry=False)
        except (BrainError, ValueError) as err:
            return False, str(err)
        count = len(answer.get("projects") or [])
        return True, f"Connected to Deepgram at {self.transport.settings.base_url}: {count} project(s)"
