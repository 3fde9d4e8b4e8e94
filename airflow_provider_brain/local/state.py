"""What one running server holds, and how a request handler reaches it (``brain_of(request)``)."""

from __future__ import annotations

from starlette.requests import Request

from airflow_provider_brain.local.auth import Authenticator, load_or_create_secret
from airflow_provider_brain.local.http_input import JsonBudget
from airflow_provider_brain.local.idempotency import KeyLocks
from airflow_provider_brain.local.offload import StoreAccess
from airflow_provider_brain.local.settings import ServerSettings
from airflow_provider_brain.local.store import AssetStore
from airflow_provider_brain.local.worker import Dispatcher


class Brain:
    """The server's state for one run: settings, store (behind ``StoreAccess``), dispatcher, authenticator, the
    turns of requests that share an ``Idempotency-Key`` and the memory budget of JSON bodies.

    Built on a thread (it opens SQLite and reads the secret), then given its dispatcher on the loop.
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = StoreAccess(AssetStore(settings.data_dir))
        self.auth = Authenticator(settings.users, load_or_create_secret(settings.data_dir))
        self.dispatcher: Dispatcher | None = None
        #: Turns of the requests that carry the same user's same ``Idempotency-Key``.
        self.keys = KeyLocks()
        self.json_budget = JsonBudget(settings.json_budget_bytes)

    @property
    def store(self) -> AssetStore:
        """The store itself, for ``self.db.call(self.store.get, ...)``."""
        return self.db.store


def brain_of(request: Request) -> Brain:
    brain: Brain = request.app.state.brain
    return brain
