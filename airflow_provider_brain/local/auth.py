"""Who is calling: HTTP Basic credentials or a signed-username token, checked against configured users.

The token (``GET /users/login``) is the username plus an HMAC-SHA256 signature made with a secret that
is created once and kept in the data dir, so tokens survive a restart and one user's token cannot be
turned into another's. Tokens and passwords are credentials: nothing here logs them or echoes them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from starlette.requests import Request

from airflow_provider_brain.local.errors import ApiError

REALM_HEADER = {"WWW-Authenticate": 'Basic realm="brain"'}
SECRET_FILE = "secret.key"  # noqa: S105 - a file name, not a secret


def load_or_create_secret(data_dir: Path) -> bytes:
    """Return the server's signing secret, creating it (mode 0600) on first start."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        tmp = data_dir / f".{SECRET_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        # A concurrent first start may have won the race; either secret is fine, but only one must stay.
        if path.exists():
            tmp.unlink()
        else:
            tmp.replace(path)
    return bytes.fromhex(path.read_text().strip())


class Authenticator:
    """Checks a request's credentials and issues signed-username tokens."""

    def __init__(self, users: dict[str, str], secret: bytes) -> None:
        self._users = dict(users)
        self._secret = secret

    def sign(self, username: str) -> str:
        """Return the token for ``username``: ``<username>.<hex hmac>``."""
        digest = hmac.new(self._secret, username.encode(), hashlib.sha256).hexdigest()
        return f"{username}.{digest}"

    def _verify_token(self, token: str) -> str | None:
        username, sep, _ = token.rpartition(".")
        if not sep or username not in self._users:
            return None
        return username if hmac.compare_digest(self.sign(username), token) else None

    def _verify_password(self, username: str, password: str) -> bool:
        expected = self._users.get(username)
        # Compare against something even for unknown users so timing does not reveal who exists.
        return hmac.compare_digest((expected or "\0").encode(), password.encode()) and expected is not None

    def user_for_key(self, key: str) -> str | None:
        """The user whose password is ``key``: the Deepgram dialect's ``Authorization: Token <key>``. Every
        user is compared, in constant time, so the time taken does not tell which one matched."""
        found = None
        for user, password in self._users.items():
            if hmac.compare_digest(password.encode(), key.encode()) and found is None:
                found = user
        return found

    def authenticate(self, request: Request) -> str:
        """Return the calling username, or raise a ``401`` ``ApiError``."""
        token = request.query_params.get("signed_username")
        if token is not None:
            user = self._verify_token(token)
            if user is None:
                raise ApiError(401, "invalid or expired signed_username token", REALM_HEADER)
            return user
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise ApiError(401, "authentication required", REALM_HEADER)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(401, "malformed Basic credentials", REALM_HEADER) from None
        username, sep, password = decoded.partition(":")
        if not sep or not self._verify_password(username, password):
            raise ApiError(401, "invalid credentials", REALM_HEADER)
        return username
