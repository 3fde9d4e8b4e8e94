"""What the Brain and Deepgram hooks share: one ``Transport`` over the hook's connection, built on first use.

A hook says how to read its connection (``_read_settings``, and ``_aread_settings`` with Airflow's async lookup)
and how its service's answers are decoded (``_answer_decoder``); this mixin builds the transport once, hands it to sync
and async callers alike, and closes it. On a 401 the transport reads the connection again through the same two
functions, so a password or key rotated while a wait goes on is picked up without restarting anything.
"""

from __future__ import annotations

from airflow_provider_brain.hooks.calls import decode
from airflow_provider_brain.hooks.settings import ClientSettings
from airflow_provider_brain.hooks.transport import Decoder, Transport


class TransportOwner:
    """Mixin for a hook that talks HTTP through one :class:`Transport` (put it before ``BaseHook``)."""

    retry_backoff: float
    retry_backoff_max: float
    _transport: Transport | None = None

    def _read_settings(self) -> ClientSettings:
        """The connection's settings, looked up now (a rotated secret is seen the next time this runs)."""
        raise NotImplementedError

    async def _aread_settings(self) -> ClientSettings:
        """``_read_settings`` with Airflow's async connection lookup."""
        raise NotImplementedError

    def _answer_decoder(self) -> Decoder:
        """How this service's answers and errors are decoded (Brain's by default)."""
        return decode

    def _new_transport(self, settings: ClientSettings) -> Transport:
        return Transport(
            settings,
            retry_backoff=self.retry_backoff,
            retry_backoff_max=self.retry_backoff_max,
            reload=self._read_settings,
            areload=self._aread_settings,
            decoder=self._answer_decoder(),
        )

    @property
    def transport(self) -> Transport:
        """The HTTP clients and retry policy over this hook's connection (sync connection lookup)."""
        if self._transport is None:
            self._transport = self._new_transport(self._read_settings())
        return self._transport

    async def aget_transport(self) -> Transport:
        """``transport`` with Airflow's async connection lookup (never blocks a triggerer's event loop).

        Calls made at once (a batch trigger's first requests) share one transport: one that finds it built when
        its connection lookup returns keeps that one, rather than build a second whose HTTP client is never closed.
        """
        if self._transport is None:
            settings = await self._aread_settings()
            if self._transport is None:
                self._transport = self._new_transport(settings)
        return self._transport

    def close(self) -> None:
        """Close the sync HTTP session, if one was opened."""
        if self._transport is not None:
            self._transport.close()

    async def aclose(self) -> None:
        """Close the async HTTP client, if one was opened."""
        if self._transport is not None:
            await self._transport.aclose()
